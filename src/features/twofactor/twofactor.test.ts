import { generate } from 'otplib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { manualClock } from '../../platform/clock.js'
import { newUser, problem, startTestApp, type SignedIn, type TestApp } from '../../../test/support/app.js'

// Codes are computed here from the secret the API answers, at the time of the app's clock, which
// the tests move instead of sleeping.
const clock = manualClock(new Date('2026-12-07T10:00:00.000Z'))
let t: TestApp
// Every secret and code the tests see: none may appear in a log line.
const secrets = new Set<string>()

beforeAll(async () => {
  t = await startTestApp({ TOTP_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64') }, { clock })
})
afterAll(async () => t.close())

const codeAt = async (secret: string, at = clock.now()) => {
  const code = await generate({ secret, epoch: Math.floor(at.getTime() / 1000) })
  secrets.add(code)
  return code
}

/** Sets up and turns on two-factor for the user; answers its secret and recovery codes. */
async function turnOn(u: SignedIn) {
  const setup = await t.app.inject({ method: 'POST', url: '/user/2fa', headers: u.auth })
  expect(setup.statusCode).toBe(200)
  const { secret, otpauth_uri: uri } = setup.json()
  secrets.add(secret)
  expect(uri).toMatch(/^otpauth:\/\/totp\//)
  expect(new URL(uri).searchParams.get('secret')).toBe(secret)
  const confirm = await t.app.inject({ method: 'POST', url: '/user/2fa/confirm', headers: u.auth, payload: { code: await codeAt(secret) } })
  expect(confirm.statusCode).toBe(200)
  const codes: string[] = confirm.json().recovery_codes
  for (const code of codes) secrets.add(code)
  // The next code comes from the next time step: the one just used is taken.
  clock.advance(30_000)
  return { secret, codes }
}

const signIn = (u: SignedIn) => t.app.inject({ method: 'POST', url: '/authorize', payload: { email: u.email, password: u.password } })

async function mfaToken(u: SignedIn) {
  const body = problem(await signIn(u), 401) as unknown as { code: string; mfa_token: string; mfa_expires_in: number }
  expect(body.code).toBe('mfa_required')
  expect(body.mfa_expires_in).toBeGreaterThan(0)
  secrets.add(body.mfa_token)
  return body.mfa_token
}

describe('two-factor sign-in (TOTP)', () => {
  it('is off until a code confirms it; then a sign-in asks for a code and answers the token for it', async () => {
    const u = await newUser(t.app)
    expect((await t.app.inject({ url: '/user/2fa', headers: u.auth })).json()).toEqual({ enabled: false, recovery_codes_left: 0 })
    const setup = (await t.app.inject({ method: 'POST', url: '/user/2fa', headers: u.auth })).json()
    secrets.add(setup.secret)
    // Set up but not confirmed: sign-in is as before.
    expect((await signIn(u)).statusCode).toBe(200)
    // A wrong code does not turn it on.
    const wrong = await t.app.inject({ method: 'POST', url: '/user/2fa/confirm', headers: u.auth, payload: { code: '000000' } })
    expect(problem(wrong, 400).code).toBe('invalid_mfa_code')
    const confirm = await t.app.inject({ method: 'POST', url: '/user/2fa/confirm', headers: u.auth, payload: { code: await codeAt(setup.secret) } })
    expect(confirm.statusCode).toBe(200)
    expect(confirm.json().recovery_codes).toHaveLength(10)
    expect(new Set(confirm.json().recovery_codes).size).toBe(10)
    expect((await t.app.inject({ url: '/user/2fa', headers: u.auth })).json()).toEqual({ enabled: true, recovery_codes_left: 10 })
    clock.advance(30_000)

    const token = await mfaToken(u)
    const res = await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: token, code: await codeAt(setup.secret) } })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toMatchObject({ token_type: 'Bearer', user: { id: u.id } })
    expect((await t.app.inject({ url: '/user', headers: { authorization: `Bearer ${res.json().access_token}` } })).json().id).toBe(u.id)
    // The mfa_token served its sign-in.
    const again = await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: token, code: await codeAt(setup.secret, new Date(clock.now().getTime() + 30_000)) } })
    expect(problem(again, 401).code).toBe('invalid_mfa_token')
  })

  it('takes a code once: the same code again, even within its window, is refused', async () => {
    const u = await newUser(t.app)
    const { secret } = await turnOn(u)
    const code = await codeAt(secret)
    expect((await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: await mfaToken(u), code } })).statusCode).toBe(200)
    const replay = await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: await mfaToken(u), code } })
    expect(problem(replay, 401).code).toBe('invalid_mfa_code')
    // And an earlier step's code after a later one was taken.
    clock.advance(30_000)
    const earlier = await codeAt(secret, new Date(clock.now().getTime() - 60_000))
    const current = await codeAt(secret)
    expect((await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: await mfaToken(u), code: current } })).statusCode).toBe(200)
    expect(problem(await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: await mfaToken(u), code: earlier } }), 401).code).toBe('invalid_mfa_code')
  })

  it('takes a code one step off either way, and not two', async () => {
    const u = await newUser(t.app)
    const { secret } = await turnOn(u)
    const now = clock.now().getTime()
    const twoBack = await codeAt(secret, new Date(now - 60_000))
    expect(problem(await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: await mfaToken(u), code: twoBack } }), 401).code).toBe('invalid_mfa_code')
    const oneAhead = await codeAt(secret, new Date(now + 30_000))
    expect((await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: await mfaToken(u), code: oneAhead } })).statusCode).toBe(200)
    clock.advance(90_000)
  })

  it('takes each recovery code once, in any case and without its dash', async () => {
    const u = await newUser(t.app)
    const { codes } = await turnOn(u)
    const [first, second] = codes as [string, string]
    expect((await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: await mfaToken(u), recovery_code: first } })).statusCode).toBe(200)
    expect(problem(await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: await mfaToken(u), recovery_code: first } }), 401).code).toBe('invalid_mfa_code')
    const typed = second.toUpperCase().replace('-', '')
    expect((await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: await mfaToken(u), recovery_code: typed } })).statusCode).toBe(200)
    expect((await t.app.inject({ url: '/user/2fa', headers: u.auth })).json().recovery_codes_left).toBe(8)
  })

  it('gives an mfa_token five tries, then refuses it even with the right code', async () => {
    const u = await newUser(t.app)
    const { secret } = await turnOn(u)
    const token = await mfaToken(u)
    for (let i = 0; i < 5; i++) {
      expect(problem(await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: token, code: String(100000 + i) } }), 401).code).toBe('invalid_mfa_code')
    }
    expect(problem(await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: token, code: await codeAt(secret) } }), 401).code).toBe('invalid_mfa_token')
  })

  it('lets an mfa_token lapse after five minutes', async () => {
    const u = await newUser(t.app)
    const { secret } = await turnOn(u)
    const token = await mfaToken(u)
    clock.advance(5 * 60_000 + 1000)
    expect(problem(await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: token, code: await codeAt(secret) } }), 401).code).toBe('invalid_mfa_token')
  })

  it('refuses a made-up mfa_token and a request with neither code', async () => {
    expect(problem(await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: 'made-up', code: '123456' } }), 401).code).toBe('invalid_mfa_token')
    expect(problem(await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: 'made-up' } }), 400).code).toBe('code_or_password_required')
    expect(problem(await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: 'made-up', code: '12345x' } }), 400).code).toBe('invalid_input')
  })

  it('turns off with a current code or the password, never with neither or a wrong one', async () => {
    const u = await newUser(t.app)
    const { secret } = await turnOn(u)
    expect(problem(await t.app.inject({ method: 'DELETE', url: '/user/2fa', headers: u.auth, payload: {} }), 400).code).toBe('code_or_password_required')
    expect(problem(await t.app.inject({ method: 'DELETE', url: '/user/2fa', headers: u.auth, payload: { password: 'not the password' } }), 403).code).toBe('wrong_password')
    expect(problem(await t.app.inject({ method: 'DELETE', url: '/user/2fa', headers: u.auth, payload: { code: '000000' } }), 403).code).toBe('invalid_mfa_code')
    // Setting up another authenticator while on is refused.
    expect(problem(await t.app.inject({ method: 'POST', url: '/user/2fa', headers: u.auth }), 409).code).toBe('two_factor_already_on')
    expect((await t.app.inject({ method: 'DELETE', url: '/user/2fa', headers: u.auth, payload: { code: await codeAt(secret) } })).statusCode).toBe(204)
    expect((await signIn(u)).statusCode).toBe(200)

    const v = await newUser(t.app)
    await turnOn(v)
    expect((await t.app.inject({ method: 'DELETE', url: '/user/2fa', headers: v.auth, payload: { password: v.password } })).statusCode).toBe(204)
    expect((await signIn(v)).statusCode).toBe(200)
    expect(problem(await t.app.inject({ method: 'DELETE', url: '/user/2fa', headers: v.auth, payload: { password: v.password } }), 409).code).toBe('two_factor_off')
  })

  it('keeps one user\'s two-factor to itself', async () => {
    const [a, b] = [await newUser(t.app), await newUser(t.app)]
    const { secret } = await turnOn(a)
    // b's own state is untouched, and a's code does nothing for b.
    expect((await t.app.inject({ url: '/user/2fa', headers: b.auth })).json().enabled).toBe(false)
    expect(problem(await t.app.inject({ method: 'DELETE', url: '/user/2fa', headers: b.auth, payload: { code: await codeAt(secret) } }), 409).code).toBe('two_factor_off')
    expect((await signIn(b)).statusCode).toBe(200)
  })

  it('writes no secret, code, recovery code or mfa_token to any log line', () => {
    expect(secrets.size).toBeGreaterThan(20)
    const logs = t.logs.join('')
    expect(logs.length).toBeGreaterThan(0)
    for (const secret of secrets) expect(logs).not.toContain(secret)
  })
})
