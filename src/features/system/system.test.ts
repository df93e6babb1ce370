import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, problem, startTestApp, type TestApp } from '../../../test/support/app.js'

let t: TestApp
beforeAll(async () => {
  t = await startTestApp({ CORS_ORIGINS: 'https://app.example.com' })
})
afterAll(async () => t.close())

describe('health and readiness', () => {
  it('answers /health and /ready while everything is up', async () => {
    expect((await t.app.inject({ url: '/health' })).json()).toEqual({ status: 'ok' })
    const ready = await t.app.inject({ url: '/ready' })
    expect(ready.statusCode).toBe(200)
    expect(ready.json()).toMatchObject({ status: 'ready', database: expect.any(String), live_store: expect.any(String) })
  })
})

describe('HTTP basics', () => {
  it('answers an unknown route 404 problem+json', async () => {
    expect(problem(await t.app.inject({ url: '/no/such/route' }), 404).code).toBe('route_not_found')
  })

  it('echoes a sane X-Request-Id and makes one up otherwise', async () => {
    expect((await t.app.inject({ url: '/health', headers: { 'x-request-id': 'abc-123' } })).headers['x-request-id']).toBe('abc-123')
    const made = (await t.app.inject({ url: '/health', headers: { 'x-request-id': 'bad id with spaces\n' } })).headers['x-request-id']
    expect(made).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('sends security headers, and CORS only to configured origins', async () => {
    const res = await t.app.inject({ url: '/health', headers: { origin: 'https://app.example.com' } })
    // An API answer: the headers OWASP's REST Security Cheat Sheet lists, none of those for HTML pages.
    expect(res.headers).toMatchObject({
      'x-content-type-options': 'nosniff',
      'strict-transport-security': 'max-age=31536000; includeSubDomains',
      'x-frame-options': 'DENY',
      'content-security-policy': "default-src 'none';frame-ancestors 'none'",
      'cache-control': 'no-store',
    })
    expect(res.headers['x-xss-protection']).toBeUndefined()
    expect(res.headers['origin-agent-cluster']).toBeUndefined()
    // The docs pages are HTML: helmet's whole set, with a CSP that lets the page load its own scripts.
    const docs = await t.app.inject({ url: '/docs/' })
    expect(docs.headers['content-type']).toMatch(/^text\/html/)
    expect(docs.headers['content-security-policy']).toMatch(/script-src 'self'/)
    expect(docs.headers).toMatchObject({ 'x-frame-options': 'SAMEORIGIN', 'cross-origin-opener-policy': 'same-origin', 'referrer-policy': 'no-referrer' })
    expect(res.headers['access-control-allow-origin']).toBe('https://app.example.com')
    const other = await t.app.inject({ url: '/health', headers: { origin: 'https://evil.example.com' } })
    expect(other.headers['access-control-allow-origin']).toBeUndefined()
  })

  it('puts the request id on every log line of a request', async () => {
    await t.app.inject({ url: '/user', headers: { 'x-request-id': 'trace-me-42' } })
    const lines = t.logs.filter((l) => l.includes('trace-me-42')).map((l) => JSON.parse(l))
    expect(lines.length).toBeGreaterThan(0)
    for (const line of lines) expect(line.request_id).toBe('trace-me-42')
  })
})

describe('NUL characters, which PostgreSQL text cannot hold', () => {
  it('are refused with 400 in a JSON body and in the URL, and an escaped backslash before u0000 is plain text', async () => {
    const u = await newUser(t.app)
    const signup = (first_name: string) =>
      t.app.inject({ method: 'POST', url: '/signup', payload: { email: `nul.${Date.now()}.${Math.random()}@example.com`, password: 'a good password', first_name, last_name: 'B' } })
    expect(problem(await signup('a\u0000b'), 400).code).toBe('nul_character')
    expect(problem(await t.app.inject({ url: '/users?q=a%00b', headers: u.auth }), 400).code).toBe('nul_character')
    const literal = await signup('a\\u0000b')
    expect(literal.statusCode).toBe(201)
    expect(literal.json().first_name).toBe('a\\u0000b')
  })
})

describe('when the database goes away', () => {
  it('answers 500 problem+json without a stack, logs the stack, and /ready turns 503', async () => {
    const broken = await startTestApp()
    const u = await newUser(broken.app)
    await broken.app.platform.database.db.destroy()
    try {
      const res = await broken.app.inject({ method: 'POST', url: '/signup', payload: { email: 'x@y.co', password: 'a good password', first_name: 'A', last_name: 'B' } })
      const body = problem(res, 500)
      expect(body.code).toBe('internal_error')
      expect(res.body).not.toMatch(/at .+\.(ts|js):\d+/)
      const logged = broken.logs.map((l) => JSON.parse(l)).find((l) => l.request_id === body.request_id && l.err)
      expect(logged?.err?.stack).toMatch(/\n\s+at /)
      expect(problem(await broken.app.inject({ url: '/ready' }), 503).code).toBe('not_ready')
      expect(u.id).toBeTruthy()
    } finally {
      // The database is closed already, so closing it again may complain.
      await broken.close().catch(() => {})
    }
  })
})
