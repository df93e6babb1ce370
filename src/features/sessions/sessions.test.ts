import type { InjectOptions } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, problem, signIn, startTestApp, uniqueEmail, type SignedIn, type TestApp } from '../../../test/support/app.js'

let t: TestApp
const LOGIN_FAILURES = 5
const ADDRESS_FAILURES = 10
const AUTH_LIMIT = 40

beforeAll(async () => {
  t = await startTestApp({
    LOGIN_FAILURES_PER_HOUR: String(LOGIN_FAILURES),
    LOGIN_FAILURES_PER_ADDRESS_PER_HOUR: String(ADDRESS_FAILURES),
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

  it('slows down the address that fails on an account, never the account: its owner signs in from elsewhere', async () => {
    const u = await newUser(t.app)
    const [attacker, owner] = ['198.51.100.7', '203.0.113.9']
    const attempt = (remoteAddress: string, password: string) => t.app.inject({ method: 'POST', url: '/authorize', remoteAddress, payload: { email: u.email, password } })
    for (let i = 0; i < LOGIN_FAILURES; i++) problem(await attempt(attacker, `wrong ${i}`), 401)
    // The attacker's address waits, even with the right password...
    const slowed = await attempt(attacker, u.password)
    expect(problem(slowed, 429).code).toBe('too_many_failed_sign_ins')
    expect(Number(slowed.headers['retry-after'])).toBeGreaterThan(3000)
    // ...the owner, from another address, does not.
    expect((await attempt(owner, u.password)).statusCode).toBe(200)
  })

  it('counts guesses sent together before answering any: a burst gets no more tries than one at a time', async () => {
    const u = await newUser(t.app)
    const burst = await Promise.all(
      Array.from({ length: 12 }, (_, i) => t.app.inject({ method: 'POST', url: '/authorize', remoteAddress: '198.51.100.8', payload: { email: u.email, password: `wrong ${i}` } })),
    )
    const statuses = burst.map((res) => res.statusCode).sort()
    expect(statuses).toEqual([...Array<number>(LOGIN_FAILURES).fill(401), ...Array<number>(12 - LOGIN_FAILURES).fill(429)])
  })

  it('slows down an address that fails on many accounts', async () => {
    const address = '198.51.100.9'
    // One after another: sign-ins sent together from one address are each counted before their
    // password is checked, so a burst of them could meet the address's limit on its own.
    const users: SignedIn[] = []
    for (let i = 0; i <= ADDRESS_FAILURES; i++) users.push(await newUser(t.app))
    for (const u of users.slice(0, ADDRESS_FAILURES)) {
      problem(await t.app.inject({ method: 'POST', url: '/authorize', remoteAddress: address, payload: { email: u.email, password: 'not the password' } }), 401)
    }
    const last = users.at(-1)!
    const slowed = await t.app.inject({ method: 'POST', url: '/authorize', remoteAddress: address, payload: { email: last.email, password: last.password } })
    expect(problem(slowed, 429).code).toBe('too_many_failed_sign_ins')
    expect((await inject({ method: 'POST', url: '/authorize', payload: { email: last.email, password: last.password } })).statusCode).toBe(200)
  })

  it('does not count a sign-in that succeeds', async () => {
    const u = await newUser(t.app)
    const address = '198.51.100.10'
    const attempt = (password: string) => t.app.inject({ method: 'POST', url: '/authorize', remoteAddress: address, payload: { email: u.email, password } })
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < LOGIN_FAILURES - 1; i++) problem(await attempt('wrong'), 401)
      expect((await attempt(u.password)).statusCode).toBe(200)
    }
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
