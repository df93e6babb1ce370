import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { simpleParser } from 'mailparser'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { buildApp, type AppOptions } from '../../src/app.js'
import type { Config } from '../../src/config.js'
import { liveStoreOptions, type Platform } from '../../src/platform/index.js'
import { openLiveStore } from '../../src/platform/live/index.js'
import { createScratchDatabase, openTestPlatform, TEST_DATABASE_URL, testConfig } from './backends.js'

export interface TestApp {
  app: FastifyInstance
  config: Config
  /** Every log line the app wrote, as text. */
  logs: string[]
  close(): Promise<void>
}

/** Builds the whole app on the test backends, with its log captured. */
export async function startTestApp(env: Record<string, string | undefined> = {}, options: Omit<AppOptions, 'logStream'> = {}): Promise<TestApp> {
  const platform = await openTestPlatform(testConfig({ LOG_LEVEL: 'debug', ...env }))
  const logs: string[] = []
  const logStream = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk))
      done()
    },
  })
  const app = await buildApp(platform.config, platform, { ...options, logStream })
  await app.ready()
  return {
    app,
    config: platform.config,
    logs,
    async close() {
      await app.close()
      await platform.close()
    },
  }
}

/**
 * Two API processes (two buildApp instances) on one database and one live store: on PostgreSQL
 * and Redis, two platforms on the same servers; on the embedded default, where a PGlite can't be
 * opened twice, both apps share one platform (and so one LISTEN), or with Redis, the database
 * only. `env` is the environment both are configured from (REDIS_URL of a cluster, say).
 */
export async function startTwoApps(overrides: [Partial<Config>, Partial<Config>] = [{}, {}], env: Record<string, string | undefined> = {}) {
  const scratch = TEST_DATABASE_URL ? await createScratchDatabase(TEST_DATABASE_URL) : undefined
  const config = testConfig({ ...env, ...(scratch ? { DATABASE_URL: scratch.url } : {}) })
  const first = await openTestPlatform(config)
  const second: Platform = scratch ? await openTestPlatform(config) : config.redisUrl ? await withOwnLiveStore(first, config) : first
  const apps = [await buildApp({ ...config, ...overrides[0] }, first), await buildApp({ ...config, ...overrides[1] }, second)] as const
  return {
    apps,
    config,
    /** Closes both apps (either may have been closed already), their platforms, and the database. */
    async close() {
      for (const app of apps) await app.close()
      for (const platform of new Set([first, second])) await platform.close()
      await scratch?.drop()
    },
  }
}

/** A platform on the database of another, with a Redis live store of its own. */
async function withOwnLiveStore(platform: Platform, config: Config): Promise<Platform> {
  const live = await openLiveStore(liveStoreOptions(config), platform.database)
  return { ...platform, live, close: () => live.close() }
}

let counter = 0
export const uniqueEmail = (name = 'user') => `${name}.${Date.now().toString(36)}.${counter++}@example.com`

export interface SignedIn {
  id: string
  email: string
  password: string
  token: string
  auth: { authorization: string }
}

/** A file name's form of an address, as the .eml transport writes it (src/platform/mail). */
const fileSafe = (text: string) => text.toLowerCase().replace(/[^a-z0-9@._-]+/g, '_').slice(0, 100)

/**
 * The mails an app wrote to `to` as .eml files (no SMTP_URL), parsed, oldest first; waits up to
 * `timeoutMs` for at least `atLeast` of them (mails leave through the task queue, just after the
 * commit that asked for them).
 */
export async function mailsTo(app: FastifyInstance, to: string, options: { atLeast?: number; timeoutMs?: number } = {}) {
  const atLeast = options.atLeast ?? 1
  const deadline = Date.now() + (options.timeoutMs ?? 10_000)
  const prefix = `${fileSafe(to)}-`
  for (;;) {
    const names = (await readdir(app.config.mailDir).catch(() => [] as string[])).filter((name) => name.startsWith(prefix) && name.endsWith('.eml'))
    if (names.length >= atLeast || Date.now() > deadline) {
      const mails = await Promise.all(names.map(async (name) => simpleParser(await readFile(join(app.config.mailDir, name)))))
      if (mails.length < atLeast) throw new Error(`expected ${atLeast} mail(s) to ${to} in ${app.config.mailDir}, found ${mails.length}`)
      return mails.sort((a, b) => (a.date?.getTime() ?? 0) - (b.date?.getTime() ?? 0))
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** The token a mail carries (its "Token:" line, beside the link). */
export function tokenOf(mail: { text?: string }): string {
  const match = /^Token: ([A-Za-z0-9_-]{20,})$/m.exec(mail.text ?? '')
  if (!match) throw new Error(`no token in the mail: ${mail.text}`)
  return match[1]!
}

/**
 * Signs a new user up and in. Its email is confirmed the way a user does it: the confirmation
 * mail is read (the .eml file the app wrote) and its token posted to /email/confirm. `confirmed:
 * false` leaves it unconfirmed; an app with SMTP_URL set must confirm through its own mailbox.
 */
export async function newUser(
  app: FastifyInstance,
  fields: { roles?: string[]; first_name?: string; last_name?: string; email?: string; confirmed?: boolean } = {},
): Promise<SignedIn> {
  const email = fields.email ?? uniqueEmail()
  const password = 'correct horse battery'
  const signup = await app.inject({
    method: 'POST',
    url: '/signup',
    payload: { email, password, first_name: fields.first_name ?? 'Test', last_name: fields.last_name ?? 'User', ...(fields.roles ? { roles: fields.roles } : {}) },
  })
  if (signup.statusCode !== 201) throw new Error(`signup failed: ${signup.body}`)
  if (fields.confirmed !== false && !app.config.smtpUrl) {
    const [mail] = await mailsTo(app, email)
    const confirm = await app.inject({ method: 'POST', url: '/email/confirm', payload: { token: tokenOf(mail!) } })
    if (confirm.statusCode !== 204) throw new Error(`confirmation failed: ${confirm.body}`)
  }
  const token = await signIn(app, email, password)
  return { id: signup.json().id, email, password, token, auth: { authorization: `Bearer ${token}` } }
}

export async function signIn(app: FastifyInstance, email: string, password: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/authorize', payload: { email, password } })
  if (res.statusCode !== 200) throw new Error(`sign-in failed: ${res.body}`)
  return res.json().access_token
}

/** Every item of a list, following next_cursor `limit` at a time; fails on an answer other than 200. */
export async function allPages(app: FastifyInstance, user: SignedIn, url: string, limit: number) {
  const items: { id: string }[] = []
  let cursor: string | null = null
  do {
    const sep = url.includes('?') ? '&' : '?'
    const res: LightMyRequestResponse = await app.inject({ method: 'GET', url: `${url}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, headers: user.auth })
    if (res.statusCode !== 200) throw new Error(`expected 200 from ${url}, got ${res.statusCode}: ${res.body}`)
    items.push(...res.json().items)
    cursor = res.json().next_cursor
  } while (cursor)
  return items
}

/** Asserts the answer is problem+json with the status, and answers its body. */
export function problem(res: LightMyRequestResponse, status: number) {
  if (res.statusCode !== status) throw new Error(`expected ${status}, got ${res.statusCode}: ${res.body}`)
  if (!String(res.headers['content-type']).startsWith('application/problem+json')) {
    throw new Error(`expected application/problem+json, got ${res.headers['content-type']}: ${res.body}`)
  }
  const body = res.json()
  if (body.status !== status || typeof body.title !== 'string' || typeof body.type !== 'string' || typeof body.detail !== 'string') {
    throw new Error(`not an RFC 9457 problem: ${res.body}`)
  }
  return body as { type: string; title: string; status: number; detail: string; code: string; request_id: string; errors?: { field: string; message: string }[] }
}

export type Inject = InjectOptions
