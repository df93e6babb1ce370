import type { InjectOptions } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, problem, signIn, startTestApp, uniqueEmail, type TestApp } from '../../../test/support/app.js'

let t: TestApp
const LOGIN_FAILURES = 5
const AUTH_LIMIT = 40

beforeAll(async () => {
  t = await startTestApp({
    LOGIN_FAILURES_PER_HOUR: String(LOGIN_FAILURES),
    AUTH_RATE_LIMIT_MAX: String(AUTH_LIMIT),
    SESSIONS_PER_USER: '3',
  })
})
afterAll(async () => t.close())

// Each test signs in from an address of its own, so the per-address limit of one test doesn't
// spill into another.
let address = 1
const from = () => `10.0.${Math.floor(address / 250)}.${(address++ % 250) + 1}`
const inject = (options: InjectOptions) => t.app.inject({ remoteAddress: from(), ...options })

describe('POST /authorize', () => {
  it('answers a Bearer token that works, and the user', async () => {
    const u = await newUser(t.app)
    const res = await inject({ method: 'POST', url: '/authorize', payload: { email: u.email.toUpperCase(), password: u.password } })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: t.config.sessionIdleTtl, user: { id: u.id, email: u.email } })
    expect(body.access_token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect((await inject({ url: '/user', headers: { authorization: `Bearer ${body.access_token}` } })).json().id).toBe(u.id)
  })

  it('gives an unknown email and a wrong password the same 401', async () => {
    const u = await newUser(t.app)
    const wrong = problem(await inject({ method: 'POST', url: '/authorize', payload: { email: u.email, password: 'not the password' } }), 401)
    const unknown = problem(await inject({ method: 'POST', url: '/authorize', payload: { email: uniqueEmail('ghost'), password: 'not the password' } }), 401)
    const strip = ({ request_id: _r, ...rest }: Record<string, unknown>) => rest
    expect(strip(wrong)).toEqual(strip(unknown))
    expect(wrong.code).toBe('invalid_credentials')
  })

  it('locks an account after too many failed sign-ins, even for the right password, with Retry-After', async () => {
    const u = await newUser(t.app)
    for (let i = 0; i < LOGIN_FAILURES; i++) {
      problem(await inject({ method: 'POST', url: '/authorize', payload: { email: u.email, password: `wrong ${i}` } }), 401)
    }
    const locked = await inject({ method: 'POST', url: '/authorize', payload: { email: u.email, password: u.password } })
    expect(problem(locked, 429).code).toBe('account_locked')
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(3000)
    // Another account is not affected.
    const other = await newUser(t.app)
    expect((await inject({ method: 'POST', url: '/authorize', payload: { email: other.email, password: other.password } })).statusCode).toBe(200)
  })

  it('limits sign-in attempts from one address per minute: 429 problem+json with Retry-After', async () => {
    const u = await newUser(t.app)
    const address = '192.0.2.77'
    const statuses: number[] = []
    let last
    for (let i = 0; i <= AUTH_LIMIT; i++) {
      last = await t.app.inject({ method: 'POST', url: '/authorize', remoteAddress: address, payload: { email: u.email, password: u.password } })
      statuses.push(last.statusCode)
    }
    expect(statuses.slice(0, AUTH_LIMIT).every((s) => s === 200)).toBe(true)
    expect(problem(last!, 429).code).toBe('rate_limited')
    expect(Number(last!.headers['retry-after'])).toBeGreaterThan(0)
    // Other addresses still get through.
    expect((await inject({ method: 'POST', url: '/authorize', payload: { email: u.email, password: u.password } })).statusCode).toBe(200)
  })

  it('answers 400 for a missing password or a non-JSON body', async () => {
    problem(await inject({ method: 'POST', url: '/authorize', payload: { email: 'a@b.co' } }), 400)
    problem(await inject({ method: 'POST', url: '/authorize', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'email=a&password=b' }), 415)
  })
})

describe('DELETE /authorize', () => {
  it('ends that token at once and leaves the user\'s other devices signed in', async () => {
    const u = await newUser(t.app)
    const phone = await signIn(t.app, u.email, u.password)
    expect((await inject({ method: 'DELETE', url: '/authorize', headers: u.auth })).statusCode).toBe(204)
    problem(await inject({ url: '/user', headers: u.auth }), 401)
    problem(await inject({ method: 'DELETE', url: '/authorize', headers: u.auth }), 401)
    expect((await inject({ url: '/user', headers: { authorization: `Bearer ${phone}` } })).statusCode).toBe(200)
  })
})

describe('/sessions', () => {
  it('lists the caller\'s devices and ends one by id', async () => {
    const u = await newUser(t.app)
    const tablet = await signIn(t.app, u.email, u.password)
    const list = await inject({ url: '/sessions', headers: { ...u.auth, 'user-agent': 'PhoneApp/1.0' } })
    expect(list.statusCode).toBe(200)
    const items = list.json().items
    expect(items).toHaveLength(2)
    expect(items.filter((s: { current: boolean }) => s.current)).toHaveLength(1)
    expect(JSON.stringify(items)).not.toContain(u.token)

    const tabletSession = items.find((s: { current: boolean }) => !s.current)
    expect((await inject({ method: 'DELETE', url: `/sessions/${tabletSession.id}`, headers: u.auth })).statusCode).toBe(204)
    problem(await inject({ url: '/user', headers: { authorization: `Bearer ${tablet}` } }), 401)
    expect((await inject({ url: '/sessions', headers: u.auth })).json().items).toHaveLength(1)
  })

  it('answers 404 for another user\'s session id (and ends nothing), 400 for a malformed id', async () => {
    const [a, b] = [await newUser(t.app), await newUser(t.app)]
    const bSession = (await inject({ url: '/sessions', headers: b.auth })).json().items[0].id
    problem(await inject({ method: 'DELETE', url: `/sessions/${bSession}`, headers: a.auth }), 404)
    expect((await inject({ url: '/user', headers: b.auth })).statusCode).toBe(200)
    problem(await inject({ method: 'DELETE', url: '/sessions/not-a-uuid', headers: a.auth }), 400)
    problem(await inject({ url: '/sessions' }), 401)
  })

  it('DELETE /sessions signs the caller out everywhere, this device too', async () => {
    const [u, other] = [await newUser(t.app), await newUser(t.app)]
    const phone = await signIn(t.app, u.email, u.password)
    expect((await inject({ method: 'DELETE', url: '/sessions', headers: u.auth })).statusCode).toBe(204)
    for (const token of [u.token, phone]) problem(await inject({ url: '/user', headers: { authorization: `Bearer ${token}` } }), 401)
    expect((await inject({ url: '/user', headers: other.auth })).statusCode).toBe(200)
    // Signing in again works.
    expect((await inject({ url: '/sessions', headers: { authorization: `Bearer ${await signIn(t.app, u.email, u.password)}` } })).json().items).toHaveLength(1)
  })

  it('keeps at most SESSIONS_PER_USER sessions, ending the oldest', async () => {
    const u = await newUser(t.app)
    const tokens = [u.token]
    for (let i = 0; i < 3; i++) tokens.push(await signIn(t.app, u.email, u.password))
    problem(await inject({ url: '/user', headers: { authorization: `Bearer ${tokens[0]}` } }), 401)
    for (const token of tokens.slice(1)) expect((await inject({ url: '/user', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200)
  })
})

describe('session lifetime', () => {
  let short: TestApp
  beforeAll(async () => {
    short = await startTestApp({ SESSION_IDLE_TTL: '3', SESSION_MAX_AGE: '6' })
  })
  afterAll(async () => short.close())

  it('renews a used token (sliding), lets an idle one die, and ends every token at its absolute lifetime', async () => {
    const u = await newUser(short.app)
    const idle = await signIn(short.app, u.email, u.password)
    const me = (token: string) => short.app.inject({ url: '/user', headers: { authorization: `Bearer ${token}` } })

    // Used every second for 4 s: longer than the 3 s idle TTL, so only renewal keeps it alive
    // (with 2 s to spare at each step, for a slow machine).
    for (let i = 0; i < 4; i++) {
      await sleep(1000)
      expect((await me(u.token)).statusCode).toBe(200)
    }
    problem(await me(idle), 401)

    // Past the 6 s absolute lifetime, use no longer helps.
    for (let i = 0; i < 3; i++) {
      await sleep(1000)
      await me(u.token)
    }
    problem(await me(u.token), 401)
  })
})

describe('secrets', () => {
  it('never appear in a log line', async () => {
    const u = await newUser(t.app)
    await inject({ url: '/sessions', headers: u.auth })
    const log = t.logs.join('')
    expect(log).toContain('/sessions')
    expect(log).not.toContain(u.token)
    expect(log).not.toContain(u.password)
    expect(log).not.toMatch(/\$2[aby]\$/)
  })
})
