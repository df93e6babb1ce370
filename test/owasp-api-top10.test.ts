import { createECDH, randomBytes } from 'node:crypto'
import net from 'node:net'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { createLocalPaymentProvider, type IntentState, type PaymentProvider } from '../src/platform/payments/index.js'
import { balanceOf, cardAccount, escrowAccount, payableAccount } from '../src/platform/payments/ledger.js'
import { newUser, problem, signIn, startTestApp, type SignedIn, type TestApp } from './support/app.js'
import { fetchSpec, idFieldKey, idFieldsOf, operationsOf, resolve, type IdField, type JsonSchema, type Operation, type Spec } from './support/openapi-walk.js'
import { waitUntil } from './support/wait.js'

// The OWASP API Security Top 10 (2023), item by item, played against the API. The cases that
// cover "every route" are made from /openapi.json, so a new route is attacked as soon as it is
// documented: the object-level matrix below even fails until it is told how to make a thing for
// the new route's id to name.

/**
 * The payment provider the app talks to: the local one, except that a case may make its charge
 * (createPaymentIntent) or its payout (createTransfer) answer what a broken provider would.
 */
let brokenCharge: (() => unknown) | undefined
let brokenTransfer: (() => unknown) | undefined
const local = createLocalPaymentProvider()
const payments: PaymentProvider = Object.assign(Object.create(local) as PaymentProvider, {
  async createPaymentIntent(...args: Parameters<PaymentProvider['createPaymentIntent']>) {
    return brokenCharge ? (brokenCharge() as IntentState) : local.createPaymentIntent(...args)
  },
  async createTransfer(...args: Parameters<PaymentProvider['createTransfer']>) {
    return brokenTransfer ? (brokenTransfer() as { id: string }) : local.createTransfer(...args)
  },
})

let t: TestApp
/** An app with tight bounds, for the cases that reach them (its rate limit is spent last). */
let tight: TestApp
let spec: Spec
let operations: Operation[]
let jpeg: Buffer

beforeAll(async () => {
  // push.example.com: the made-up push service the subscriptions below name (it resolves nowhere).
  t = await startTestApp({ JOB_SWEEP_INTERVAL: '0', SEND_RATE_LIMIT: '100000', PUSH_ENDPOINT_ALLOW: 'push.example.com' }, { payments })
  tight = await startTestApp({
    JOB_SWEEP_INTERVAL: '0',
    RATE_LIMIT_MAX: '100',
    LOGIN_FAILURES_PER_HOUR: '3',
    WS_MAX_CONNECTIONS: '1',
    PICTURE_MAX_BYTES: '2048',
    CORS_ORIGINS: 'https://app.example.com',
  })
  spec = await fetchSpec(t.app)
  operations = operationsOf(spec)
  jpeg = await sharp({ create: { width: 48, height: 48, channels: 3, background: { r: 20, g: 160, b: 90 } } }).jpeg().toBuffer()
}, 180_000)
afterAll(async () => {
  await t?.close()
  await tight?.close()
})

const inject = (options: InjectOptions) => t.app.inject(options)

async function worker(name = 'Wanda'): Promise<SignedIn> {
  const user = await newUser(t.app, { roles: ['CLIENT', 'WORKER'], first_name: name })
  expect((await inject({ method: 'PUT', url: '/user/picture', headers: { ...user.auth, 'content-type': 'image/jpeg' }, payload: jpeg })).statusCode).toBe(200)
  // Payouts set up, as a worker does before accepting priced jobs.
  const account = await inject({ method: 'POST', url: '/payments/account', headers: user.auth })
  expect(account.statusCode, account.body).toBe(201)
  expect((await inject({ url: account.json().onboarding_url })).statusCode).toBe(200)
  return user
}
async function admin(): Promise<SignedIn> {
  const user = await newUser(t.app, { first_name: 'Ada' })
  await t.app.accounts.setAdmin(user.email, true)
  // A role change ends the user's sessions: sign in again.
  const token = await signIn(t.app, user.email, user.password)
  return { ...user, token, auth: { authorization: `Bearer ${token}` } }
}

async function offer(client: SignedIn, to: SignedIn, extra: Record<string, unknown> = {}) {
  const res = await inject({ method: 'POST', url: '/job', headers: client.auth, payload: { worker_id: to.id, title: 'Mend the gate', price: { amount: 4000, currency: 'EUR' }, ...('price' in extra && !extra.price ? {} : { payment_method: 'pm_card_visa' }), ...extra } })
  expect(res.statusCode, res.body).toBe(201)
  return res.json() as { id: string; version: number }
}
const move = (user: SignedIn, jobId: string, status: string, headers: Record<string, string> = {}) =>
  inject({ method: 'POST', url: `/job/${jobId}/status`, headers: { ...user.auth, ...headers }, payload: { status, ...(status === 'CANCELED' || status === 'DECLINED' ? { reason: 'plans changed' } : {}) } })
async function accept(w: SignedIn, jobId: string) {
  const read = await inject({ url: `/job/${jobId}`, headers: w.auth })
  return move(w, jobId, 'ACCEPTED', { 'if-match': String(read.headers.etag) })
}
/** A job of `client`'s for `w`, moved along to `status`. */
async function jobIn(client: SignedIn, w: SignedIn, status: 'REQUESTED' | 'ACCEPTED' | 'STARTED' | 'COMPLETED', extra: Record<string, unknown> = {}) {
  const job = await offer(client, w, extra)
  const steps = ['ACCEPTED', 'STARTED', 'COMPLETED'].slice(0, ['REQUESTED', 'ACCEPTED', 'STARTED', 'COMPLETED'].indexOf(status))
  for (const step of steps) {
    const res = step === 'ACCEPTED' ? await accept(w, job.id) : await move(w, job.id, step)
    expect(res.statusCode, res.body).toBe(200)
  }
  return job.id
}
/** A job of `client`'s for `w`, paid out. */
async function paidJob(client: SignedIn, w: SignedIn) {
  const id = await jobIn(client, w, 'COMPLETED')
  const res = await move(client, id, 'PENDING_PAYMENT')
  expect(res.json().status, res.body).toBe('PAID')
  return id
}
/** A published review of `about`'s work, by the client of a paid job. */
async function reviewOf(about: SignedIn) {
  const client = await worker('Carla')
  const id = await paidJob(client, about)
  const res = await inject({ method: 'POST', url: `/job/${id}/review`, headers: client.auth, payload: { rating: 2, text: 'Late and rude' } })
  expect(res.statusCode, res.body).toBe(201)
  // Published once both sides wrote theirs (or the window closed).
  expect((await inject({ method: 'POST', url: `/job/${id}/review`, headers: about.auth, payload: { rating: 4 } })).statusCode).toBe(201)
  return res.json().id as string
}
/** A category, made by an admin. */
async function category() {
  const res = await inject({ method: 'POST', url: '/admin/categories', headers: (await adminUser()).auth, payload: { name: `Gardening ${randomBytes(4).toString('hex')}` } })
  expect(res.statusCode, res.body).toBe(201)
  return res.json().id as string
}
async function message(from: SignedIn, to: SignedIn, text = 'Are you free on Tuesday?') {
  const res = await inject({ method: 'POST', url: '/send', headers: from.auth, payload: { to: to.id, text } })
  expect(res.statusCode, res.body).toBe(201)
  return res.json().id as string
}

// ---------------------------------------------------------------------------------------------
// API1: broken object level authorization. Every id a documented operation takes, in its path, its
// query or its body, is aimed at a thing of one user's by that user, by another user, by an admin
// and by no one.

interface Aim {
  params?: Record<string, string>
  query?: Record<string, string>
  body?: Record<string, unknown>
  headers?: Record<string, string>
  /** Fails when the thing changed (called after the callers other than its owner tried). */
  intact?: () => Promise<void>
}
type Caller = 'owner' | 'other' | 'admin' | 'none'
interface IdTarget {
  /** Whose things the id names: a user's (default), or an admin's (the admin routes). */
  ownedBy?: 'user' | 'admin'
  /** Makes a thing of `owner`'s and answers the request that names it (the rest valid). */
  make(owner: SignedIn): Promise<Aim>
  /** The statuses each caller may get. */
  expect: Record<Caller, number[]>
  /** More checks of an answer (what it shows to whom). */
  check?: (caller: Caller, res: LightMyRequestResponse, owner: SignedIn) => void
}

const NOT_YOURS = [404]
const intactJob = (owner: SignedIn, id: string, status = 'REQUESTED', price?: unknown) => async () => {
  const job = (await inject({ url: `/job/${id}`, headers: owner.auth })).json()
  expect(job.status).toBe(status)
  if (price !== undefined) expect(job.price).toEqual(price)
}

/**
 * How to make a thing for each id field of the document. A documented id with no entry here fails
 * the matrix: a new route must say whose things its ids name and who may reach them.
 */
const ID_TARGETS: Record<string, IdTarget> = {
  'GET /user query:id': {
    // Any user may see another's profile, but not its email or ADMIN role.
    make: async (owner) => ({ query: { id: owner.id } }),
    expect: { owner: [200], other: [200], admin: [200], none: [401] },
    check: (caller, res, owner) => {
      if (res.statusCode !== 200) return
      if (caller === 'other') expect(res.json().email).toBeUndefined()
      else expect(res.json().email).toBe(owner.email)
    },
  },
  'POST /user body:id': {
    make: async (owner) => ({
      body: { id: owner.id, first_name: 'Mallory' },
      intact: async () => expect((await inject({ url: '/user', headers: owner.auth })).json().first_name).not.toBe('Mallory'),
    }),
    expect: { owner: [200], other: [403], admin: [200], none: [401] },
  },
  'DELETE /user query:id': {
    make: async (owner) => ({
      query: { id: owner.id },
      // Each caller sends its own password, as the route asks (set below, by caller).
      body: {},
      intact: async () => expect((await inject({ url: '/user', headers: owner.auth })).statusCode).toBe(200),
    }),
    expect: { owner: [204], other: [403], admin: [204], none: [401] },
  },
  'GET /users/{id}/picture path:id': {
    // Public on purpose, like a profile photo.
    make: async (owner) => ({ params: { id: owner.id } }),
    expect: { owner: [200], other: [200], admin: [200], none: [200] },
  },
  'DELETE /sessions/{id} path:id': {
    make: async (owner) => {
      const token = await signIn(t.app, owner.email, owner.password)
      const sessions = (await inject({ url: '/sessions', headers: { authorization: `Bearer ${token}` } })).json().items as { id: string; current: boolean }[]
      const id = sessions.find((s) => s.current)!.id
      return { params: { id }, intact: async () => expect((await inject({ url: '/user', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(200) }
    },
    expect: { owner: [204], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'POST /send body:to': {
    // Names the user to write to: anyone may write to anyone who has not blocked them.
    make: async (owner) => ({ body: { to: owner.id, text: 'Hello' } }),
    expect: { owner: [400, 403], other: [201], admin: [201], none: [401] },
  },
  'GET /inbox query:with': {
    // Picks a conversation of the caller's own: another user naming the owner sees only theirs.
    make: async (owner) => {
      const third = await newUser(t.app)
      await message(third, owner, 'only for the owner')
      return { query: { with: third.id } }
    },
    expect: { owner: [200], other: [200], admin: [200], none: [401] },
    check: (caller, res) => {
      if (res.statusCode !== 200) return
      const texts = (res.json().items as { text: string }[]).map((m) => m.text)
      if (caller === 'owner') expect(texts).toContain('only for the owner')
      else expect(texts).not.toContain('only for the owner')
    },
  },
  'POST /inbox/read body:up_to': {
    make: async (owner) => {
      const third = await newUser(t.app)
      const id = await message(third, owner)
      return {
        body: { up_to: id },
        intact: async () => expect((await inject({ url: `/inbox?with=${third.id}`, headers: owner.auth })).json().items[0].read_at).toBeNull(),
      }
    },
    expect: { owner: [204], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'POST /inbox/read body:with': {
    make: async (owner) => {
      const third = await newUser(t.app)
      const id = await message(third, owner)
      return {
        body: { up_to: id, with: third.id },
        intact: async () => expect((await inject({ url: `/inbox?with=${third.id}`, headers: owner.auth })).json().items[0].read_at).toBeNull(),
      }
    },
    expect: { owner: [204], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'POST /blocks body:user_id': {
    // Names the user to block: anyone may block anyone (themselves excepted).
    make: async (owner) => ({ body: { user_id: owner.id } }),
    expect: { owner: [400, 403, 409], other: [200, 201], admin: [200, 201], none: [401] },
  },
  'DELETE /blocks/{user_id} path:user_id': {
    make: async (owner) => {
      const blocked = await newUser(t.app)
      expect((await inject({ method: 'POST', url: '/blocks', headers: owner.auth, payload: { user_id: blocked.id } })).statusCode).toBe(201)
      return {
        params: { user_id: blocked.id },
        intact: async () => expect((await inject({ url: '/blocks', headers: owner.auth })).json().items.map((b: { user: { id: string } }) => b.user.id)).toContain(blocked.id),
      }
    },
    expect: { owner: [204], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'POST /reports body:message_id': {
    // A message the caller received; another user's is not theirs to report.
    make: async (owner) => ({ body: { message_id: await message(await newUser(t.app), owner), reason: 'spam' } }),
    expect: { owner: [201], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'POST /reports body:user_id': {
    make: async (owner) => ({ body: { user_id: owner.id, reason: 'rude' } }),
    expect: { owner: [400, 403, 409], other: [201], admin: [201], none: [401] },
  },
  'GET /ws query:since': {
    // A place in the caller's own stream: checked over a socket below (API1, replay).
    make: async () => ({ query: {} }),
    expect: { owner: [400, 404], other: [400, 404], admin: [400, 404], none: [401] },
  },
  'POST /job body:id': {
    make: async (owner) => {
      const id = (await offer(owner, await worker())).id
      // (A held price can't change at all: the description can, by the offer's client only.)
      return {
        body: { id, description: 'Changed by someone else' },
        intact: async () => {
          await intactJob(owner, id, 'REQUESTED', { amount: 4000, currency: 'EUR' })()
          expect((await inject({ url: `/job/${id}`, headers: owner.auth })).json().description).not.toBe('Changed by someone else')
        },
      }
    },
    expect: { owner: [200], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'POST /job body:worker_id': {
    // Names the worker an offer goes to.
    make: async (owner) => ({ body: { worker_id: owner.id, title: 'Wash the car' } }),
    expect: { owner: [400, 403, 409], other: [201], admin: [201, 403], none: [401] },
  },
  'GET /job/{id} path:id': {
    make: async (owner) => ({ params: { id: (await offer(owner, await worker())).id } }),
    expect: { owner: [200], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'POST /job/{id}/quote path:id': {
    // The job's worker quotes; the owner here is the worker of an offer with no price.
    make: async (owner) => {
      const client = await newUser(t.app)
      const res = await inject({ method: 'POST', url: '/job', headers: client.auth, payload: { worker_id: owner.id, title: 'Fix the roof' } })
      const id = res.json().id
      return { params: { id }, body: { price: { amount: 9900, currency: 'EUR' } }, intact: intactJob(client, id, 'REQUESTED', null) }
    },
    expect: { owner: [200], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'POST /job/{id}/status path:id': {
    make: async (owner) => {
      const id = (await offer(owner, await worker())).id
      return { params: { id }, body: { status: 'CANCELED' }, intact: intactJob(owner, id) }
    },
    expect: { owner: [200], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'GET /auth/{provider}/start path:provider': {
    // Names a configured sign-in provider, not anyone's thing: an unknown one is 404 to all.
    make: async () => ({ params: { provider: 'nosuch' } }),
    expect: { owner: [404], other: [404], admin: [404], none: [404] },
  },
  'POST /auth/{provider}/start path:provider': {
    make: async () => ({ params: { provider: 'nosuch' }, query: { link: '1' }, body: {} }),
    expect: { owner: [404], other: [404], admin: [404], none: [401] },
  },
  'GET /auth/{provider}/callback path:provider': {
    make: async () => ({ params: { provider: 'nosuch' }, query: { state: 'forged', code: 'forged' } }),
    expect: { owner: [400, 404], other: [400, 404], admin: [400, 404], none: [400, 404] },
  },
  'POST /auth/{provider}/callback path:provider': {
    make: async () => ({ params: { provider: 'nosuch' }, body: { state: 'forged', code: 'forged' } }),
    expect: { owner: [400, 404], other: [400, 404], admin: [400, 404], none: [400, 404] },
  },
  'DELETE /user/identities/{id} path:id': {
    // A linked sign-in (needs an identity provider; the OIDC suite links real ones): an id not the caller's is 404.
    make: async () => ({ params: { id: '0190f3c4-0000-7000-8000-000000000000' } }),
    expect: { owner: [404], other: [404], admin: [404], none: [401] },
  },
  'GET /search query:category': {
    make: async () => ({ query: { lat: '52.52', lon: '13.40', radius: '1000', category: '0190f3c4-0000-7000-8000-000000000000' } }),
    expect: { owner: [200, 400, 404], other: [200, 400, 404], admin: [200, 400, 404], none: [401] },
  },
  'POST /reports body:review_id': {
    // A review about the owner: anyone may report it, but the one it is about.
    make: async (owner) => ({ body: { review_id: await reviewOf(owner), reason: 'insulting' } }),
    expect: { owner: [201, 400, 403, 409], other: [201], admin: [201], none: [401] },
  },
  'POST /job/{id}/tracking path:id': {
    // The job's worker shares their way there.
    make: async (owner) => {
      const id = await jobIn(await worker('Carla'), owner, 'STARTED')
      return { params: { id }, body: { on: true } }
    },
    expect: { owner: [200], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'GET /job/{id}/tracking path:id': {
    make: async (owner) => ({ params: { id: await jobIn(owner, await worker(), 'STARTED') } }),
    expect: { owner: [200], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'DELETE /push/subscriptions/{id} path:id': {
    make: async (owner) => {
      const key = createECDH('prime256v1')
      key.generateKeys()
      const res = await inject({ method: 'POST', url: '/push/subscriptions', headers: owner.auth, payload: { endpoint: `https://push.example.com/send/${randomBytes(8).toString('hex')}`, keys: { p256dh: key.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') } } })
      expect(res.statusCode, res.body).toBe(201)
      const id = res.json().id as string
      return { params: { id }, intact: async () => expect((await inject({ url: '/push/subscriptions', headers: owner.auth })).json().items.map((s: { id: string }) => s.id)).toContain(id) }
    },
    expect: { owner: [204], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'DELETE /alerts/{id} path:id': {
    // A worker's saved job alert.
    make: async (owner) => {
      const res = await inject({ method: 'POST', url: '/alerts', headers: owner.auth, payload: { lat: 52.52, lon: 13.4, radius: 3000, category_ids: [await category()] } })
      expect(res.statusCode, res.body).toBe(201)
      const id = res.json().id as string
      return { params: { id }, intact: async () => expect((await inject({ url: '/alerts', headers: owner.auth })).json().items.map((a: { id: string }) => a.id)).toContain(id) }
    },
    expect: { owner: [204], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'POST /job/{id}/payment path:id': {
    // The client pays for a quoted job.
    make: async (owner) => {
      const w = await worker()
      const id = (await offer(owner, w, { price: null })).id
      expect((await inject({ method: 'POST', url: `/job/${id}/quote`, headers: w.auth, payload: { price: { amount: 5000, currency: 'EUR' } } })).statusCode).toBe(200)
      return { params: { id }, body: { payment_method: 'pm_card_visa' }, intact: async () => expect(await balanceOf(t.app.platform.database.db, escrowAccount(id), 'EUR')).toBe(0) }
    },
    expect: { owner: [200], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'POST /admin/jobs/{id}/refund path:id': {
    make: async (owner) => {
      const id = (await offer(owner, await worker())).id
      return { params: { id }, body: { reason: 'asked by the client' }, intact: async () => expect(await balanceOf(t.app.platform.database.db, escrowAccount(id), 'EUR')).toBe(4000) }
    },
    expect: { owner: [403], other: [403], admin: [200], none: [401] },
  },
  'POST /admin/jobs/{id}/dispute path:id': {
    // A job whose payment is not disputed: only an admin gets as far as being told so.
    make: async (owner) => {
      const id = (await offer(owner, await worker())).id
      return { params: { id }, body: { evidence: 'winning_evidence' }, intact: async () => expect(await balanceOf(t.app.platform.database.db, escrowAccount(id), 'EUR')).toBe(4000) }
    },
    expect: { owner: [403], other: [403], admin: [409], none: [401] },
  },
  'POST /payments/local/authenticate/{id} path:id': {
    // The local provider's 3-D Secure page: the intent's client_secret, not a session, is what opens it.
    make: async () => ({ params: { id: 'pi_nosuch' }, query: { client_secret: 'pi_nosuch_secret_forged' } }),
    expect: { owner: [400, 404], other: [400, 404], admin: [400, 404], none: [400, 404] },
  },
  'GET /payments/local/onboard/{id} path:id': {
    make: async () => ({ params: { id: 'acct_nosuch' } }),
    expect: { owner: [400, 404], other: [400, 404], admin: [400, 404], none: [400, 404] },
  },
  'PATCH /admin/categories/{id} path:id': {
    ownedBy: 'admin',
    make: async () => ({ params: { id: await category() }, body: { name: `Renamed ${randomBytes(4).toString('hex')}`, reason: 'clearer' } }),
    expect: { owner: [200], other: [403], admin: [200], none: [401] },
  },
  'DELETE /admin/categories/{id} path:id': {
    ownedBy: 'admin',
    make: async () => ({ params: { id: await category() }, body: { reason: 'unused' } }),
    expect: { owner: [200, 204], other: [403], admin: [200, 204], none: [401] },
  },
  'GET /users/{id} path:id': {
    // A public profile: no email in it, for anyone.
    make: async (owner) => ({ params: { id: owner.id } }),
    expect: { owner: [200], other: [200], admin: [200], none: [200, 401] },
    check: (_caller, res, owner) => {
      if (res.statusCode === 200) expect(res.body).not.toContain(owner.email)
    },
  },
  'GET /users/{id}/reviews path:id': {
    make: async (owner) => ({ params: { id: owner.id } }),
    expect: { owner: [200], other: [200], admin: [200], none: [200, 401] },
  },
  'POST /job/{id}/review path:id': {
    // A party of a paid job reviews the other.
    make: async (owner) => {
      const id = await paidJob(owner, await worker())
      return { params: { id }, body: { rating: 5, text: 'Great work' } }
    },
    expect: { owner: [201], other: NOT_YOURS, admin: NOT_YOURS, none: [401] },
  },
  'POST /reviews/{id}/reply path:id': {
    // The reviewed user replies.
    make: async (owner) => ({ params: { id: await reviewOf(owner) }, body: { text: 'Thank you' } }),
    expect: { owner: [200], other: [403, 404], admin: [403, 404], none: [401] },
  },
  'POST /admin/reviews/{id}/hide path:id': {
    make: async (owner) => ({ params: { id: await reviewOf(owner) }, body: { reason: 'insulting' } }),
    expect: { owner: [403], other: [403], admin: [204], none: [401] },
  },
  'GET /admin/users/{id} path:id': {
    make: async (owner) => ({ params: { id: owner.id } }),
    expect: { owner: [403], other: [403], admin: [200], none: [401] },
  },
  'DELETE /admin/users/{id} path:id': {
    make: async (owner) => ({ params: { id: owner.id }, body: { reason: 'asked to leave' }, intact: async () => expect((await inject({ url: '/user', headers: owner.auth })).statusCode).toBe(200) }),
    expect: { owner: [403], other: [403], admin: [200, 204], none: [401] },
  },
  'POST /admin/users/{id}/suspend path:id': {
    make: async (owner) => ({ params: { id: owner.id }, body: { reason: 'spam' }, intact: async () => expect((await inject({ url: '/user', headers: owner.auth })).statusCode).toBe(200) }),
    expect: { owner: [403], other: [403], admin: [200], none: [401] },
  },
  'POST /admin/users/{id}/restore path:id': {
    make: async (owner) => ({ params: { id: owner.id }, body: { reason: 'appealed' } }),
    expect: { owner: [403], other: [403], admin: [200, 409], none: [401] },
  },
  'POST /admin/users/{id}/roles path:id': {
    make: async (owner) => ({
      params: { id: owner.id },
      body: { revoke: ['WORKER'], reason: 'checked' },
      intact: async () => expect((await inject({ url: '/user', headers: owner.auth })).json().roles).toContain('WORKER'),
    }),
    expect: { owner: [403], other: [403], admin: [200], none: [401] },
  },
  'POST /admin/reports/{id}/resolve path:id': {
    // A report the owner made.
    make: async (owner) => {
      const res = await inject({ method: 'POST', url: '/reports', headers: owner.auth, payload: { user_id: (await newUser(t.app)).id, reason: 'rude' } })
      expect(res.statusCode, res.body).toBe(201)
      return { params: { id: res.json().id }, body: { action: 'dismiss', reason: 'nothing wrong' } }
    },
    expect: { owner: [403], other: [403], admin: [204], none: [401] },
  },
  'GET /admin/jobs/{id} path:id': {
    make: async (owner) => ({ params: { id: (await offer(owner, await worker())).id } }),
    expect: { owner: [403], other: [403], admin: [200], none: [401] },
  },
  'GET /admin/audit query:actor_id': {
    make: async (owner) => ({ query: { actor_id: owner.id } }),
    expect: { owner: [403], other: [403], admin: [200], none: [401] },
  },
  'POST /admin/tasks/{id}/retry path:id': {
    ownedBy: 'admin',
    make: async () => {
      const id = await failedTask()
      return { params: { id } }
    },
    expect: { owner: [204], other: [403], admin: [204], none: [401] },
  },
}

let failingHandler = false
/** A background task that failed all its retries: what the admin routes act on. */
async function failedTask(): Promise<string> {
  const queue = t.app.platform.queue
  if (!failingHandler) {
    await queue.handle('owasp.always-fails', async () => {
      throw new Error('the peer refused')
    }, { retryLimit: 0 })
    failingHandler = true
  }
  const id = (await queue.add(t.app.platform.database.db, 'owasp.always-fails', {}))!
  await waitUntil(async () => {
    const admin = await adminUser()
    const list = await inject({ url: '/admin/tasks/failed?limit=100', headers: admin.auth })
    return list.json().items.some((task: { id: string }) => task.id === id)
  })
  return id
}
let theAdmin: SignedIn | undefined
const adminUser = async () => (theAdmin ??= await admin())

function urlOf(op: Operation, aim: Aim) {
  const path = op.path.replace(/\{([^}]+)\}/g, (_m, name: string) => encodeURIComponent(aim.params?.[name] ?? ''))
  const query = new URLSearchParams(aim.query ?? {}).toString()
  return path + (query ? `?${query}` : '')
}
function call(op: Operation, aim: Aim, caller: SignedIn | undefined, body = aim.body) {
  const hasBody = body !== undefined && op.bodies['application/json']
  return inject({ method: op.method, url: urlOf(op, aim), headers: { ...(caller?.auth ?? {}), ...(aim.headers ?? {}) }, ...(hasBody ? { payload: body } : {}) })
}

describe('API1 broken object level authorization', () => {
  it('has an entry in the matrix for every id a documented operation takes, and none for ids no longer there', () => {
    const documented = operations.flatMap((op) => idFieldsOf(spec, op).map((field) => idFieldKey(op, field)))
    expect(documented.length).toBeGreaterThan(10)
    expect(documented.filter((key) => !(key in ID_TARGETS)), 'ids with no entry in ID_TARGETS: say how to make a thing of a user\'s for each').toEqual([])
    expect(Object.keys(ID_TARGETS).filter((key) => !documented.includes(key)), 'entries of ID_TARGETS for ids the document no longer has').toEqual([])
  })

  // One case per id field, listed from the document when the file is collected.
  const fields: [string, Operation, IdField][] = []
  beforeAll(() => {
    for (const op of operations) for (const field of idFieldsOf(spec, op)) fields.push([idFieldKey(op, field), op, field])
  })

  it('lets each id reach a thing only for those who may: its owner, another user, an admin, no one', async () => {
    const failures: string[] = []
    for (const [key, op] of fields) {
      const target = ID_TARGETS[key]
      if (!target) continue
      for (const caller of ['none', 'other', 'admin', 'owner'] as const) {
        // A fresh thing for each caller: a caller's success (a delete) must not hide another's.
        const owner = target.ownedBy === 'admin' ? await admin() : await worker('Olive')
        const aim = await target.make(owner)
        const as = caller === 'none' ? undefined : caller === 'owner' ? owner : caller === 'admin' ? await admin() : await worker('Oscar')
        const body = key === 'DELETE /user query:id' && as ? { current_password: as.password } : aim.body
        const res = await call(op, aim, as, body)
        if (!target.expect[caller].includes(res.statusCode)) failures.push(`${key} as ${caller}: ${res.statusCode} (expected ${target.expect[caller].join(' or ')}) ${res.body.slice(0, 200)}`)
        else {
          try {
            target.check?.(caller, res, owner)
            if (caller !== 'owner' && caller !== 'admin' && aim.intact) await aim.intact()
            if (caller === 'admin' && aim.intact && !target.expect.admin.some((s) => s < 300)) await aim.intact()
          } catch (error) {
            failures.push(`${key} as ${caller}: ${(error as Error).message}`)
          }
        }
        if (res.statusCode === 404 || res.statusCode === 403) {
          if (!String(res.headers['content-type']).startsWith('application/problem+json')) failures.push(`${key} as ${caller}: a ${res.statusCode} that is not problem+json`)
        }
      }
    }
    expect(failures).toEqual([])
  }, 240_000)

  it('answers an unknown id as it answers another user\'s, so ids can not be probed for existence', async () => {
    const [a, b] = [await worker(), await worker()]
    const theirs = (await offer(b, await worker())).id
    const unknown = '0190f3c4-0000-7000-8000-000000000000'
    for (const url of [`/job/${theirs}`, `/job/${unknown}`]) {
      expect(problem(await inject({ url, headers: a.auth }), 404).code).toBe('job_not_found')
    }
    const mine = problem(await inject({ method: 'POST', url: `/job/${theirs}/status`, headers: a.auth, payload: { status: 'CANCELED' } }), 404)
    const none = problem(await inject({ method: 'POST', url: `/job/${unknown}/status`, headers: a.auth, payload: { status: 'CANCELED' } }), 404)
    expect(mine.code).toBe(none.code)
    expect(mine.detail.replace(theirs, '')).toBe(none.detail.replace(unknown, ''))
  })

  it('replays over /ws?since= only the caller\'s own messages, whoever\'s message the since names', async () => {
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    const port = (t.app.server.address() as net.AddressInfo).port
    const [owner, friend, stranger] = [await newUser(t.app), await newUser(t.app), await newUser(t.app)]
    const first = await message(friend, owner, 'first')
    await message(friend, owner, 'a secret for the owner')
    const events: { type: string; data: { text?: string } }[] = []
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?since=${first}`, { headers: { authorization: `Bearer ${stranger.token}` } })
    ws.on('message', (data) => events.push(JSON.parse(String(data))))
    const refused = await new Promise<number | undefined>((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode))
      ws.on('open', () => resolve(undefined))
      ws.on('error', () => resolve(0))
    })
    if (refused === undefined) {
      await waitUntil(() => events.some((e) => e.type === 'replay.done'))
      ws.close()
    }
    expect(events.filter((e) => e.type === 'message.created').map((e) => e.data.text)).toEqual([])
  })
})

// ---------------------------------------------------------------------------------------------
// API2: broken authentication.

describe('API2 broken authentication', () => {
  it('answers every signed-in operation 401 with WWW-Authenticate to no token, a malformed one, an unknown one, and one signed out', async () => {
    const user = await newUser(t.app)
    const ended = await signIn(t.app, user.email, user.password)
    expect((await inject({ method: 'DELETE', url: '/authorize', headers: { authorization: `Bearer ${ended}` } })).statusCode).toBe(204)
    const ticket = (await inject({ method: 'POST', url: '/ws/ticket', headers: user.auth })).json().ticket as string
    const headers = [
      {},
      { authorization: 'Bearer' },
      { authorization: 'Basic dXNlcjpwYXNz' },
      { authorization: `Bearer ${'A'.repeat(43)}` },
      { authorization: `Bearer ${ended}` },
      { authorization: `Bearer ${ticket}` },
      { authorization: `bearer ${user.token} extra` },
    ]
    const failures: string[] = []
    const signedInOps = operations.filter((op) => op.signedIn)
    expect(signedInOps.length).toBeGreaterThan(20)
    for (const op of signedInOps) {
      for (const h of headers) {
        const res = await inject({ method: op.method, url: op.path.replace(/\{[^}]+\}/g, '0190f3c4-0000-7000-8000-000000000000'), headers: h })
        if (res.statusCode !== 401 || res.headers['www-authenticate'] !== 'Bearer') failures.push(`${op.method} ${op.path} with ${JSON.stringify(h).slice(0, 60)}: ${res.statusCode}`)
      }
    }
    expect(failures).toEqual([])
  })

  it('gives a wrong password and an unknown email the same answer', async () => {
    const user = await newUser(t.app)
    const wrong = problem(await inject({ method: 'POST', url: '/authorize', payload: { email: user.email, password: 'not the password' } }), 401)
    const unknown = problem(await inject({ method: 'POST', url: '/authorize', payload: { email: `nobody.${user.email}`, password: 'not the password' } }), 401)
    expect({ ...wrong, request_id: '', instance: '' }).toEqual({ ...unknown, request_id: '', instance: '' })
  })

  it('counts failed sign-ins and answers 429 with Retry-After past the limit, for the right password too', async () => {
    const guarded = tight
    {
      const user = await newUser(guarded.app)
      const statuses = []
      for (let i = 0; i < 5; i++) statuses.push((await guarded.app.inject({ method: 'POST', url: '/authorize', payload: { email: user.email, password: `guess ${i}` } })).statusCode)
      expect(statuses).toEqual([401, 401, 401, 429, 429])
      const right = await guarded.app.inject({ method: 'POST', url: '/authorize', payload: { email: user.email, password: user.password } })
      expect(problem(right, 429).code).toBe('too_many_failed_sign_ins')
      expect(Number(right.headers['retry-after'])).toBeGreaterThan(0)
    }
  })

  it('ends a session at sign-out, and every session at a new password', async () => {
    const user = await newUser(t.app)
    const other = await signIn(t.app, user.email, user.password)
    const res = await inject({ method: 'POST', url: '/user', headers: user.auth, payload: { password: 'a brand new password', current_password: user.password } })
    expect(res.statusCode, res.body).toBe(200)
    problem(await inject({ url: '/user', headers: { authorization: `Bearer ${other}` } }), 401)
  })
})

// ---------------------------------------------------------------------------------------------
// API3: broken object property level authorization (mass assignment, too much shown).

function propertiesOf(schema: JsonSchema, seen = new Set<JsonSchema>()): [string, JsonSchema][] {
  const s = resolve(spec, schema)
  if (seen.has(s)) return []
  seen.add(s)
  const own = Object.entries(s.properties ?? {})
  return [...own, ...own.flatMap(([, p]) => propertiesOf(p, seen)), ...[...(s.anyOf ?? []), ...(s.oneOf ?? []), ...(s.items ? [s.items] : [])].flatMap((p) => propertiesOf(p, seen))]
}

/** Where a session (or the MFA step's token, or a socket ticket) is handed out: the only answers that carry one. */
const SIGN_IN_PATHS = ['/authorize', '/ws/ticket', '/authorize/mfa', '/auth/exchange', '/auth/{provider}/callback']
/**
 * Secrets an answer carries on purpose, to its one reader: the TOTP secret once, to the user
 * enrolling it; a PaymentIntent's client_secret, to the job's client (and admins), to confirm
 * 3-D Secure.
 */
const SHOWN_SECRETS: Record<string, string[]> = {
  secret: ['/user/2fa'],
  client_secret: ['/job', '/job/{id}', '/jobs', '/job/{id}/quote', '/job/{id}/status', '/job/{id}/payment', '/admin/jobs/{id}'],
}

describe('API3 broken object property level authorization', () => {
  it('takes no field a request body does not declare, on every operation with a JSON body', async () => {
    const [user, boss] = [await worker(), await admin()]
    const failures: string[] = []
    for (const op of operations.filter((o) => o.bodies['application/json'])) {
      const caller = op.path.startsWith('/admin') ? boss : user
      const schema = resolve(spec, op.bodies['application/json']!)
      if (schema.additionalProperties !== false) failures.push(`${op.method} ${op.path}: its body schema allows fields it does not name`)
      for (const field of ['is_admin', 'password_hash', 'sessions_version', 'created_at', 'client_id', 'owner_id']) {
        if (schema.properties?.[field]) continue
        const res = await inject({ method: op.method, url: op.path.replace(/\{[^}]+\}/g, '0190f3c4-0000-7000-8000-000000000000'), headers: caller.auth, payload: { [field]: 'x' } })
        if (res.statusCode !== 400) failures.push(`${op.method} ${op.path} with ${field}: ${res.statusCode}`)
      }
    }
    expect(failures).toEqual([])
  })

  it('lets no one choose ADMIN for themselves: not at sign-up, not through POST /user', async () => {
    problem(await inject({ method: 'POST', url: '/signup', payload: { email: `eve.${Date.now()}@example.com`, password: 'correct horse battery', first_name: 'Eve', last_name: 'E', roles: ['ADMIN'] } }), 400)
    const eve = await newUser(t.app)
    problem(await inject({ method: 'POST', url: '/user', headers: eve.auth, payload: { roles: ['CLIENT', 'ADMIN'] } }), 403)
    expect((await inject({ url: '/user', headers: eve.auth })).json().roles).toEqual(['CLIENT'])
  })

  it('declares no stored secret in any answer\'s schema', () => {
    const failures: string[] = []
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, raw] of Object.entries(methods)) {
        for (const [status, response] of Object.entries((raw as { responses?: Record<string, { content?: Record<string, { schema: JsonSchema }> }> }).responses ?? {})) {
          for (const content of Object.values(response.content ?? {})) {
            for (const [name] of propertiesOf(content.schema)) {
              if (/password|hash|secret|sessions_version/i.test(name) && !SHOWN_SECRETS[name]?.includes(path)) failures.push(`${method} ${path} ${status}: ${name}`)
              if (/token|ticket/i.test(name) && !SIGN_IN_PATHS.includes(path)) failures.push(`${method} ${path} ${status}: ${name}`)
            }
          }
        }
      }
    }
    expect(failures).toEqual([])
  })

  it('shows other users\' emails and ADMIN role to admins only, in every list of users', async () => {
    const boss = await admin()
    const nosy = await newUser(t.app, { first_name: 'Nosy' })
    const hidden = (body: unknown) => JSON.stringify(body).includes(boss.email) || JSON.stringify(body).includes('"ADMIN"')
    expect(hidden((await inject({ url: `/user?id=${boss.id}`, headers: nosy.auth })).json())).toBe(false)
    expect(hidden((await inject({ url: '/users?q=Ada&limit=100', headers: nosy.auth })).json())).toBe(false)
    problem(await inject({ url: '/users?role=ADMIN', headers: nosy.auth }), 403)
    expect((await inject({ url: `/user?id=${boss.id}`, headers: (await admin()).auth })).json().roles).toContain('ADMIN')
  })
})

// ---------------------------------------------------------------------------------------------
// API4: unrestricted resource consumption.

describe('API4 unrestricted resource consumption', () => {
  it('bounds every string, array and list a request can carry', () => {
    // An anchored pattern with no unbounded repeat bounds a string's length as well as maxLength does.
    const boundedBy = (pattern: string | undefined) => pattern !== undefined && pattern.startsWith('^') && pattern.endsWith('$') && !/[*+]|\{\d+,\}/.test(pattern.replace(/\\./g, ''))
    const failures: string[] = []
    for (const op of operations) {
      for (const p of op.parameters) {
        const s = resolve(spec, p.schema)
        if (s.type === 'string' && s.maxLength === undefined && !s.enum && !s.format && !s.anyOf && !boundedBy(s.pattern)) failures.push(`${op.method} ${op.path} ${p.in} ${p.name}: no maxLength`)
        if ((s.type === 'integer' || s.type === 'number') && p.name === 'limit' && s.maximum === undefined) failures.push(`${op.method} ${op.path} limit: no maximum`)
      }
      const json = op.bodies['application/json']
      for (const [name, raw] of json ? propertiesOf(json) : []) {
        const s = resolve(spec, raw)
        if (s.type === 'string' && s.maxLength === undefined && !s.enum && !s.format && !boundedBy(s.pattern)) failures.push(`${op.method} ${op.path} body ${name}: no maxLength`)
        if (s.type === 'array' && s.maxItems === undefined) failures.push(`${op.method} ${op.path} body ${name}: no maxItems`)
      }
    }
    expect(failures).toEqual([])
  })

  it('refuses a page past 100 items, and a limit below 1, on every list', async () => {
    const user = await admin()
    const lists = operations.filter((op) => op.parameters.some((p) => p.in === 'query' && p.name === 'limit'))
    expect(lists.length).toBeGreaterThan(5)
    const failures: string[] = []
    for (const op of lists) {
      const required = op.parameters.filter((p) => p.in === 'query' && p.required).map((p) => `${p.name}=${p.name === 'lat' || p.name === 'lon' ? '1' : p.name === 'radius' ? '1000' : 'x'}`)
      for (const [limit, ok] of [['101', false], ['0', false], ['1000000', false], ['100', true]] as const) {
        const res = await inject({ url: `${op.path.replace('{id}', user.id)}?${[...required, `limit=${limit}`].join('&')}`, headers: user.auth })
        if (ok ? res.statusCode !== 200 : res.statusCode !== 400) failures.push(`${op.path}?limit=${limit}: ${res.statusCode} ${res.body.slice(0, 120)}`)
      }
    }
    expect(failures).toEqual([])
  })

  it('refuses a JSON body over 1 MB with 413 before reading it all, on every operation that takes one', async () => {
    // The admin's routes refuse anyone else before the body: an admin sends to those.
    const [user, boss] = [await newUser(t.app), await admin()]
    const big = JSON.stringify({ text: 'x'.repeat(1024 * 1024 + 10) })
    for (const op of operations.filter((o) => o.bodies['application/json'])) {
      const caller = op.path.startsWith('/admin') ? boss : user
      const res = await inject({ method: op.method, url: op.path.replace(/\{[^}]+\}/g, '0190f3c4-0000-7000-8000-000000000000'), headers: { ...caller.auth, 'content-type': 'application/json' }, payload: big })
      expect(problem(res, 413).status, `${op.method} ${op.path}`).toBe(413)
    }
  })

  it('caps the sockets of one process: one past WS_MAX_CONNECTIONS is refused with 503 and Retry-After', async () => {
    const capped = tight
    {
      await capped.app.listen({ port: 0, host: '127.0.0.1' })
      const url = `ws://127.0.0.1:${(capped.app.server.address() as net.AddressInfo).port}/ws`
      const user = await newUser(capped.app)
      const first = new WebSocket(url, { headers: user.auth })
      await new Promise((resolve, reject) => first.on('open', resolve).on('error', reject))
      const refusal = await new Promise<{ status: number; retry: unknown }>((resolve, reject) => {
        const second = new WebSocket(url, { headers: user.auth })
        second.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0, retry: res.headers['retry-after'] }))
        second.on('open', () => reject(new Error('a socket past the cap was opened')))
      })
      first.close()
      expect(refusal.status).toBe(503)
      expect(Number(refusal.retry)).toBeGreaterThan(0)
    }
  })

  it('refuses a picture past PICTURE_MAX_BYTES with 413, and one of too many pixels with 400', async () => {
    const small = tight
    {
      const user = await newUser(small.app)
      const noise = await sharp(randomBytes(64 * 64 * 3), { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer()
      expect(noise.length).toBeGreaterThan(2048)
      problem(await small.app.inject({ method: 'PUT', url: '/user/picture', headers: { ...user.auth, 'content-type': 'image/png' }, payload: noise }), 413)
    }
    // A PNG whose header claims 60000 x 60000 pixels: refused before it is decoded.
    const user = await newUser(t.app)
    const huge = await sharp({ create: { width: 1, height: 1, channels: 3, background: 'white' } }).png().toBuffer()
    huge.writeUInt32BE(60000, 16)
    huge.writeUInt32BE(60000, 20)
    const res = await inject({ method: 'PUT', url: '/user/picture', headers: { ...user.auth, 'content-type': 'image/png' }, payload: huge })
    expect(res.statusCode).toBe(400)
  })
})

// ---------------------------------------------------------------------------------------------
// API5: broken function level authorization.

describe('API5 broken function level authorization', () => {
  it('answers every admin operation 403 to clients and workers, 401 to no one, and lets admins in', async () => {
    const adminOps = operations.filter((op) => op.tags.includes('admin') || op.path.startsWith('/admin'))
    expect(adminOps.length).toBeGreaterThan(1)
    const callers = [await newUser(t.app, { roles: ['CLIENT'] }), await newUser(t.app, { roles: ['WORKER'] }), await newUser(t.app, { roles: ['CLIENT', 'WORKER'] })]
    const boss = await admin()
    const failures: string[] = []
    for (const op of adminOps) {
      const url = op.path.replace(/\{[^}]+\}/g, '0190f3c4-0000-7000-8000-000000000000')
      for (const caller of callers) {
        const res = await inject({ method: op.method, url, headers: caller.auth })
        if (res.statusCode !== 403 || res.json().code !== 'not_an_admin') failures.push(`${op.method} ${op.path} as ${caller.email}: ${res.statusCode}`)
      }
      if ((await inject({ method: op.method, url })).statusCode !== 401) failures.push(`${op.method} ${op.path} as no one`)
      const asAdmin = await inject({ method: op.method, url, headers: boss.auth })
      if (asAdmin.statusCode === 403 || asAdmin.statusCode === 401 || asAdmin.statusCode >= 500) failures.push(`${op.method} ${op.path} as an admin: ${asAdmin.statusCode}`)
    }
    expect(failures).toEqual([])
  })

  it('keeps the admin powers of shared routes to admins: another user\'s account, the ADMIN filter', async () => {
    const [user, victim] = [await newUser(t.app), await newUser(t.app)]
    problem(await inject({ method: 'POST', url: '/user', headers: user.auth, payload: { id: victim.id, first_name: 'Pwned' } }), 403)
    problem(await inject({ method: 'DELETE', url: `/user?id=${victim.id}`, headers: user.auth, payload: { current_password: user.password } }), 403)
    problem(await inject({ url: '/users?role=ADMIN', headers: user.auth }), 403)
    problem(await inject({ url: '/search?lat=1&lon=1&radius=1000&role=ADMIN', headers: user.auth }), 403)
    expect((await inject({ url: '/user', headers: victim.auth })).json().first_name).toBe('Test')
  })

  it('lets a job\'s client make only the client\'s moves, and its worker only the worker\'s', async () => {
    const [client, w] = [await worker('Carla'), await worker()]
    const job = await offer(client, w)
    // The client can't accept its own offer for the worker, nor the worker cancel the client's.
    expect((await accept(client, job.id)).statusCode).toBe(403)
    const quote = await inject({ method: 'POST', url: `/job/${job.id}/quote`, headers: client.auth, payload: { price: { amount: 1, currency: 'EUR' } } })
    expect(quote.statusCode).toBeGreaterThanOrEqual(403)
    expect((await inject({ method: 'POST', url: '/job', headers: w.auth, payload: { id: job.id, price: { amount: 1, currency: 'EUR' } } })).statusCode).toBe(403)
  })
})

// ---------------------------------------------------------------------------------------------
// API6: unrestricted access to sensitive business flows.

describe('API6 unrestricted access to sensitive business flows', () => {
  it('lets one of many racing moves out of a state win, and the others get 409 (or 412)', async () => {
    const [client, w] = [await worker('Carla'), await worker()]
    const job = await offer(client, w)
    const read = await inject({ url: `/job/${job.id}`, headers: w.auth })
    const etag = String(read.headers.etag)
    // Each of these ends REQUESTED (a cancel of an ACCEPTED job would be a second, later move).
    const moves = await Promise.all([
      ...Array.from({ length: 6 }, () => move(w, job.id, 'ACCEPTED', { 'if-match': etag })),
      ...Array.from({ length: 6 }, () => move(w, job.id, 'DECLINED')),
      ...Array.from({ length: 3 }, () => move(client, job.id, 'CANCELED', { 'if-match': etag })),
    ])
    const statuses = moves.map((m) => m.statusCode)
    expect(statuses.filter((s) => s === 200), statuses.join()).toHaveLength(1)
    expect(statuses.every((s) => s === 200 || s === 409 || s === 412), statuses.join()).toBe(true)
    const after = (await inject({ url: `/job/${job.id}`, headers: client.auth })).json()
    expect(after.status_log).toHaveLength(2)
  })

  it('pays a job once when its approval is sent many times at once: one charge, one payout', async () => {
    const [client, w] = [await worker('Carla'), await worker()]
    const id = await jobIn(client, w, 'COMPLETED')
    const approvals = await Promise.all(Array.from({ length: 10 }, () => move(client, id, 'PENDING_PAYMENT')))
    const statuses = approvals.map((a) => a.statusCode)
    expect(statuses.filter((s) => s === 200), statuses.join()).toHaveLength(1)
    expect(statuses.every((s) => s === 200 || s === 409)).toBe(true)
    const job = (await inject({ url: `/job/${id}`, headers: client.auth })).json()
    expect(job.status).toBe('PAID')
    expect(job.status_log.filter((e: { status: string }) => e.status === 'PENDING_PAYMENT')).toHaveLength(1)
    const db = t.app.platform.database.db
    // The worker is paid the price less the platform's fee (PLATFORM_FEE_BPS, 10% by default).
    expect(await balanceOf(db, payableAccount(w.id), 'EUR')).toBe(3600)
    expect(await balanceOf(db, escrowAccount(id), 'EUR')).toBe(0)
  })

  it('takes one quote of racing quotes, and the approval pays that one', async () => {
    const [client, w] = [await worker('Carla'), await worker()]
    const job = await offer(client, w, { price: null })
    const quotes = await Promise.all([100, 200, 300, 400, 500].map((amount) => inject({ method: 'POST', url: `/job/${job.id}/quote`, headers: w.auth, payload: { price: { amount, currency: 'EUR' } } })))
    const won = quotes.filter((q) => q.statusCode === 200)
    expect(won).toHaveLength(1)
    expect(quotes.every((q) => q.statusCode === 200 || q.statusCode === 409)).toBe(true)
    const price = won[0]!.json().price
    // The client pays for the quote; the worker then accepts.
    const pay = await inject({ method: 'POST', url: `/job/${job.id}/payment`, headers: client.auth, payload: { payment_method: 'pm_card_visa' } })
    expect(pay.statusCode, pay.body).toBe(200)
    expect((await accept(w, job.id)).statusCode).toBe(200)
    for (const step of ['STARTED', 'COMPLETED']) expect((await move(w, job.id, step)).statusCode).toBe(200)
    expect((await move(client, job.id, 'PENDING_PAYMENT')).json().price).toEqual(price)
    expect(await balanceOf(t.app.platform.database.db, payableAccount(w.id), 'EUR')).toBe(price.amount - Math.floor(price.amount / 10))
  })

  it('refuses an accept of terms changed since the worker read them, so terms can not be switched under it', async () => {
    const [client, w] = [await worker('Carla'), await worker()]
    const job = await offer(client, w)
    const read = await inject({ url: `/job/${job.id}`, headers: w.auth })
    // A held price can't change at all (payment_price_locked); the rest of the terms can, until accepted.
    expect((await inject({ method: 'POST', url: '/job', headers: client.auth, payload: { id: job.id, price: { amount: 1, currency: 'EUR' } } })).statusCode).toBe(409)
    expect((await inject({ method: 'POST', url: '/job', headers: client.auth, payload: { id: job.id, description: 'And the fence, for the same price' } })).statusCode).toBe(200)
    expect(problem(await move(w, job.id, 'ACCEPTED', { 'if-match': String(read.headers.etag) }), 412).code).toBe('version_mismatch')
    expect(problem(await move(w, job.id, 'ACCEPTED'), 428).code).toBe('version_required')
  })

  it('sends one message for many racing sends with one Idempotency-Key', async () => {
    const [from, to] = [await newUser(t.app), await newUser(t.app)]
    const sends = await Promise.all(Array.from({ length: 8 }, () => inject({ method: 'POST', url: '/send', headers: { ...from.auth, 'idempotency-key': 'pay-once-42' }, payload: { to: to.id, text: 'once' } })))
    expect(new Set(sends.filter((s) => s.statusCode < 300).map((s) => s.json().id)).size).toBe(1)
    expect((await inject({ url: `/inbox?with=${from.id}`, headers: to.auth })).json().items).toHaveLength(1)
  })
})

// ---------------------------------------------------------------------------------------------
// API7: server side request forgery.

/** A TCP listener that counts who connects: what a forged request would reach. */
async function trap() {
  let connections = 0
  const server = net.createServer((socket) => {
    connections++
    socket.destroy()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return { port, connections: () => connections, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

const URL_LIKE = /url|uri|href|link|callback|webhook|endpoint|image|avatar|redirect/i

describe('API7 server side request forgery', () => {
  it('fetches nothing from the addresses put in any URL-like input of any operation', async () => {
    // Today no operation takes a URL (pictures come as bytes). Any field that looks like one, in a
    // body or a query, of an operation documented later is aimed at a local listener and at
    // addresses inside the network, here, with no change to this test.
    const listener = await trap()
    const user = await worker()
    const targets = [`http://127.0.0.1:${listener.port}/`, `http://localhost:${listener.port}/x`, 'http://169.254.169.254/latest/meta-data/', 'file:///etc/passwd', `gopher://127.0.0.1:${listener.port}/_`]
    const fields: string[] = []
    for (const op of operations) {
      const json = op.bodies['application/json']
      const bodyFields = (json ? propertiesOf(json) : []).filter(([name, s]) => URL_LIKE.test(name) || ['uri', 'url', 'iri'].includes(resolve(spec, s).format ?? ''))
      const queryFields = op.parameters.filter((p) => p.in === 'query' && (URL_LIKE.test(p.name) || resolve(spec, p.schema).format === 'uri'))
      for (const target of targets) {
        for (const [name] of bodyFields) {
          fields.push(`${op.method} ${op.path} body ${name}`)
          const res = await inject({ method: op.method, url: op.path.replace(/\{[^}]+\}/g, '0190f3c4-0000-7000-8000-000000000000'), headers: user.auth, payload: { [name]: target } })
          expect(res.statusCode).toBeLessThan(500)
        }
        for (const p of queryFields) {
          fields.push(`${op.method} ${op.path} query ${p.name}`)
          const res = await inject({ method: op.method, url: `${op.path.replace(/\{[^}]+\}/g, '0190f3c4-0000-7000-8000-000000000000')}?${p.name}=${encodeURIComponent(target)}`, headers: user.auth })
          expect(res.statusCode).toBeLessThan(500)
        }
      }
    }
    await new Promise((r) => setTimeout(r, 200))
    expect(listener.connections(), `fields tried: ${[...new Set(fields)].join(', ') || 'none'}`).toBe(0)
    await listener.close()
  })

  it('never decodes an SVG (whose references a decoder would fetch), whatever type it is sent as', async () => {
    const listener = await trap()
    const user = await newUser(t.app)
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10"><image xlink:href="http://127.0.0.1:${listener.port}/pixel.png" width="10" height="10"/></svg>`
    for (const type of ['image/svg+xml', 'image/png', 'image/jpeg']) {
      const res = await inject({ method: 'PUT', url: '/user/picture', headers: { ...user.auth, 'content-type': type }, payload: svg })
      expect(res.statusCode).toBe(415)
    }
    await new Promise((r) => setTimeout(r, 200))
    expect(listener.connections()).toBe(0)
    await listener.close()
  })
})

// ---------------------------------------------------------------------------------------------
// API8: security misconfiguration.

const STACK = /\n\s+at |\.ts:\d+|\.js:\d+|node_modules|\/src\//

describe('API8 security misconfiguration', () => {
  it('sends the API security headers on every operation\'s answers, errors included, and nothing that names the server', async () => {
    const failures: string[] = []
    for (const op of operations) {
      const res = await inject({ method: op.method, url: op.path.replace(/\{[^}]+\}/g, 'not-an-id') })
      const h = res.headers
      const missing = [
        h['x-content-type-options'] !== 'nosniff' && 'nosniff',
        !String(h['strict-transport-security']).startsWith('max-age=') && 'HSTS',
        h['x-frame-options'] !== 'DENY' && 'X-Frame-Options',
        !String(h['content-security-policy']).includes("frame-ancestors 'none'") && 'CSP',
        !h['cache-control'] && 'Cache-Control',
        h['x-powered-by'] !== undefined && 'X-Powered-By sent',
        h.server !== undefined && 'Server sent',
      ].filter(Boolean)
      if (missing.length > 0) failures.push(`${op.method} ${op.path} (${res.statusCode}): ${missing.join(', ')}`)
    }
    expect(failures).toEqual([])
  })

  it('answers CORS to configured origins only, never with a wildcard or credentials', async () => {
    const withCors = tight
    {
      const preflight = (origin: string) => withCors.app.inject({ method: 'OPTIONS', url: '/jobs', headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } })
      const allowed = await preflight('https://app.example.com')
      expect(allowed.headers['access-control-allow-origin']).toBe('https://app.example.com')
      expect(allowed.headers['access-control-allow-credentials']).toBeUndefined()
      for (const origin of ['https://evil.example.com', 'https://app.example.com.evil.com', 'null', 'http://app.example.com']) {
        expect((await preflight(origin)).headers['access-control-allow-origin'], origin).toBeUndefined()
        expect((await withCors.app.inject({ url: '/health', headers: { origin } })).headers['access-control-allow-origin'], origin).toBeUndefined()
      }
    }
    // By default no origin is allowed at all.
    expect((await inject({ url: '/health', headers: { origin: 'https://app.example.com' } })).headers['access-control-allow-origin']).toBeUndefined()
  })

  it('answers every error as problem+json without a stack, a file path or a framework\'s code', async () => {
    const user = await newUser(t.app)
    const requests: InjectOptions[] = [
      { method: 'POST', url: '/send', headers: { ...user.auth, 'content-type': 'application/json' }, payload: '{"to":' },
      { method: 'POST', url: '/send', headers: { ...user.auth, 'content-type': 'application/xml' }, payload: '<to/>' },
      { method: 'POST', url: '/send', headers: { ...user.auth, 'content-type': 'application/json' }, payload: '' },
      { method: 'GET', url: '/job/%E0%A4%A' },
      { method: 'GET', url: `/job/${'a'.repeat(500)}`, headers: user.auth },
      { method: 'GET', url: '/no/such/route' },
      { method: 'PATCH', url: '/job' },
      { method: 'GET', url: `/inbox?cursor=${'A'.repeat(300)}`, headers: user.auth },
      { method: 'POST', url: '/authorize', headers: { 'content-type': 'application/json' }, payload: '{"__proto__":{"admin":true},"email":"a@b.c","password":"x"}' },
      { method: 'POST', url: '/authorize', headers: { 'content-type': 'application/json' }, payload: '{"constructor":{"prototype":{"admin":true}}}' },
    ]
    for (const r of requests) {
      const res = await inject(r)
      expect(res.statusCode, `${r.method} ${r.url}`).toBeGreaterThanOrEqual(400)
      expect(res.statusCode, `${r.method} ${r.url}`).toBeLessThan(500)
      expect(String(res.headers['content-type']), `${r.method} ${r.url}`).toMatch(/^application\/problem\+json/)
      expect(res.body, `${r.method} ${r.url}`).not.toMatch(STACK)
      expect(res.json().code, `${r.method} ${r.url}`).not.toMatch(/^FST_|^ERR_/)
    }
    // Nothing was polluted by the __proto__ bodies.
    expect(({} as Record<string, unknown>).admin).toBeUndefined()
  })

  it('answers TRACE and unknown methods without echoing the request', async () => {
    for (const method of ['TRACE', 'PROPFIND', 'SEARCH'] as unknown as InjectOptions['method'][]) {
      const res = await inject({ method, url: '/health', headers: { cookie: 'secret=1', authorization: 'Bearer echo-me-not-0123456789abcdef' } })
      expect(res.statusCode, method).toBeGreaterThanOrEqual(400)
      expect(res.body).not.toContain('echo-me-not')
    }
  })
})

// ---------------------------------------------------------------------------------------------
// API9: improper inventory management.

/** Every route the server serves, as `METHOD /path` with `{param}`, read from its routing tree. */
function servedRoutes(app: FastifyInstance): string[] {
  const routes: string[] = []
  const stack: { depth: number; path: string }[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^([│ ]*)(?:[└├]── )(.*?)(?: \(([^)]*)\))?$/.exec(line)
    if (!match) continue
    const depth = match[1]!.length
    while (stack.length > 0 && stack[stack.length - 1]!.depth >= depth) stack.pop()
    const path = (stack[stack.length - 1]?.path ?? '') + match[2]!
    stack.push({ depth, path })
    for (const method of match[3]?.split(', ') ?? []) routes.push(`${method} ${path.replace(/:([a-z_]+)/g, '{$1}')}`)
  }
  return routes
}

describe('API9 improper inventory management', () => {
  it('serves no route the document does not describe, but the docs themselves', () => {
    const documented = new Set(operations.map((op) => `${op.method} ${op.path}`))
    const served = servedRoutes(t.app)
    expect(served.length).toBeGreaterThan(documented.size)
    const undocumented = served.filter((route) => {
      const [method, path] = route.split(' ') as [string, string]
      if (documented.has(route)) return false
      // HEAD of a documented GET, and CORS preflights, come with the routes.
      if (method === 'HEAD' && documented.has(`GET ${path}`)) return false
      if (method === 'OPTIONS') return false
      return !(path === '/openapi.json' || path === '/docs' || path.startsWith('/docs/'))
    })
    expect(undocumented).toEqual([])
    // And every documented operation is served.
    expect([...documented].filter((route) => !served.includes(route))).toEqual([])
  })

  it('answers 404 to paths an attacker would probe, and to undocumented methods of documented paths', async () => {
    const user = await admin()
    const probes = ['/admin', '/admin/config', '/metrics', '/debug', '/debug/vars', '/.env', '/.git/config', '/v1/jobs', '/api/jobs', '/v2/user', '/graphql', '/actuator/health', '/server-status', '/users/0190f3c4-0000-7000-8000-000000000000', '/job', '/internal', '/swagger.json', '/openapi.yaml', '/console']
    for (const url of probes) {
      const res = await inject({ url, headers: user.auth })
      expect(res.statusCode, url).toBe(404)
    }
    const failures: string[] = []
    for (const path of Object.keys(spec.paths)) {
      for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const) {
        if (spec.paths[path]![method.toLowerCase()]) continue
        const res = await inject({ method, url: path.replace(/\{[^}]+\}/g, '0190f3c4-0000-7000-8000-000000000000'), headers: user.auth })
        if (res.statusCode !== 404 && res.statusCode !== 405) failures.push(`${method} ${path}: ${res.statusCode}`)
      }
    }
    expect(failures).toEqual([])
  })
})

// ---------------------------------------------------------------------------------------------
// API10: unsafe consumption of APIs.

const CALLBACK_LIKE = /webhook|hook|notify|stripe/i

describe('API10 unsafe consumption of APIs', () => {
  it('refuses unsigned and malformed calls to every webhook route', async () => {
    // Any operation whose path or tag names a webhook joins here (POST /webhooks/stripe now): an
    // unsigned call, a forged signature and a body that is not the provider's shape must each be
    // a 4xx, and change nothing.
    const hooks = operations.filter((op) => CALLBACK_LIKE.test(op.path) || op.tags.some((tag) => CALLBACK_LIKE.test(tag)))
    for (const op of hooks) {
      const url = op.path.replace(/\{[^}]+\}/g, '0190f3c4-0000-7000-8000-000000000000')
      for (const headers of [{}, { 'stripe-signature': 't=1,v1=forged' }, { 'x-signature': 'forged' }]) {
        for (const payload of [{}, { type: 'payment_intent.succeeded', data: { object: { metadata: { job_id: '0190f3c4-0000-7000-8000-000000000000' } } } }, []]) {
          const res = await inject({ method: op.method, url, headers, payload })
          expect(res.statusCode, `${op.method} ${op.path}`).toBeGreaterThanOrEqual(400)
          expect(res.statusCode, `${op.method} ${op.path}`).toBeLessThan(500)
        }
      }
    }
    expect(hooks.map((op) => op.path)).toContain('/webhooks/stripe')
  })

  it('takes a payment provider\'s charge only when its answer is well formed: anything else is a 503 to retry, nothing held, never a 500', async () => {
    const good = (_client: SignedIn) => ({ id: `pi_${randomBytes(6).toString('hex')}`, status: 'succeeded', amount: 4000, currency: 'EUR', client_secret: null, next_action: null, failure_code: null, decline_code: null, job_id: null })
    const answers: ((client: SignedIn, otherJob: string) => unknown)[] = [
      () => null,
      () => 'succeeded',
      () => ({}),
      () => ({ status: 'succeeded' }),
      (c) => ({ ...good(c), id: 42 }),
      (c) => ({ ...good(c), id: '' }),
      (c) => ({ ...good(c), id: 'x'.repeat(100_000) }),
      (c) => ({ ...good(c), status: 'SUCCEEDED' }),
      (c) => ({ ...good(c), status: 'paid' }),
      (c) => ({ ...good(c), amount: '4000' }),
      (c) => ({ ...good(c), amount: -4000 }),
      (c) => ({ ...good(c), amount: 1.5 }),
      (c) => ({ ...good(c), amount: 1 }),
      (c) => ({ ...good(c), currency: 42 }),
      (c) => ({ ...good(c), currency: 'USD' }),
      // A succeeded intent that names another job must not pay for that one.
      (c, otherJob) => ({ ...good(c), job_id: otherJob }),
    ]
    const db = t.app.platform.database.db
    const [bystander, bystanderWorker] = [await worker('Bea'), await worker()]
    const otherJob = await offer(bystander, bystanderWorker, { price: null })
    try {
      for (const answer of answers) {
        const [client, w] = [await worker('Carla'), await worker()]
        const shown = JSON.stringify(answer(client, otherJob.id))?.slice(0, 80)
        brokenCharge = () => answer(client, otherJob.id)
        const res = await inject({ method: 'POST', url: '/job', headers: client.auth, payload: { worker_id: w.id, title: 'Mend the gate', price: { amount: 4000, currency: 'EUR' }, payment_method: 'pm_card_visa' } })
        brokenCharge = undefined
        expect(res.statusCode, `${shown}: ${res.body.slice(0, 200)}`).toBe(503)
        expect(problem(res, 503).code).toBe('payment_provider_unavailable')
        expect(await balanceOf(db, cardAccount(client.id), 'EUR'), shown).toBe(0)
        expect(await balanceOf(db, escrowAccount(otherJob.id), 'EUR'), shown).toBe(0)
        // The offer stands, its payment not held: the client pays again (the same attempt never charges twice).
        const jobs = (await inject({ url: '/jobs?limit=100', headers: client.auth })).json().items as { id: string }[]
        expect(jobs, shown).toHaveLength(1)
        const pay = await inject({ method: 'POST', url: `/job/${jobs[0]!.id}/payment`, headers: client.auth, payload: { payment_method: 'pm_card_visa' } })
        expect(pay.statusCode, `${shown}: ${pay.body.slice(0, 200)}`).toBeLessThan(300)
        expect(await balanceOf(db, escrowAccount(jobs[0]!.id), 'EUR'), shown).toBe(4000)
      }
    } finally {
      brokenCharge = undefined
    }
  })

  it('takes a payment provider\'s payout only when its answer is well formed: anything else leaves the job waiting, never PAID, never a 500', async () => {
    const answers: unknown[] = [null, 'tr_1', {}, { id: 42 }, { id: '' }, { id: 'x'.repeat(100_000) }, { id: { id: 'tr_1' } }, []]
    const db = t.app.platform.database.db
    try {
      for (const answer of answers) {
        const shown = JSON.stringify(answer)?.slice(0, 80)
        const [client, w] = [await worker('Carla'), await worker()]
        const id = await jobIn(client, w, 'COMPLETED')
        brokenTransfer = () => answer
        const res = await move(client, id, 'PENDING_PAYMENT')
        brokenTransfer = undefined
        expect(res.statusCode, `${shown}: ${res.body.slice(0, 200)}`).toBe(200)
        expect(res.json().status, shown).toBe('PENDING_PAYMENT')
        expect(await balanceOf(db, payableAccount(w.id), 'EUR'), shown).toBe(0)
        expect(await balanceOf(db, escrowAccount(id), 'EUR'), shown).toBe(4000)
      }
    } finally {
      brokenTransfer = undefined
    }
  })

  it('survives a provider that hangs up, on a charge or a payout: a 503 to retry, or the job waits for the retry', async () => {
    const hangUp = () => {
      throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
    }
    try {
      const [client, w] = [await worker('Carla'), await worker()]
      brokenCharge = hangUp
      problem(await inject({ method: 'POST', url: '/job', headers: client.auth, payload: { worker_id: w.id, title: 'Mend the gate', price: { amount: 4000, currency: 'EUR' }, payment_method: 'pm_card_visa' } }), 503)
      brokenCharge = undefined
      const id = await jobIn(client, w, 'COMPLETED')
      brokenTransfer = hangUp
      const res = await move(client, id, 'PENDING_PAYMENT')
      expect(res.statusCode).toBe(200)
      expect(res.json().status).toBe('PENDING_PAYMENT')
    } finally {
      brokenCharge = undefined
      brokenTransfer = undefined
    }
  })
})

describe('API4 unrestricted resource consumption: the rate limit (spends the tight app\'s, so last)', () => {
  it('answers 429 with Retry-After past the per-address rate limit, on any route', async () => {
    let last: LightMyRequestResponse | undefined
    for (let i = 0; i < 250 && last?.statusCode !== 429; i++) last = await tight.app.inject({ url: '/jobs' })
    expect(problem(last!, 429).code).toBe('rate_limited')
    expect(Number(last!.headers['retry-after'])).toBeGreaterThan(0)
    // Guessed tokens are counted too, and refused before they are looked up (routes with a limit
    // of their own, sign-up and sign-in, count apart).
    expect((await tight.app.inject({ url: '/users', headers: { authorization: `Bearer ${'A'.repeat(43)}` } })).statusCode).toBe(429)
    expect((await tight.app.inject({ method: 'DELETE', url: '/sessions/0190f3c4-0000-7000-8000-000000000000' })).statusCode).toBe(429)
  })
})
