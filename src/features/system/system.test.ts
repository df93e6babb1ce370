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

describe('text that is not valid Unicode, or that PostgreSQL cannot hold', () => {
  const LONE_SURROGATE = 'a\ud800b'
  const NUL = 'a\u0000b'
  /** A JSON body carrying the text as JSON escapes, as a client may send it. */
  const jsonWith = (body: unknown, auth: Record<string, string> = {}) => ({ headers: { ...auth, 'content-type': 'application/json' }, payload: JSON.stringify(body) })

  it.each([
    // A URL can't carry a lone surrogate: its bytes (ED A0 80) aren't UTF-8, and are read as valid text.
    ['a lone surrogate', LONE_SURROGATE, undefined, 'invalid_text'],
    ['a NUL', NUL, 'a%00b', 'nul_character'],
  ])('%s is refused with 400 naming the field, on every route, and nothing is stored', async (_name, bad, badInUrl, code) => {
    const refused = (res: Parameters<typeof problem>[0], field: string) => {
      const body = problem(res, 400)
      expect(body.code).toBe(code)
      expect(body.errors?.map((e) => e.field)).toEqual([field])
    }
    const client = await newUser(t.app, { roles: ['CLIENT'] })
    const worker = await newUser(t.app, { roles: ['WORKER'] })
    const job = { worker_id: worker.id, title: 'Fix the tap', description: 'It drips.', price: { amount: 2500, currency: 'EUR' } }

    refused(await t.app.inject({ method: 'POST', url: '/send', ...jsonWith({ to: worker.id, text: bad }, client.auth) }), 'body/text')
    expect((await t.app.inject({ url: '/inbox', headers: worker.auth })).json().items).toEqual([])

    refused(await t.app.inject({ method: 'POST', url: '/job', ...jsonWith({ ...job, title: bad }, client.auth) }), 'body/title')
    refused(await t.app.inject({ method: 'POST', url: '/job', ...jsonWith({ ...job, location: { lat: 1, lon: 2, address: bad } }, client.auth) }), 'body/location/address')
    expect((await t.app.inject({ url: '/jobs', headers: client.auth })).json().items).toEqual([])

    const offered = await t.app.inject({ method: 'POST', url: '/job', headers: client.auth, payload: job })
    expect(offered.statusCode).toBe(201)
    const jobId = offered.json().id
    refused(await t.app.inject({ method: 'POST', url: `/job/${jobId}/status`, ...jsonWith({ status: 'DECLINED', reason: bad }, worker.auth) }), 'body/reason')
    expect((await t.app.inject({ url: `/job/${jobId}`, headers: client.auth })).json().status).toBe('REQUESTED')

    const email = `text.${Date.now()}.${Math.random()}@example.com`
    refused(await t.app.inject({ method: 'POST', url: '/signup', ...jsonWith({ email, password: 'a good password', first_name: bad, last_name: 'B' }) }), 'body/first_name')
    problem(await t.app.inject({ method: 'POST', url: '/authorize', payload: { email, password: 'a good password' } }), 401)
    // A character outside the BMP is a surrogate pair, which is valid text.
    const emoji = await t.app.inject({ method: 'POST', url: '/signup', ...jsonWith({ email, password: 'a good password', first_name: 'Zoë 😀', last_name: 'B' }) })
    expect(emoji.json().first_name).toBe('Zoë 😀')

    if (badInUrl) refused(await t.app.inject({ url: `/users?q=${badInUrl}`, headers: client.auth }), 'querystring/q')
    else expect((await t.app.inject({ url: '/users?q=a%ED%A0%80b', headers: client.auth })).statusCode).toBe(200)
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
