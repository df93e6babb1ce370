import { accessSync, constants } from 'node:fs'
import path from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestApp, type TestApp } from './support/app.js'
import { CONTRACT_ROUTES } from './support/contract.js'

// A real browser opens the interactive reference at /docs, served by the app itself: it must list
// the API's routes and load nothing from anywhere else (no CDN).

// The browser is the system's Chromium (Debian's `chromium` package), never one downloaded at install
// time: no npm package ships a working Chromium for every machine, and locked-down machines can't
// download one. Without it the test is skipped with a line saying how to run it, except in CI
// (CI=true), where it must run: there a missing browser fails it.
const CHROMIUM = findChromium()
const HOW_TO_RUN = 'install Chromium (`sudo apt-get install chromium`) or set CHROMIUM_PATH to a Chromium or Chrome binary'

function findChromium(): string | undefined {
  const executable = (file: string) => {
    try {
      accessSync(file, constants.X_OK)
      return true
    } catch {
      return false
    }
  }
  if (process.env.CHROMIUM_PATH) return executable(process.env.CHROMIUM_PATH) ? process.env.CHROMIUM_PATH : undefined
  const names = ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome']
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    for (const name of names) if (executable(path.join(dir, name))) return path.join(dir, name)
  }
  return undefined
}

const required = process.env.CI === 'true'
if (!CHROMIUM && !required) console.warn(`skipped test/docs.browser.test.ts (GET /docs in a browser): no Chromium found; ${HOW_TO_RUN}`)

let t: TestApp
let base: string
let browser: Browser

describe.skipIf(!CHROMIUM && !required)('GET /docs in a browser', () => {
  beforeAll(async () => {
    if (!CHROMIUM) throw new Error(`CI needs the /docs browser test and no Chromium was found: ${HOW_TO_RUN}`)
    t = await startTestApp()
    base = await t.app.listen({ port: 0, host: '127.0.0.1' })
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
  })

  afterAll(async () => {
    await browser?.close()
    await t?.close()
  })

  it('lists the routes, loading everything from the service itself', async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    const requested: string[] = []
    const failed: string[] = []
    const pageErrors: string[] = []
    page.on('request', (request) => requested.push(request.url()))
    page.on('requestfailed', (request) => failed.push(`${request.url()}: ${request.failure()?.errorText}`))
    page.on('pageerror', (error) => pageErrors.push(error.message))
    // A Content-Security-Policy refusal shows only here, as a console error.
    const consoleErrors: string[] = []
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text())
    })

    const response = await page.goto(`${base}/docs`)
    expect(response?.ok()).toBe(true)
    // Swagger UI fetches the spec and draws one block per operation.
    await page.locator('.opblock').first().waitFor({ state: 'visible', timeout: 20_000 })
    await page.locator('#operations-sessions-listSessions').waitFor({ state: 'visible' })

    const listed = await page.locator('.opblock').evaluateAll((blocks) =>
      blocks.map((block) => {
        const method = block.querySelector('.opblock-summary-method')?.textContent?.trim() ?? ''
        const path = block.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? block.querySelector('.opblock-summary-path')?.textContent?.trim() ?? ''
        const summary = block.querySelector('.opblock-summary-description')?.textContent?.trim() ?? ''
        return { route: `${method} ${path.replace(/\u200b/g, '')}`, summary }
      }),
    )
    const routes = listed.map((l) => l.route)
    for (const route of CONTRACT_ROUTES) expect(routes).toContain(route)
    // Each operation shows its summary beside it.
    expect(listed.find((l) => l.route === 'POST /authorize')?.summary).toBe('Sign in')
    expect(listed.every((l) => l.summary.length > 0)).toBe(true)

    // Everything the page loaded came from the service: no CDN, no fonts or scripts from elsewhere.
    expect(requested.length).toBeGreaterThan(2)
    const origin = new URL(base).origin
    expect(requested.filter((url) => !url.startsWith(`${origin}/`) && !url.startsWith('data:'))).toEqual([])
    expect(requested).toContain(`${origin}/docs/json`)
    expect(failed).toEqual([])
    expect(pageErrors).toEqual([])
    expect(consoleErrors).toEqual([])
    await context.close()
  })
})
