import { createSign, generateKeyPairSync } from 'node:crypto'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { generate } from 'otplib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { manualClock } from '../../platform/clock.js'
import { mailsTo, newUser, problem, startTestApp, tokenOf, uniqueEmail, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { startOidcProvider, type TestProvider } from '../../../test/support/oidc-provider.js'

// Sign-in with a real OpenID Connect provider (oidc-provider on a loopback port), its login and
// consent pages filled in over HTTP as a browser would. The API is reached through inject: the
// provider sends the "browser" to PUBLIC_URL, and the test takes that address's path and query
// to the app.

const PUBLIC_URL = 'http://api.test'
const APP = 'https://app.example/signed-in'
const CALLBACK = `${PUBLIC_URL}/auth/local/callback`
const clock = manualClock()
let provider: TestProvider
let t: TestApp
// Every code, state and token the tests see: none may appear in a log line.
const secrets = new Set<string>()

// Keys of the other ways a client authenticates: Apple's signed client secret (an EC P-256 key
// of the team's, and another key the provider does not know), and private_key_jwt.
const pem = (key: ReturnType<typeof generateKeyPairSync>['privateKey']) => key.export({ type: 'pkcs8', format: 'pem' }).toString()
const teamKey = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const unknownKey = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const assertionKey = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const TEAM = 'TEAM123456'
const KEY_ID = 'KEY1234567'
const callbackOf = (name: string) => `${PUBLIC_URL}/auth/${name}/callback`

beforeAll(async () => {
  provider = await startOidcProvider({
    clients: [
      { client_id: 'freelancer', client_secret: 'freelancer-secret', redirect_uris: [CALLBACK] },
      // Another client of the same provider: an ID token for it is not for us.
      { client_id: 'someone-else', client_secret: 'someone-else-secret', redirect_uris: [CALLBACK] },
      // A client that asks for the answer as a posted form (response_mode=form_post, as Apple needs for the email).
      { client_id: 'posted', client_secret: 'posted-secret', redirect_uris: [callbackOf('posted')] },
      // A client that proves itself with a signed assertion (private_key_jwt), checked by oidc-provider.
      { client_id: 'keyed', redirect_uris: [callbackOf('keyed')], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ ...assertionKey.publicKey.export({ format: 'jwk' }), kid: 'assertion-key', alg: 'ES256', use: 'sig' }] } },
    ],
    signedSecretClients: [
      { client_id: 'com.example.freelancer', redirect_uris: [callbackOf('apple')], team_id: TEAM, key_id: KEY_ID, public_key: teamKey.publicKey },
      { client_id: 'com.example.other', redirect_uris: [callbackOf('apple-wrong-key')], team_id: TEAM, key_id: KEY_ID, public_key: teamKey.publicKey },
    ],
    now: () => clock.now(),
  })
  const local = { issuer: provider.issuer, allow_http: true }
  t = await startTestApp(
    {
      PUBLIC_URL,
      OIDC_PROVIDERS: JSON.stringify({
        local: { ...local, client_id: 'freelancer', client_secret: 'freelancer-secret', scopes: ['openid', 'email', 'profile'] },
        apple: { ...local, client_id: 'com.example.freelancer', team_id: TEAM, key_id: KEY_ID, private_key: pem(teamKey.privateKey) },
        'apple-wrong-key': { ...local, client_id: 'com.example.other', team_id: TEAM, key_id: KEY_ID, private_key: pem(unknownKey.privateKey) },
        keyed: { ...local, client_id: 'keyed', key_id: 'assertion-key', private_key: pem(assertionKey.privateKey) },
        posted: { ...local, client_id: 'posted', client_secret: 'posted-secret', response_mode: 'form_post' },
      }),
      OIDC_APP_REDIRECTS: `${APP},myapp://auth`,
    },
    { clock },
  )
})
afterAll(async () => {
  await t?.close()
  await provider?.close()
})

let subjects = 0
/** A person at the provider, with what it says about them. */
function person(fields: { email?: string; email_verified?: boolean } = {}) {
  const subject = `person-${Date.now().toString(36)}-${subjects++}`
  provider.accounts.set(subject, { email: fields.email ?? uniqueEmail('oidc'), email_verified: fields.email_verified ?? true, given_name: 'Rosa', family_name: 'Parks' })
  return subject
}

/** GET /auth/local/start: answers the provider's address it redirects to. */
async function start(query = `redirect_uri=${encodeURIComponent(APP)}`) {
  const res = await t.app.inject({ url: `/auth/local/start?${query}` })
  expect(res.statusCode, res.body).toBe(302)
  const location = new URL(res.headers.location as string)
  expect(location.origin).toBe(provider.issuer)
  expect(location.searchParams.get('code_challenge_method')).toBe('S256')
  secrets.add(location.searchParams.get('state')!)
  return location
}

/** Takes the provider's redirect to our callback to the app; answers the app's reply. */
async function callback(url: URL) {
  expect(url.origin + url.pathname).toBe(CALLBACK)
  if (url.searchParams.get('code')) secrets.add(url.searchParams.get('code')!)
  return t.app.inject({ url: url.pathname + url.search })
}

/** What the callback sent the app: the `code` for /auth/exchange, or `error`. */
function atApp(res: Awaited<ReturnType<typeof callback>>) {
  expect(res.statusCode, res.body).toBe(302)
  const location = new URL(res.headers.location as string)
  expect(location.origin + location.pathname).toBe(APP)
  const code = location.searchParams.get('code')
  if (code) secrets.add(code)
  return { code, error: location.searchParams.get('error'), linked: location.searchParams.get('linked') }
}

async function exchange(code: string) {
  const res = await t.app.inject({ method: 'POST', url: '/auth/exchange', payload: { code } })
  if (res.statusCode === 200) secrets.add(res.json().access_token)
  return res
}

/** A whole sign-in as `subject`, to the app; answers the exchange's answer. */
async function signInAs(subject: string, query?: string) {
  const { code, error } = atApp(await callback(await provider.signIn((await start(query)).toString(), subject)))
  expect(error).toBeNull()
  return exchange(code!)
}

/** The reasons logged for sign-ins that did not check out, since `from` lines. */
const refusals = (from: number) => t.logs.slice(from).filter((line) => line.includes('did not check out')).map((line) => String(JSON.parse(line).reason))
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

describe('sign-in with an OpenID Connect provider', () => {
  it('lists the providers configured', async () => {
    const res = await t.app.inject({ url: '/auth/providers' })
    expect(res.json().items).toEqual(['local', 'apple', 'apple-wrong-key', 'keyed', 'posted'].map((name) => ({ name, start_url: `/auth/${name}/start` })))
  })

  it('makes an account at the first sign-in, with the role asked for, and signs the same person in to it again', async () => {
    const email = uniqueEmail('first')
    const subject = person({ email })
    const first = await signInAs(subject, `redirect_uri=${encodeURIComponent(APP)}&role=WORKER`)
    expect(first.statusCode, first.body).toBe(200)
    const body = first.json()
    expect(body).toMatchObject({ token_type: 'Bearer', user: { email, first_name: 'Rosa', last_name: 'Parks', roles: ['WORKER'] } })
    expect((await t.app.inject({ url: '/user', headers: bearer(body.access_token) })).json().id).toBe(body.user.id)
    const identities = (await t.app.inject({ url: '/user/identities', headers: bearer(body.access_token) })).json()
    expect(identities).toMatchObject({ items: [{ provider: 'local', issuer: provider.issuer, email }], next_cursor: null })

    const again = await signInAs(subject)
    expect(again.json().user.id).toBe(body.user.id)
  })

  it('answers the tokens at the callback itself when no app address was given', async () => {
    const subject = person()
    const res = await callback(await provider.signIn((await start('')).toString(), subject))
    expect(res.statusCode, res.body).toBe(200)
    expect(res.headers['cache-control']).toBe('no-store')
    expect(res.json()).toMatchObject({ token_type: 'Bearer', user: { roles: ['CLIENT'] } })
    secrets.add(res.json().access_token)
  })

  it('takes the app\'s code once, and only within a minute', async () => {
    const subject = person()
    const { code } = atApp(await callback(await provider.signIn((await start()).toString(), subject)))
    expect((await exchange(code!)).statusCode).toBe(200)
    expect(problem(await exchange(code!), 400).code).toBe('invalid_exchange_code')

    const late = atApp(await callback(await provider.signIn((await start()).toString(), subject)))
    clock.advance(61_000)
    expect(problem(await exchange(late.code!), 400).code).toBe('invalid_exchange_code')
    expect(problem(await exchange('made-up'), 400).code).toBe('invalid_exchange_code')
  })

  it('refuses a redirect address that is not listed exactly', async () => {
    for (const address of ['https://evil.example/signed-in', `${APP}/more`, `${APP}?x=1`, 'https://app.example/signed-in/', 'HTTPS://app.example/signed-in']) {
      const res = await t.app.inject({ url: `/auth/local/start?redirect_uri=${encodeURIComponent(address)}` })
      expect(problem(res, 400).code).toBe('redirect_not_allowed')
    }
    // A custom scheme of a mobile app, listed: taken.
    expect((await t.app.inject({ url: `/auth/local/start?redirect_uri=${encodeURIComponent('myapp://auth')}` })).statusCode).toBe(302)
    expect(problem(await t.app.inject({ url: '/auth/nowhere/start' }), 404).code).toBe('provider_not_found')
  })

  it('refuses a replayed state: the second visit of the same callback finds no sign-in', async () => {
    const subject = person()
    const back = await provider.signIn((await start()).toString(), subject)
    expect(atApp(await callback(back)).code).toBeTruthy()
    expect(problem(await callback(back), 400).code).toBe('sign_in_failed')
  })

  it('refuses a replayed authorization code with a fresh state', async () => {
    const subject = person()
    const back = await provider.signIn((await start()).toString(), subject)
    expect(atApp(await callback(back)).code).toBeTruthy()
    // A new sign-in's state, with the code already used.
    const fresh = await start()
    const replay = new URL(back)
    replay.searchParams.set('state', fresh.searchParams.get('state')!)
    const from = t.logs.length
    expect(atApp(await callback(replay)).error).toBe('sign_in_failed')
    expect(refusals(from)).toEqual([expect.stringContaining('invalid_grant')])
  })

  it('refuses an ID token with another nonce', async () => {
    const subject = person()
    const url = await start()
    url.searchParams.set('nonce', 'not-the-nonce-we-sent-0123456789')
    const from = t.logs.length
    expect(atApp(await callback(await provider.signIn(url.toString(), subject))).error).toBe('sign_in_failed')
    expect(refusals(from)).toEqual([expect.stringContaining('claim nonce')])
  })

  it('refuses a code issued to another client: the provider gives our client no tokens for it', async () => {
    const subject = person()
    const url = await start()
    url.searchParams.set('client_id', 'someone-else')
    const from = t.logs.length
    expect(atApp(await callback(await provider.signIn(url.toString(), subject))).error).toBe('sign_in_failed')
    expect(refusals(from)).toEqual([expect.stringContaining('invalid_grant')])
  })

  it('refuses an ID token whose audience is another client, when one reaches it', async () => {
    // A man in the middle of the token request redeems the code as the other client: the
    // provider answers that client's tokens, genuinely signed, and they come to our check.
    const subject = person()
    const url = await start('')
    url.searchParams.set('client_id', 'someone-else')
    provider.rewriteTokenRequest = (form) => {
      form.set('client_id', 'someone-else')
      form.set('client_secret', 'someone-else-secret')
    }
    const from = t.logs.length
    try {
      const res = problem(await callback(await provider.signIn(url.toString(), subject)), 400)
      expect(res).toMatchObject({ code: 'sign_in_failed', detail: expect.stringMatching(/did not check out/) })
    } finally {
      provider.rewriteTokenRequest = undefined
    }
    expect(refusals(from)).toEqual([expect.stringContaining('claim aud')])
    // Nobody was signed in or made: the same person's proper sign-in makes the account now.
    const proper = await signInAs(subject)
    expect(proper.statusCode).toBe(200)
    expect((await t.app.inject({ url: '/user/identities', headers: bearer(proper.json().access_token) })).json().items).toHaveLength(1)
  })

  it('refuses an ID token not signed by the provider\'s keys', async () => {
    // The same claims (nonce and all), signed again with a key of the forger's under the provider's key id.
    const forger = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const subject = person()
    const url = await start('')
    provider.rewriteTokenResponse = (body) => {
      const [header, payload] = String(body.id_token).split('.')
      const signature = createSign('RSA-SHA256').update(`${header}.${payload}`).sign(forger.privateKey).toString('base64url')
      expect(decodeProtectedHeader(String(body.id_token)).alg).toBe('RS256')
      body.id_token = `${header}.${payload}.${signature}`
    }
    const from = t.logs.length
    try {
      expect(problem(await callback(await provider.signIn(url.toString(), subject)), 400).code).toBe('sign_in_failed')
    } finally {
      provider.rewriteTokenResponse = undefined
    }
    expect(refusals(from)).toEqual([expect.stringMatching(/signature/i)])
  })

  it('refuses a sign-in whose state lapsed', async () => {
    const subject = person()
    const url = await start()
    clock.advance(11 * 60_000)
    expect(problem(await callback(await provider.signIn(url.toString(), subject)), 400).code).toBe('sign_in_failed')
  })

  describe('an account with the same email', () => {
    it('is signed in to when the provider verified the email and the account confirmed it', async () => {
      const u = await newUser(t.app)
      const res = await signInAs(person({ email: u.email.toUpperCase(), email_verified: true }))
      expect(res.statusCode, res.body).toBe(200)
      expect(res.json().user.id).toBe(u.id)
    })

    it('is not, when the provider does not vouch for the email', async () => {
      const u = await newUser(t.app)
      const subject = person({ email: u.email, email_verified: false })
      expect(atApp(await callback(await provider.signIn((await start()).toString(), subject))).error).toBe('link_from_account')
      // Without an app address the problem itself, saying what to do.
      const res = problem(await callback(await provider.signIn((await start('')).toString(), subject)), 409)
      expect(res.code).toBe('link_from_account')
      expect(res.detail).toMatch(/sign in .* link/i)
    })

    it('is not, when the account never confirmed its email', async () => {
      const u = await newUser(t.app, { confirmed: false })
      const subject = person({ email: u.email, email_verified: true })
      expect(atApp(await callback(await provider.signIn((await start()).toString(), subject))).error).toBe('link_from_account')
    })
  })

  describe('linking from the account', () => {
    async function link(u: SignedIn, subject: string) {
      const res = await t.app.inject({ method: 'POST', url: '/auth/local/start?link=1', headers: u.auth })
      expect(res.statusCode, res.body).toBe(200)
      return callback(await provider.signIn(res.json().authorization_url, subject))
    }

    it('links a provider account, which then signs in to this account; unlinking ends that', async () => {
      const u = await newUser(t.app)
      // Not verified: linking from the signed-in account needs no email at all.
      const subject = person({ email: u.email, email_verified: false })
      const linked = await link(u, subject)
      expect(linked.statusCode, linked.body).toBe(200)
      expect(linked.json()).toMatchObject({ linked: true, identity: { provider: 'local' } })
      const res = await signInAs(subject)
      expect(res.json().user.id).toBe(u.id)

      const list = (await t.app.inject({ url: '/user/identities', headers: u.auth })).json()
      expect(list.items).toHaveLength(1)
      // Someone else can't see or remove it.
      const other = await newUser(t.app)
      expect((await t.app.inject({ url: '/user/identities', headers: other.auth })).json().items).toEqual([])
      expect(problem(await t.app.inject({ method: 'DELETE', url: `/user/identities/${list.items[0].id}`, headers: other.auth }), 404).code).toBe('identity_not_found')
      // The owner, who has a password, can.
      expect((await t.app.inject({ method: 'DELETE', url: `/user/identities/${list.items[0].id}`, headers: u.auth })).statusCode).toBe(204)
      expect(problem(await callback(await provider.signIn((await start('')).toString(), subject)), 409).code).toBe('link_from_account')
    })

    it('comes back to the app with linked=1, and refuses a provider account that signs in to someone else', async () => {
      const taken = person()
      expect((await signInAs(taken)).statusCode).toBe(200)
      const u = await newUser(t.app)
      const res = await t.app.inject({ method: 'POST', url: `/auth/local/start?link=1&redirect_uri=${encodeURIComponent(APP)}`, headers: u.auth })
      expect(atApp(await callback(await provider.signIn(res.json().authorization_url, taken))).error).toBe('identity_taken')
      const fresh = person()
      const ok = await t.app.inject({ method: 'POST', url: `/auth/local/start?link=1&redirect_uri=${encodeURIComponent(APP)}`, headers: u.auth })
      expect(atApp(await callback(await provider.signIn(ok.json().authorization_url, fresh))).linked).toBe('1')
      expect(problem(await t.app.inject({ method: 'POST', url: '/auth/local/start?link=1' }), 401).code).toBe('unauthenticated')
    })

    it('never unlinks the last way to sign in of an account without a password', async () => {
      const subject = person()
      const token = (await signInAs(subject)).json().access_token
      const me = { id: '', email: '', password: '', token, auth: bearer(token) }
      const [only] = (await t.app.inject({ url: '/user/identities', headers: me.auth })).json().items
      expect(problem(await t.app.inject({ method: 'DELETE', url: `/user/identities/${only.id}`, headers: me.auth }), 409).code).toBe('last_sign_in_method')
      // With a second provider account linked, either can go.
      expect((await link(me, person())).statusCode).toBe(200)
      expect((await t.app.inject({ method: 'DELETE', url: `/user/identities/${only.id}`, headers: me.auth })).statusCode).toBe(204)
      const [last] = (await t.app.inject({ url: '/user/identities', headers: me.auth })).json().items
      expect(problem(await t.app.inject({ method: 'DELETE', url: `/user/identities/${last.id}`, headers: me.auth }), 409).code).toBe('last_sign_in_method')
    })
  })

  describe('an account made by a provider, without a password', () => {
    it('sets its first password with a recent sign-in instead of a current one; then its provider can go', async () => {
      const email = uniqueEmail('nopass')
      const subject = person({ email })
      const old = bearer((await signInAs(subject)).json().access_token)
      const password = 'a first long passphrase'
      secrets.add(password)
      // A token from more than 5 minutes ago alone can't give the account a password.
      clock.advance(6 * 60_000)
      expect(problem(await t.app.inject({ method: 'POST', url: '/user', headers: old, payload: { password } }), 403).code).toBe('recent_sign_in_required')
      const fresh = bearer((await signInAs(subject)).json().access_token)
      expect((await t.app.inject({ method: 'POST', url: '/user', headers: fresh, payload: { password } })).statusCode).toBe(200)
      // As any new password: the other sessions end; it signs in with it from now on.
      problem(await t.app.inject({ url: '/user', headers: old }), 401)
      const signedIn = await t.app.inject({ method: 'POST', url: '/authorize', payload: { email, password } })
      expect(signedIn.statusCode).toBe(200)
      secrets.add(signedIn.json().access_token)
      // With a password, the provider is no longer the only way in; and a change now needs the password.
      const [only] = (await t.app.inject({ url: '/user/identities', headers: fresh })).json().items
      expect((await t.app.inject({ method: 'DELETE', url: `/user/identities/${only.id}`, headers: fresh })).statusCode).toBe(204)
      expect(problem(await t.app.inject({ method: 'POST', url: '/user', headers: fresh, payload: { password: 'yet another passphrase' } }), 400).code).toBe('current_password_required')
    })

    it('or through a forgotten password\'s mail', async () => {
      const email = uniqueEmail('nopass')
      const subject = person({ email })
      expect((await signInAs(subject)).statusCode).toBe(200)
      expect((await t.app.inject({ method: 'POST', url: '/password/forgot', payload: { email } })).statusCode).toBe(202)
      const token = tokenOf((await mailsTo(t.app, email)).find((m) => m.subject?.includes('reset'))!)
      secrets.add(token)
      const password = 'chosen from the mail link'
      secrets.add(password)
      expect((await t.app.inject({ method: 'POST', url: '/password/reset', payload: { token, password } })).statusCode).toBe(204)
      const signedIn = await t.app.inject({ method: 'POST', url: '/authorize', payload: { email, password } })
      expect(signedIn.statusCode).toBe(200)
      secrets.add(signedIn.json().access_token)
    })
  })

  it('asks an account with two-factor on for its code after the provider', async () => {
    const subject = person()
    const token = (await signInAs(subject)).json().access_token
    const { secret } = (await t.app.inject({ method: 'POST', url: '/user/2fa', headers: bearer(token) })).json()
    secrets.add(secret)
    const confirm = await t.app.inject({ method: 'POST', url: '/user/2fa/confirm', headers: bearer(token), payload: { code: await generate({ secret, epoch: Math.floor(clock.now().getTime() / 1000) }) } })
    expect(confirm.statusCode).toBe(200)
    clock.advance(30_000)
    const asked = problem(await signInAs(subject), 401) as unknown as { code: string; mfa_token: string }
    expect(asked.code).toBe('mfa_required')
    secrets.add(asked.mfa_token)
    const code = await generate({ secret, epoch: Math.floor(clock.now().getTime() / 1000) })
    secrets.add(code)
    const res = await t.app.inject({ method: 'POST', url: '/authorize/mfa', payload: { mfa_token: asked.mfa_token, code } })
    expect(res.statusCode).toBe(200)
    secrets.add(res.json().access_token)
  })

  describe('other ways for our client to prove itself at the provider', () => {
    /** A whole sign-in through the provider configured as `name`, without an app address: the callback's answer. */
    async function signInWith(name: string, subject: string) {
      const res = await t.app.inject({ url: `/auth/${name}/start` })
      expect(res.statusCode, res.body).toBe(302)
      const back = await provider.signIn(res.headers.location as string, subject)
      expect(back.origin + back.pathname).toBe(callbackOf(name))
      if (back.searchParams.get('code')) secrets.add(back.searchParams.get('code')!)
      const answer = await t.app.inject({ url: back.pathname + back.search })
      if (answer.statusCode === 200) secrets.add(answer.json().access_token)
      return answer
    }

    it('a client secret signed with the team\'s key, as Apple asks, checked by the provider and signed anew before it lapses', async () => {
      const seen = provider.signedSecrets.length
      const subject = person()
      const first = await signInWith('apple', subject)
      expect(first.statusCode, first.body).toBe(200)
      expect(first.json().user).toMatchObject({ first_name: 'Rosa', roles: ['CLIENT'] })
      const [checked] = provider.signedSecrets.slice(seen)
      expect(checked).toMatchObject({ accepted: true })
      secrets.add(checked!.secret)
      expect(decodeProtectedHeader(checked!.secret)).toEqual({ alg: 'ES256', kid: KEY_ID })
      const claims = decodeJwt(checked!.secret)
      expect(claims).toMatchObject({ iss: TEAM, sub: 'com.example.freelancer', aud: provider.issuer })
      expect(claims.exp! - claims.iat!).toBe(3600)
      expect(claims.iat).toBe(Math.floor(clock.now().getTime() / 1000))

      // Reused while it has time left; 56 minutes on, a new one is signed (and still checks out).
      expect((await signInWith('apple', subject)).json().user.id).toBe(first.json().user.id)
      clock.advance(56 * 60_000)
      expect((await signInWith('apple', subject)).statusCode).toBe(200)
      const later = provider.signedSecrets.slice(seen)
      expect(later.map((s) => s.accepted)).toEqual([true, true, true])
      expect(later[1]!.secret).toBe(later[0]!.secret)
      expect(later[2]!.secret).not.toBe(later[0]!.secret)
      secrets.add(later[2]!.secret)
      expect(decodeJwt(later[2]!.secret).iat).toBe(Math.floor(clock.now().getTime() / 1000))
    })

    it('a secret signed with a key the provider does not know is refused there: the sign-in fails', async () => {
      const seen = provider.signedSecrets.length
      const from = t.logs.length
      expect(problem(await signInWith('apple-wrong-key', person()), 400).code).toBe('sign_in_failed')
      expect(provider.signedSecrets.slice(seen)).toMatchObject([{ accepted: false, reason: expect.stringMatching(/signature/) }])
      expect(refusals(from)).toEqual([expect.stringContaining('invalid_client')])
    })

    it('an answer posted as a form (response_mode=form_post): taken once, as a query\'s is', async () => {
      const start = await t.app.inject({ url: `/auth/posted/start?redirect_uri=${encodeURIComponent(APP)}` })
      expect(new URL(start.headers.location as string).searchParams.get('response_mode')).toBe('form_post')
      const { url, form } = await provider.signInPosted(start.headers.location as string, person())
      expect(url.toString()).toBe(callbackOf('posted'))
      expect(form.get('code')).toBeTruthy()
      secrets.add(form.get('code')!)
      const post = () => t.app.inject({ method: 'POST', url: url.pathname, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: form.toString() })
      const { code, error } = atApp(await post())
      expect(error).toBeNull()
      expect((await exchange(code!)).statusCode).toBe(200)
      // The same form again finds no sign-in under way.
      expect(problem(await post(), 400).code).toBe('sign_in_failed')
    })

    describe('Apple\'s posted `user` (the name, at the first sign-in)', () => {
      /** A person as Apple says them in the ID token: an email, never a name. */
      function applePerson() {
        const subject = `apple-${Date.now().toString(36)}-${subjects++}`
        const email = uniqueEmail('apple')
        provider.accounts.set(subject, { email, email_verified: true })
        return { subject, email }
      }

      /** A whole sign-in through the form_post provider, with `user` added to the posted form as Apple adds it; answers the user signed in. */
      async function postedSignIn(subject: string, user: string | undefined, name = 'posted') {
        const start = await t.app.inject({ url: `/auth/${name}/start?redirect_uri=${encodeURIComponent(APP)}` })
        expect(start.statusCode, start.body).toBe(302)
        let url: URL
        let form: URLSearchParams
        if (name === 'posted') {
          ({ url, form } = await provider.signInPosted(start.headers.location as string, subject))
        } else {
          // A provider asked for a query answer: the same fields, posted by hand to the form route.
          const back = await provider.signIn(start.headers.location as string, subject)
          url = new URL(back.origin + back.pathname)
          form = new URLSearchParams(back.search)
        }
        secrets.add(form.get('code')!)
        if (user !== undefined) form.set('user', user)
        const { code, error } = atApp(await t.app.inject({ method: 'POST', url: url.pathname, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: form.toString() }))
        expect(error).toBeNull()
        const res = await exchange(code!)
        expect(res.statusCode, res.body).toBe(200)
        return res.json().user as { id: string; email: string | null; first_name: string; last_name: string }
      }

      it('names the account the sign-in makes; its email is never read, and a later sign-in\'s changes nothing', async () => {
        const { subject, email } = applePerson()
        const elsewhere = uniqueEmail('not-theirs')
        const made = await postedSignIn(subject, JSON.stringify({ name: { firstName: '  Ana ', lastName: 'Lima' }, email: elsewhere }))
        expect(made).toMatchObject({ first_name: 'Ana', last_name: 'Lima', email })
        expect(await t.app.platform.database.db.selectFrom('users').select('id').where('email', '=', elsewhere).execute()).toEqual([])
        const again = await postedSignIn(subject, JSON.stringify({ name: { firstName: 'Mallory', lastName: 'Other' }, email: elsewhere }))
        expect(again).toMatchObject({ id: made.id, first_name: 'Ana', last_name: 'Lima', email })
        // The ID token's name, when it says one, comes first.
        const named = person()
        expect(await postedSignIn(named, JSON.stringify({ name: { firstName: 'Ana', lastName: 'Lima' } }))).toMatchObject({ first_name: 'Rosa', last_name: 'Parks' })
      })

      it('keeps a name part within 100 characters, never cutting one in two, and leaves out what is no name', async () => {
        const long = await postedSignIn(applePerson().subject, JSON.stringify({ name: { firstName: `${'é'.repeat(99)}😀😀`, lastName: 'L'.repeat(300) } }))
        expect(long).toMatchObject({ first_name: `${'é'.repeat(99)}😀`, last_name: 'L'.repeat(100) })
        // Only the other part, when one is no text fit for a name.
        expect(await postedSignIn(applePerson().subject, JSON.stringify({ name: { firstName: 'A\u0000na', lastName: 'Lima' } }))).toMatchObject({ last_name: 'Lima' })
        const shapes = ['not json', '[]', 'null', '{"name":"Ana Lima"}', JSON.stringify({ name: { firstName: 7, lastName: ['Lima'] } }), JSON.stringify({ name: { firstName: '\ud800', lastName: ' \n ' } }), JSON.stringify({ email: 'x@example.com' })]
        for (const user of [...shapes, undefined]) {
          const { subject, email } = applePerson()
          // Named from the email, as without the field.
          expect(await postedSignIn(subject, user), String(user)).toMatchObject({ first_name: email.split('@')[0], last_name: '' })
        }
      })

      it('is read only from a provider that posts its answer: posted to another\'s callback, it is not', async () => {
        const { subject, email } = applePerson()
        expect(await postedSignIn(subject, JSON.stringify({ name: { firstName: 'Ana', lastName: 'Lima' } }), 'local')).toMatchObject({ first_name: email.split('@')[0], last_name: '' })
      })
    })

    it('a signed assertion (private_key_jwt), checked by the provider', async () => {
      const res = await signInWith('keyed', person())
      expect(res.statusCode, res.body).toBe(200)
    })
  })

  it('writes no code, state or token to any log line', () => {
    expect(secrets.size).toBeGreaterThan(20)
    const logs = t.logs.join('')
    for (const secret of secrets) expect(logs).not.toContain(secret)
    expect(logs).not.toContain('freelancer-secret')
    // Nor any part of a private key.
    for (const key of [teamKey, unknownKey, assertionKey]) for (const line of pem(key.privateKey).split('\n').slice(1, -2)) expect(logs).not.toContain(line)
  })
})
