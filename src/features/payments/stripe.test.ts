import type { InjectOptions } from 'fastify'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, problem, signIn, startTestApp, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { startStripePeer, type StripePeer } from '../../../test/support/stripe-peer.js'
import { waitUntil } from '../../../test/support/wait.js'
import { createStripePaymentProvider } from '../../platform/payments/index.js'
import { balanceOf, cardAccount, DISPUTES_ACCOUNT, escrowAccount, FEES_ACCOUNT, payableAccount } from '../../platform/payments/ledger.js'

// PAYMENTS=stripe: the adapter through the official SDK, pointed at a local Stripe peer that
// answers in Stripe's shapes; webhooks signed with the SDK's generateTestHeaderString.

let peer: StripePeer
let t: TestApp
let picture: Buffer

beforeAll(async () => {
  peer = await startStripePeer()
  // A short timeout, so that a slow answer is a timeout for the app (and its retry, with the same key, charges once).
  const provider = createStripePaymentProvider({ secretKey: peer.secretKey, webhookSecret: peer.webhookSecret, apiUrl: peer.url, timeoutMs: 2_000 })
  t = await startTestApp(
    { JOB_SWEEP_INTERVAL: '0', PAYMENTS: 'stripe', STRIPE_SECRET_KEY: peer.secretKey, STRIPE_WEBHOOK_SECRET: peer.webhookSecret, STRIPE_API_URL: peer.url },
    { payments: provider },
  )
  picture = await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 200, g: 90, b: 10 } } }).jpeg().toBuffer()
}, 240_000)
afterAll(async () => {
  await t?.close()
  await peer?.close()
})

const inject = (options: InjectOptions) => t.app.inject(options)
const webhook = (payload: string, signature: string) =>
  inject({ method: 'POST', url: '/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': signature }, payload })
const getJob = async (user: SignedIn, jobId: string) => (await inject({ url: `/job/${jobId}`, headers: user.auth })).json()

/** A worker onboarded at Stripe, their account enabled by the account.updated webhook. */
async function worker(): Promise<SignedIn> {
  const user = await newUser(t.app, { roles: ['WORKER'], first_name: 'Wim', last_name: 'Worker' })
  expect((await inject({ method: 'PUT', url: '/user/picture', headers: { ...user.auth, 'content-type': 'image/jpeg' }, payload: picture })).statusCode).toBe(200)
  const created = await inject({ method: 'POST', url: '/payments/account', headers: user.auth })
  expect(created.statusCode, created.body).toBe(201)
  expect(created.json()).toMatchObject({ provider: 'stripe', payouts_enabled: false, onboarding_url: expect.stringContaining('https://connect.stripe.com/') })
  const account = peer.enableAccount(created.json().account_id)
  const event = peer.event('account.updated', account)
  expect((await webhook(event.payload, event.signature)).statusCode).toBe(200)
  await waitUntil(async () => (await inject({ url: '/payments/account', headers: user.auth })).json().payouts_enabled === true)
  return user
}
const client = () => newUser(t.app, { roles: ['CLIENT'], first_name: 'Cleo', last_name: 'Client' })
const offer = (c: SignedIn, w: SignedIn, paymentMethod: string) =>
  inject({ method: 'POST', url: '/job', headers: c.auth, payload: { worker_id: w.id, title: 'Hang the shelves', price: { amount: 4000, currency: 'EUR' }, payment_method: paymentMethod } })
async function move(user: SignedIn, jobId: string, status: string) {
  const read = await inject({ url: `/job/${jobId}`, headers: user.auth })
  const res = await inject({ method: 'POST', url: `/job/${jobId}/status`, headers: { ...user.auth, 'if-match': String(read.headers.etag) }, payload: { status } })
  expect(res.statusCode, res.body).toBe(200)
  return res.json()
}
const intentOf = async (jobId: string) => (await t.app.platform.database.db.selectFrom('jobs').select('payment_intent_id').where('id', '=', jobId).executeTakeFirstOrThrow()).payment_intent_id!

describe('PAYMENTS=stripe', () => {
  it('holds the price with a charge into the platform\'s balance, pays the worker by transfer at approval, refunds with a proportional reversal', async () => {
    const c = await client()
    const w = await worker()
    const res = await offer(c, w, 'pm_card_visa')
    expect(res.statusCode, res.body).toBe(201)
    const job = res.json()
    expect(job.payment).toEqual({ status: 'held', amount: 4000, fee: 400, currency: 'EUR', refunded: 0 })
    const charge = peer.calls.find((call) => call.path === '/v1/payment_intents' && call.method === 'POST')!
    expect(charge.idempotencyKey).toBe(`job:${job.id}:charge:0`)
    await move(w, job.id, 'ACCEPTED')
    await move(w, job.id, 'STARTED')
    await move(w, job.id, 'COMPLETED')
    const paid = await move(c, job.id, 'PENDING_PAYMENT')
    expect(paid).toMatchObject({ status: 'PAID', payment: { status: 'paid_out' } })
    expect(peer.calls.filter((call) => call.path === '/v1/transfers').map((call) => call.idempotencyKey)).toContain(`job:${job.id}:transfer`)
    expect(await balanceOf(t.app.platform.database.db, payableAccount(w.id), 'EUR')).toBe(3600)

    const admin = await newUser(t.app)
    await t.app.accounts.setAdmin(admin.email, true)
    const refund = await inject({ method: 'POST', url: `/admin/jobs/${job.id}/refund`, headers: admin.auth, payload: { amount: 1000, reason: 'One shelf is crooked' } })
    expect(refund.statusCode, refund.body).toBe(200)
    expect(refund.json()).toMatchObject({ status: 'partially_refunded', refunded: 1000 })
    expect(peer.calls.some((call) => call.path.endsWith('/reversals') && call.idempotencyKey === `job:${job.id}:refund:0:reversal`)).toBe(true)
    expect(await balanceOf(t.app.platform.database.db, payableAccount(w.id), 'EUR')).toBe(2700)
  })

  it('answers a decline 402 with Stripe\'s decline_code, and an unknown payment method 400', async () => {
    const c = await client()
    const w = await worker()
    const declined = problem(await offer(c, w, 'pm_card_visa_chargeDeclinedInsufficientFunds'), 402) as ReturnType<typeof problem> & { decline_code: string; job_id: string }
    expect(declined).toMatchObject({ code: 'card_declined', decline_code: 'insufficient_funds' })
    expect((await getJob(c, declined.job_id)).payment).toMatchObject({ status: 'failed', failure_code: 'card_declined', decline_code: 'insufficient_funds' })
    expect(problem(await offer(c, w, 'pm_unknown'), 400).code).toBe('payment_method_invalid')
  })

  it('charges once when the answer times out and the client retries', async () => {
    const c = await client()
    const w = await worker()
    const before = peer.charges()
    peer.delayNext('/v1/payment_intents', 4_000)
    expect(problem(await offer(c, w, 'pm_card_visa'), 503).code).toBe('payment_provider_unavailable')
    const jobs = (await inject({ url: '/jobs?role=CLIENT', headers: c.auth })).json().items
    expect(jobs).toHaveLength(1)
    expect(jobs[0].payment.status).toBe('requires_payment_method')
    const retried = await inject({ method: 'POST', url: `/job/${jobs[0].id}/payment`, headers: c.auth, payload: { payment_method: 'pm_card_visa' } })
    expect(retried.statusCode, retried.body).toBe(200)
    expect(retried.json().payment.status).toBe('held')
    expect(peer.charges() - before).toBe(1)
    expect(await balanceOf(t.app.platform.database.db, escrowAccount(jobs[0].id), 'EUR')).toBe(4000)
  })

  it('ends 3-D Secure right whatever the order of its events, applying each event once', async () => {
    const c = await client()
    const w = await worker()
    const res = await offer(c, w, 'pm_card_authenticationRequired')
    expect(res.statusCode, res.body).toBe(201)
    const job = res.json()
    expect(job.payment).toMatchObject({ status: 'requires_action', client_secret: expect.any(String), next_action: { type: 'use_stripe_sdk' } })
    const intentId = await intentOf(job.id)
    const early = peer.event('payment_intent.requires_action', peer.intent(intentId))
    const succeeded = peer.event('payment_intent.succeeded', peer.authenticate(intentId))
    // Shuffled, and the success twice: the late requires_action can't move the payment back.
    for (const event of [succeeded, early, succeeded]) expect((await webhook(event.payload, event.signature)).statusCode).toBe(200)
    await waitUntil(async () => (await getJob(c, job.id)).payment.status === 'held')
    const late = peer.event('payment_intent.requires_action', { ...peer.intent(intentId), status: 'requires_action' })
    await webhook(late.payload, late.signature)
    await waitUntil(async () => (await t.app.platform.database.db.selectFrom('payment_events').select('applied_at').where('id', '=', late.id).executeTakeFirst())?.applied_at != null)
    expect((await getJob(c, job.id)).payment.status).toBe('held')
    expect(await balanceOf(t.app.platform.database.db, escrowAccount(job.id), 'EUR')).toBe(4000)
  })

  it('marks a dispute, holds the payout and tells both parties; refuses tampered, stale and forged events; ignores duplicates', async () => {
    const c = await client()
    const w = await worker()
    const job = (await offer(c, w, 'pm_card_visa')).json()
    const dispute = peer.event('charge.dispute.created', { id: 'dp_1', object: 'dispute', amount: 4000, currency: 'eur', payment_intent: await intentOf(job.id), reason: 'fraudulent', status: 'needs_response' })
    expect(problem(await webhook(dispute.payload.replace('fraudulent', 'duplicate'), dispute.signature), 400).code).toBe('invalid_signature')
    expect(problem(await webhook(dispute.payload, peer.sign(dispute.payload, Math.floor(Date.now() / 1000) - 600)), 400).code).toBe('invalid_signature')
    expect(problem(await webhook(dispute.payload, dispute.signature.replace(/v1=[0-9a-f]+/, `v1=${'0'.repeat(64)}`)), 400).code).toBe('invalid_signature')
    expect((await getJob(c, job.id)).payment.status).toBe('held')
    expect((await webhook(dispute.payload, dispute.signature)).json()).toEqual({ received: true, duplicate: false })
    expect((await webhook(dispute.payload, dispute.signature)).json()).toEqual({ received: true, duplicate: true })
    await waitUntil(async () => (await getJob(c, job.id)).payment.status === 'disputed')
    const inbox = (await inject({ url: '/inbox?limit=50', headers: w.auth })).json().items as { job_id?: string; text: string }[]
    expect(inbox.some((m) => m.job_id === job.id && m.text.includes('disputed'))).toBe(true)
    expect(problem(await inject({ method: 'POST', url: `/job/${job.id}/status`, headers: { ...w.auth, 'if-match': `"${job.version}"` }, payload: { status: 'ACCEPTED' } }), 409).code).toBe('payment_not_held')
  })

  const db = () => t.app.platform.database.db
  const statusOf = async (c: SignedIn, jobId: string) => (await getJob(c, jobId)).payment.status as string
  async function anAdmin(): Promise<SignedIn> {
    const user = await newUser(t.app, { first_name: 'Ada' })
    await t.app.accounts.setAdmin(user.email, true)
    const token = await signIn(t.app, user.email, user.password)
    return { ...user, token, auth: { authorization: `Bearer ${token}` } }
  }
  const send = async (event: { payload: string; signature: string }) => expect((await webhook(event.payload, event.signature)).statusCode).toBe(200)

  it('a dispute won (charge.dispute.closed) holds the money again, and the payout it held goes ahead at approval', async () => {
    const c = await client()
    const w = await worker()
    const job = (await offer(c, w, 'pm_card_visa')).json()
    await move(w, job.id, 'ACCEPTED')
    await move(w, job.id, 'STARTED')
    await move(w, job.id, 'COMPLETED')
    const dispute = peer.openDispute(await intentOf(job.id))
    await send(peer.event('charge.dispute.created', dispute))
    await waitUntil(async () => (await statusOf(c, job.id)) === 'disputed')
    expect(await balanceOf(db(), escrowAccount(job.id), 'EUR')).toBe(0)

    // The admin answers with evidence; Stripe closes the dispute later, by event.
    const admin = await anAdmin()
    const answered = await inject({ method: 'POST', url: `/admin/jobs/${job.id}/dispute`, headers: admin.auth, payload: { evidence: 'winning_evidence' } })
    expect(answered.statusCode, answered.body).toBe(200)
    expect(answered.json()).toMatchObject({ status: 'disputed', dispute_status: 'under_review' })
    expect(peer.evidence.get(String(dispute.id))).toBe('winning_evidence')
    const closed = peer.event('charge.dispute.closed', peer.closeDispute(String(dispute.id), 'won'))
    await send(closed)
    await send(closed)
    await waitUntil(async () => (await statusOf(c, job.id)) === 'held')
    expect(await balanceOf(db(), escrowAccount(job.id), 'EUR')).toBe(4000)
    const paid = await move(c, job.id, 'PENDING_PAYMENT')
    expect(paid).toMatchObject({ status: 'PAID', payment: { status: 'paid_out' } })
    expect(await balanceOf(db(), payableAccount(w.id), 'EUR')).toBe(3600)
  })

  it('a dispute lost after the payout is accounted as a refund: the worker\'s transfer and the fee reversed; out of order and twice, once', async () => {
    const c = await client()
    const w = await worker()
    const job = (await offer(c, w, 'pm_card_visa')).json()
    await move(w, job.id, 'ACCEPTED')
    await move(w, job.id, 'STARTED')
    await move(w, job.id, 'COMPLETED')
    expect((await move(c, job.id, 'PENDING_PAYMENT')).status).toBe('PAID')
    const fees = await balanceOf(db(), FEES_ACCOUNT, 'EUR')
    const disputes = await balanceOf(db(), DISPUTES_ACCOUNT, 'EUR')
    const dispute = peer.openDispute(await intentOf(job.id))
    const created = peer.event('charge.dispute.created', dispute)
    const closed = peer.event('charge.dispute.closed', peer.closeDispute(String(dispute.id), 'lost'))
    // The close arrives first, then the opening, then the close again.
    for (const event of [closed, created, closed]) await send(event)
    await waitUntil(async () => (await statusOf(c, job.id)) === 'refunded')
    await waitUntil(async () => (await db().selectFrom('payment_events').select('id').where('id', 'in', [created.id, closed.id]).where('applied_at', 'is not', null).execute()).length === 2)
    expect((await getJob(c, job.id)).payment).toMatchObject({ status: 'refunded', refunded: 4000 })
    expect(peer.calls.filter((call) => call.path.endsWith('/reversals') && call.idempotencyKey === `dispute:${dispute.id}:reversal`).length).toBeGreaterThanOrEqual(1)
    expect(await balanceOf(db(), payableAccount(w.id), 'EUR')).toBe(0)
    expect(await balanceOf(db(), cardAccount(c.id), 'EUR')).toBe(0)
    expect(await balanceOf(db(), FEES_ACCOUNT, 'EUR')).toBe(fees - 400)
    expect(await balanceOf(db(), DISPUTES_ACCOUNT, 'EUR')).toBe(disputes)
    const inbox = (await inject({ url: '/inbox?limit=50', headers: w.auth })).json().items as { job_id?: string; text: string }[]
    expect(inbox.filter((m) => m.job_id === job.id && m.text.includes('was decided for the client'))).toHaveLength(1)
  })
})
