import type { InjectOptions } from 'fastify'
import sharp from 'sharp'
import Stripe from 'stripe'
import { WebSocket } from 'ws'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../app.js'
import { mailsTo, newUser, problem, signIn, startTestApp, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { openTestPlatform, testConfig } from '../../../test/support/backends.js'
import { waitUntil } from '../../../test/support/wait.js'
import { manualClock } from '../../platform/clock.js'
import { balanceOf, cardAccount, escrowAccount, FEES_ACCOUNT, payableAccount } from '../../platform/payments/ledger.js'

// Every path of the escrow end to end on PAYMENTS=local, which behaves like Stripe's test mode:
// Stripe's test payment methods, 3-D Secure completed through the local page, onboarding through
// the local link, disputes by event. PLATFORM_FEE_BPS is 1000 (10%).

const HOUR = 3_600_000
const clock = manualClock(new Date())
let t: TestApp
let picture: Buffer
let admin: SignedIn

beforeAll(async () => {
  t = await startTestApp({ JOB_SWEEP_INTERVAL: '0', PLATFORM_FEE_BPS: '1000' }, { clock })
  picture = await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 10, g: 90, b: 160 } } }).jpeg().toBuffer()
  admin = await newUser(t.app, { first_name: 'Ada', last_name: 'Admin' })
  expect(await t.app.accounts.setAdmin(admin.email, true)).toBe(true)
}, 240_000)
afterAll(async () => {
  if (process.env.PAYMENTS_TEST_LOGS) console.log(t?.logs.filter((l) => l.includes("\"level\":50")).join(""))
  await t?.close()
})

const inject = (options: InjectOptions) => t.app.inject(options)
const db = () => t.app.platform.database.db

async function worker(options: { payouts?: boolean } = {}): Promise<SignedIn> {
  const user = await newUser(t.app, { roles: ['WORKER'], first_name: 'Wanda', last_name: 'Worker' })
  expect((await inject({ method: 'PUT', url: '/user/picture', headers: { ...user.auth, 'content-type': 'image/jpeg' }, payload: picture })).statusCode).toBe(200)
  if (options.payouts !== false) await onboard(user)
  return user
}
async function onboard(user: SignedIn) {
  const account = await inject({ method: 'POST', url: '/payments/account', headers: user.auth })
  expect([200, 201]).toContain(account.statusCode)
  expect((await inject({ url: account.json().onboarding_url })).statusCode).toBe(200)
}
const client = () => newUser(t.app, { roles: ['CLIENT'], first_name: 'Carla', last_name: 'Client' })

async function offer(c: SignedIn, w: SignedIn, paymentMethod: string | undefined, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  return inject({
    method: 'POST',
    url: '/job',
    headers: { ...c.auth, ...headers },
    payload: { worker_id: w.id, title: 'Fix the tap', price: { amount: 2500, currency: 'EUR' }, ...(paymentMethod ? { payment_method: paymentMethod } : {}), ...extra },
  })
}
async function offered(c: SignedIn, w: SignedIn, paymentMethod = 'pm_card_visa') {
  const res = await offer(c, w, paymentMethod)
  expect(res.statusCode, res.body).toBe(201)
  return res.json()
}
async function move(user: SignedIn, jobId: string, status: string, extra: Record<string, unknown> = {}) {
  const read = await inject({ url: `/job/${jobId}`, headers: user.auth })
  const headers = status === 'ACCEPTED' ? { 'if-match': String(read.headers.etag) } : {}
  return inject({ method: 'POST', url: `/job/${jobId}/status`, headers: { ...user.auth, ...headers }, payload: { status, ...extra } })
}
async function moveOk(user: SignedIn, jobId: string, status: string, extra: Record<string, unknown> = {}) {
  const res = await move(user, jobId, status, extra)
  expect(res.statusCode, res.body).toBe(200)
  return res.json()
}
const getJob = async (user: SignedIn, jobId: string) => (await inject({ url: `/job/${jobId}`, headers: user.auth })).json()
const pay = (user: SignedIn, jobId: string, paymentMethod: string, headers: Record<string, string> = {}) =>
  inject({ method: 'POST', url: `/job/${jobId}/payment`, headers: { ...user.auth, ...headers }, payload: { payment_method: paymentMethod } })
async function texts(user: SignedIn, jobId: string): Promise<string[]> {
  const res = await inject({ url: '/inbox?limit=100', headers: user.auth })
  return (res.json().items as { job_id?: string; text: string }[]).filter((m) => m.job_id === jobId).map((m) => m.text)
}
async function paidJob() {
  const c = await client()
  const w = await worker()
  const job = await offered(c, w)
  await moveOk(w, job.id, 'ACCEPTED')
  await moveOk(w, job.id, 'STARTED')
  await moveOk(w, job.id, 'COMPLETED')
  const paid = await moveOk(c, job.id, 'PENDING_PAYMENT')
  expect(paid.status).toBe('PAID')
  return { c, w, job: paid }
}

describe('a priced offer holds the money before the worker commits', () => {
  it('charges pm_card_visa into escrow, lets the worker accept, and pays them the price less the fee at approval', async () => {
    const c = await client()
    const w = await worker()
    const job = await offered(c, w)
    expect(job.payment).toEqual({ status: 'held', amount: 2500, fee: 250, currency: 'EUR', refunded: 0 })
    expect(await balanceOf(db(), escrowAccount(job.id), 'EUR')).toBe(2500)
    expect(await balanceOf(db(), cardAccount(c.id), 'EUR')).toBe(-2500)
    expect((await inject({ url: '/payments/balance', headers: w.auth })).json()).toEqual({ balances: [{ currency: 'EUR', pending: 2250, available: 0 }] })

    await moveOk(w, job.id, 'ACCEPTED')
    await moveOk(w, job.id, 'STARTED')
    await moveOk(w, job.id, 'COMPLETED')
    const paid = await moveOk(c, job.id, 'PENDING_PAYMENT')
    expect(paid).toMatchObject({ status: 'PAID', payment: { status: 'paid_out', amount: 2500, fee: 250 } })
    expect(await balanceOf(db(), escrowAccount(job.id), 'EUR')).toBe(0)
    expect(await balanceOf(db(), payableAccount(w.id), 'EUR')).toBe(2250)
    expect((await inject({ url: '/payments/balance', headers: w.auth })).json()).toEqual({ balances: [{ currency: 'EUR', pending: 0, available: 2250 }] })
    expect(await texts(c, job.id)).toContain('Receipt: you paid €25.00 for "Fix the tap", of which €2.50 is the platform\'s fee and €22.50 goes to the worker. Thank you!')
    // The receipt is mailed too (a payment event: email is on by default), through the mail outbox.
    await waitUntil(async () => (await mailsTo(t.app, c.email)).some((m) => m.text?.includes('Receipt: you paid €25.00')))

    const asClient = (await inject({ url: '/payments', headers: c.auth })).json()
    expect(asClient.items).toEqual([expect.objectContaining({ job_id: job.id, role: 'client', status: 'paid_out', amount: 2500, fee: 250 })])
    const asWorker = (await inject({ url: '/payments?status=paid_out', headers: w.auth })).json()
    expect(asWorker.items).toEqual([expect.objectContaining({ job_id: job.id, role: 'worker', payout: 2250 })])
    expect((await inject({ url: '/payments?status=held', headers: w.auth })).json().items).toEqual([])
  })

  it('pages GET /payments with cursors', async () => {
    const c = await client()
    const w = await worker()
    const ids = [(await offered(c, w)).id, (await offered(c, w)).id, (await offered(c, w)).id]
    const seen: string[] = []
    let cursor: string | null = null
    do {
      const res = await inject({ url: `/payments?limit=2${cursor ? `&cursor=${cursor}` : ''}`, headers: c.auth })
      expect(res.statusCode).toBe(200)
      seen.push(...res.json().items.map((i: { job_id: string }) => i.job_id))
      cursor = res.json().next_cursor
    } while (cursor)
    expect(seen).toEqual([...ids].reverse())
    expect(problem(await inject({ url: '/payments?cursor=nonsense', headers: c.auth }), 400).code).toBe('invalid_cursor')
  })

  it('refuses an accept while the money is not held (409 payment_not_held), and from a worker without payouts (409 payouts_not_enabled)', async () => {
    const c = await client()
    const w = await worker()
    const unpaid = (await offer(c, w, undefined)).json()
    expect(unpaid.payment.status).toBe('requires_payment_method')
    expect(problem(await move(w, unpaid.id, 'ACCEPTED'), 409).code).toBe('payment_not_held')

    const noPayouts = await worker({ payouts: false })
    const job = await offered(c, noPayouts)
    expect(problem(await move(noPayouts, job.id, 'ACCEPTED'), 409).code).toBe('payouts_not_enabled')
    const account = await inject({ method: 'POST', url: '/payments/account', headers: noPayouts.auth })
    expect(account.statusCode).toBe(201)
    expect(account.json()).toMatchObject({ details_submitted: false, payouts_enabled: false, currently_due: expect.arrayContaining(['external_account']) })
    expect((await inject({ url: '/payments/account', headers: noPayouts.auth })).json().payouts_enabled).toBe(false)
    expect((await inject({ url: account.json().onboarding_url })).statusCode).toBe(200)
    expect((await inject({ url: '/payments/account', headers: noPayouts.auth })).json()).toMatchObject({ details_submitted: true, payouts_enabled: true, currently_due: [] })
    // Made once: asked again, the same account.
    const again = await inject({ method: 'POST', url: '/payments/account', headers: noPayouts.auth })
    expect(again.statusCode).toBe(200)
    expect(again.json().account_id).toBe(account.json().account_id)
    await moveOk(noPayouts, job.id, 'ACCEPTED')
  })

  it('enables payouts at once when the local onboarding link is followed, however soon after another (before any event is applied)', async () => {
    const links: { id: string; url: string }[] = []
    for (let i = 0; i < 5; i++) {
      const w = await worker({ payouts: false })
      links.push({ id: w.id, url: (await inject({ method: 'POST', url: '/payments/account', headers: w.auth })).json().onboarding_url })
    }
    // Onboardings in a row: each account's event waits for the applier's pace, its state does not.
    for (const { id, url } of links) {
      expect((await inject({ url })).json()).toEqual({ payouts_enabled: true })
      const row = await db().selectFrom('payment_accounts').select('payouts_enabled').where('user_id', '=', id).executeTakeFirstOrThrow()
      expect(row.payouts_enabled).toBe(true)
    }
  })

  it('answers a payout account to workers only, and 404 before one is made', async () => {
    const c = await client()
    expect(problem(await inject({ method: 'POST', url: '/payments/account', headers: c.auth }), 403).code).toBe('forbidden')
    expect(problem(await inject({ url: '/payments/account', headers: c.auth }), 404).code).toBe('payment_account_not_found')
  })
})

describe('declines', () => {
  it.each([
    ['pm_card_visa_chargeDeclined', 'generic_decline'],
    ['pm_card_visa_chargeDeclinedInsufficientFunds', 'insufficient_funds'],
    ['pm_card_chargeCustomerFail', 'generic_decline'],
  ])('%s: 402 card_declined with decline_code %s; the offer stays and is paid with another card', async (paymentMethod, declineCode) => {
    const c = await client()
    const w = await worker()
    const declined = await offer(c, w, paymentMethod)
    const body = problem(declined, 402) as ReturnType<typeof problem> & { decline_code: string; job_id: string }
    expect(body).toMatchObject({ code: 'card_declined', decline_code: declineCode })
    const job = await getJob(c, body.job_id)
    expect(job).toMatchObject({ status: 'REQUESTED', payment: { status: 'failed', failure_code: 'card_declined', decline_code: declineCode } })
    expect(problem(await move(w, job.id, 'ACCEPTED'), 409).code).toBe('payment_not_held')
    expect(await balanceOf(db(), escrowAccount(job.id), 'EUR')).toBe(0)

    // The same card again is declined again (a new attempt, a new key); another card holds it.
    expect(problem(await pay(c, job.id, paymentMethod), 402).code).toBe('card_declined')
    const retried = await pay(c, job.id, 'pm_card_visa')
    expect(retried.statusCode, retried.body).toBe(200)
    expect(retried.json().payment).toEqual({ status: 'held', amount: 2500, fee: 250, currency: 'EUR', refunded: 0 })
    expect(problem(await pay(c, job.id, 'pm_card_visa'), 409).code).toBe('payment_not_retryable')
    await moveOk(w, job.id, 'ACCEPTED')
  })

  it('refuses a payment method the provider does not know (400), and one with an unpriced offer', async () => {
    const c = await client()
    const w = await worker()
    expect(problem(await offer(c, w, 'pm_card_nonsense'), 400).code).toBe('payment_method_invalid')
    expect(problem(await offer(c, w, 'pm_card_visa', { price: undefined }), 400).code).toBe('payment_method_not_expected')
  })
})

describe('3-D Secure', () => {
  it('answers requires_action with what the app must do (to the client only); completing it holds the money', async () => {
    const c = await client()
    const w = await worker()
    const job = await offered(c, w, 'pm_card_authenticationRequired')
    expect(job.payment).toMatchObject({ status: 'requires_action', client_secret: expect.stringMatching(/^pi_.+_secret_/), next_action: { type: 'redirect_to_url' } })
    const forWorker = await getJob(w, job.id)
    expect(forWorker.payment).toEqual({ status: 'requires_action', amount: 2500, fee: 250, currency: 'EUR', refunded: 0 })
    expect(problem(await move(w, job.id, 'ACCEPTED'), 409).code).toBe('payment_not_held')
    const url = new URL(job.payment.next_action.redirect_to_url.url, 'http://localhost')
    expect((await inject({ method: 'POST', url: `${url.pathname}?client_secret=wrong` })).statusCode).toBe(404)
    expect((await inject({ method: 'POST', url: `${url.pathname}${url.search}` })).statusCode).toBe(200)
    await waitUntil(async () => (await getJob(c, job.id)).payment.status === 'held')
    expect(await balanceOf(db(), escrowAccount(job.id), 'EUR')).toBe(2500)
    await moveOk(w, job.id, 'ACCEPTED')
  })
})

describe('releases', () => {
  it('gives the money back in full when the worker declines, the client cancels before the work, or the offer expires', async () => {
    const c = await client()
    const w = await worker()
    const declined = await offered(c, w)
    expect((await moveOk(w, declined.id, 'DECLINED')).payment.status).toBe('released')
    const canceled = await offered(c, w)
    await moveOk(w, canceled.id, 'ACCEPTED')
    expect((await moveOk(c, canceled.id, 'CANCELED', { reason: 'Plans changed' })).payment.status).toBe('released')
    const expiring = await offered(c, w)
    clock.advance(73 * HOUR)
    await t.app.jobs.runDueWork()
    await waitUntil(async () => (await getJob(c, expiring.id)).payment?.status === 'released')
    for (const job of [declined, canceled, expiring]) {
      expect(await balanceOf(db(), escrowAccount(job.id), 'EUR')).toBe(0)
      expect(await texts(c, job.id)).toContain('The €25.00 held for "Fix the tap" was released to your card.')
    }
    expect(await balanceOf(db(), cardAccount(c.id), 'EUR')).toBe(0)
  })
})

describe('refunds', () => {
  const auditOfJob = async (jobId: string) => {
    const res = await inject({ url: `/admin/audit?target_id=${jobId}&action=payment.refund&limit=100`, headers: admin.auth })
    expect(res.statusCode, res.body).toBe(200)
    return res.json().items as { action: string; actor_id: string; target_id: string; reason: string | null; request_id: string; details: Record<string, unknown> }[]
  }

  it('refunds in full after payout (ADMIN only), reversing the transfer and the fee', async () => {
    const { c, w, job } = await paidJob()
    const refund = { method: 'POST' as const, url: `/admin/jobs/${job.id}/refund`, payload: { reason: 'The tap still leaks' } }
    expect(problem(await inject({ ...refund, headers: c.auth }), 403).code).toBe('not_an_admin')
    expect(problem(await inject({ ...refund, headers: w.auth }), 403).code).toBe('not_an_admin')
    const res = await inject({ ...refund, headers: admin.auth })
    expect(res.statusCode, res.body).toBe(200)
    expect(res.json()).toMatchObject({ status: 'refunded', refunded: 2500 })
    expect(await balanceOf(db(), payableAccount(w.id), 'EUR')).toBe(0)
    expect(await balanceOf(db(), cardAccount(c.id), 'EUR')).toBe(0)
    expect(await texts(w, job.id)).toContain('€25.00 of the payment for "Fix the tap" was refunded to the client: The tap still leaks')
    expect(problem(await inject({ ...refund, headers: admin.auth }), 409).code).toBe('nothing_to_refund')
    // Audited with the refund, in its request: who, why, how much.
    const audited = await auditOfJob(job.id)
    expect(audited).toEqual([expect.objectContaining({
      action: 'payment.refund', actor_id: admin.id, target_type: 'job', target_id: job.id, reason: 'The tap still leaks', request_id: res.headers['x-request-id'],
      details: expect.objectContaining({ amount: 2500, currency: 'EUR', refunded_total: 2500, reversed_from_worker: 2250 }),
    })])
  })

  it('refunds in part, the worker and the fee giving back in proportion, never more than was charged', async () => {
    const { c, w, job } = await paidJob()
    const refund = (amount: number, headers: Record<string, string> = {}) =>
      inject({ method: 'POST', url: `/admin/jobs/${job.id}/refund`, headers: { ...admin.auth, ...headers }, payload: { amount, reason: 'Half done' } })
    expect(problem(await refund(2501), 400).code).toBe('refund_too_large')
    const first = await refund(1000, { 'idempotency-key': `refund-${job.id}` })
    expect(first.statusCode, first.body).toBe(200)
    expect(first.json()).toMatchObject({ status: 'partially_refunded', refunded: 1000 })
    // The same key and body: the first answer again, no second refund; another body: 422.
    const replay = await refund(1000, { 'idempotency-key': `refund-${job.id}` })
    expect(replay.json()).toEqual(first.json())
    expect(problem(await refund(500, { 'idempotency-key': `refund-${job.id}` }), 422).code).toBe('idempotency_key_mismatch')
    expect(await balanceOf(db(), payableAccount(w.id), 'EUR')).toBe(2250 - 900)
    expect(await balanceOf(db(), cardAccount(c.id), 'EUR')).toBe(-1500)
    expect(problem(await refund(1501), 400).code).toBe('refund_too_large')
    expect((await refund(1500)).json()).toMatchObject({ status: 'refunded', refunded: 2500 })
    expect(await balanceOf(db(), payableAccount(w.id), 'EUR')).toBe(0)
    // One audit entry a refund made: the replay and the refused ones left none.
    expect((await auditOfJob(job.id)).map((e) => e.details.amount).sort()).toEqual([1000, 1500])
  })

  it('answers the platform\'s escrow and fee balances to admins only', async () => {
    const c = await client()
    expect(problem(await inject({ url: '/admin/payments/balances', headers: c.auth }), 403).code).toBe('not_an_admin')
    const res = await inject({ url: '/admin/payments/balances', headers: admin.auth })
    expect(res.statusCode).toBe(200)
    const eur = res.json().balances.find((b: { currency: string }) => b.currency === 'EUR')
    expect(eur.escrow).toBe(await balanceOf(db(), 'escrow:', 'EUR').then(async () => {
      const rows = await db().selectFrom('ledger_entries').select((eb) => eb.fn.sum<string>('amount').as('total')).where('account', 'like', 'escrow:%').where('currency', '=', 'EUR').executeTakeFirstOrThrow()
      return Number(rows.total)
    }))
    expect(eur.fees).toBe(await balanceOf(db(), FEES_ACCOUNT, 'EUR'))
  })
})

describe('disputes', () => {
  const disputed = async () => {
    const c = await client()
    const w = await worker()
    const job = await offered(c, w, 'pm_card_createDispute')
    await waitUntil(async () => (await getJob(c, job.id)).payment.status === 'disputed')
    return { c, w, job }
  }
  const answer = (user: SignedIn, jobId: string, evidence: string) => inject({ method: 'POST', url: `/admin/jobs/${jobId}/dispute`, headers: user.auth, payload: { evidence } })

  it('marks pm_card_createDispute disputed after the charge, holds the payout, and tells both parties and the admins', async () => {
    const { c, w, job } = await disputed()
    expect(problem(await move(w, job.id, 'ACCEPTED'), 409).code).toBe('payment_not_held')
    expect(await texts(c, job.id)).toContain('Your bank disputed the payment of €25.00 for "Fix the tap". We hold it until the dispute is settled.')
    expect(await texts(w, job.id)).toContain('The client\'s bank disputed the payment of €25.00 for "Fix the tap": the payout is held until the dispute is settled.')
    expect((await texts(admin, job.id)).some((text) => text.startsWith('Dispute:'))).toBe(true)
    expect(await balanceOf(db(), escrowAccount(job.id), 'EUR')).toBe(0)
    expect(problem(await inject({ method: 'POST', url: `/admin/jobs/${job.id}/refund`, headers: admin.auth, payload: { reason: 'no' } }), 409).code).toBe('nothing_to_refund')
  })

  it('won (winning_evidence): the money is held again and the worker goes on to be paid', async () => {
    const { c, w, job } = await disputed()
    expect(problem(await answer(c, job.id, 'winning_evidence'), 403).code).toBe('not_an_admin')
    const res = await answer(admin, job.id, 'winning_evidence')
    expect(res.statusCode, res.body).toBe(200)
    expect(res.json()).toMatchObject({ job_id: job.id, dispute_status: 'won' })
    await waitUntil(async () => (await getJob(c, job.id)).payment.status === 'held')
    expect(await balanceOf(db(), escrowAccount(job.id), 'EUR')).toBe(2500)
    expect(await balanceOf(db(), cardAccount(c.id), 'EUR')).toBe(-2500)
    expect(await texts(w, job.id)).toContain('The client\'s dispute of the payment of €25.00 for "Fix the tap" was decided in your favour: your payout is no longer held.')
    expect(problem(await answer(admin, job.id, 'winning_evidence'), 409).code).toBe('no_open_dispute')
    await moveOk(w, job.id, 'ACCEPTED')
    await moveOk(w, job.id, 'STARTED')
    await moveOk(w, job.id, 'COMPLETED')
    expect((await moveOk(c, job.id, 'PENDING_PAYMENT')).payment.status).toBe('paid_out')
    expect(await balanceOf(db(), payableAccount(w.id), 'EUR')).toBe(2250)
    const audited = (await inject({ url: `/admin/audit?target_id=${job.id}&action=payment.dispute_evidence`, headers: admin.auth })).json().items
    expect(audited).toEqual([expect.objectContaining({ actor_id: admin.id, reason: 'winning_evidence' })])
  })

  it('lost (losing_evidence): the chargeback stands as a refund, nothing is paid out of it', async () => {
    const { c, w, job } = await disputed()
    expect((await answer(admin, job.id, 'losing_evidence')).json()).toMatchObject({ dispute_status: 'lost' })
    await waitUntil(async () => (await getJob(c, job.id)).payment.status === 'refunded')
    expect((await getJob(c, job.id)).payment).toMatchObject({ status: 'refunded', refunded: 2500 })
    expect(await balanceOf(db(), escrowAccount(job.id), 'EUR')).toBe(0)
    expect(await balanceOf(db(), cardAccount(c.id), 'EUR')).toBe(0)
    expect(await texts(c, job.id)).toContain('The dispute of your payment of €25.00 for "Fix the tap" was decided in your favour: the money stays refunded to your card.')
    expect(problem(await move(w, job.id, 'ACCEPTED'), 409).code).toBe('payment_not_held')
    expect(problem(await inject({ method: 'POST', url: `/admin/jobs/${job.id}/refund`, headers: admin.auth, payload: { reason: 'again' } }), 409).code).toBe('nothing_to_refund')
    const kinds = (await db().selectFrom('ledger_transactions').select('key').where('job_id', '=', job.id).orderBy('id').execute()).map((r) => r.key.replace(/dp_local[0-9a-f]+/, 'dp'))
    expect(kinds).toEqual([`job:${job.id}:charge`, 'dispute:dp', 'dispute:dp:lost'])
  })
})

describe('receipts', () => {
  it('mails no receipt to a client who turned payment emails off; the receipt message stays in the inbox', async () => {
    const c = await client()
    expect((await inject({ method: 'PUT', url: '/user/notifications', headers: c.auth, payload: { events: { payment: { email: false } } } })).statusCode).toBe(200)
    const w = await worker()
    const job = await offered(c, w)
    await moveOk(w, job.id, 'ACCEPTED')
    await moveOk(w, job.id, 'STARTED')
    await moveOk(w, job.id, 'COMPLETED')
    expect((await moveOk(c, job.id, 'PENDING_PAYMENT')).status).toBe('PAID')
    expect((await texts(c, job.id)).some((text) => text.startsWith('Receipt: you paid €25.00'))).toBe(true)
    // The worker's mail of the same move goes out; the client's receipt does not.
    await waitUntil(async () => (await mailsTo(t.app, w.email)).some((m) => m.text?.includes('You were paid €22.50')))
    await new Promise((r) => setTimeout(r, 500))
    expect((await mailsTo(t.app, c.email, { atLeast: 0 })).filter((m) => m.text?.includes('Receipt'))).toEqual([])
  })
})

describe('live payment changes', () => {
  it('pushes a payment change without a job move to both parties over /ws (payment.updated)', async () => {
    const address = await t.app.listen({ port: 0, host: '127.0.0.1' })
    const c = await client()
    const w = await worker()
    const received: { who: string; type: string; data: { job_id?: string; payment?: { status: string } } }[] = []
    const open = (user: SignedIn, who: string) => new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`${address.replace('http', 'ws')}/ws`, { headers: user.auth })
      ws.on('message', (data) => received.push({ who, ...JSON.parse(String(data)) }))
      ws.once('open', () => resolve(ws))
      ws.once('error', reject)
    })
    const sockets = [await open(c, 'client'), await open(w, 'worker')]
    try {
      const job = await offered(c, w, 'pm_card_authenticationRequired')
      const url = new URL(job.payment.next_action.redirect_to_url.url, 'http://localhost')
      expect((await inject({ method: 'POST', url: `${url.pathname}${url.search}` })).statusCode).toBe(200)
      const held = (who: string) => received.some((e) => e.who === who && e.type === 'payment.updated' && e.data.job_id === job.id && e.data.payment?.status === 'held')
      await waitUntil(() => held('client') && held('worker'))
      // The client secret is never pushed (the worker's socket gets the same event).
      expect(JSON.stringify(received.filter((e) => e.type === 'payment.updated'))).not.toContain('_secret_')
      expect((await getJob(w, job.id)).status).toBe('REQUESTED')
    } finally {
      for (const ws of sockets) ws.close()
    }
  })
})

describe('Idempotency-Key on POST /job', () => {
  it('answers the first answer again for the same key and body (one charge), and 422 for another body', async () => {
    const c = await client()
    const w = await worker()
    const key = { 'idempotency-key': `offer-${c.id}` }
    const first = await offer(c, w, 'pm_card_visa', {}, key)
    expect(first.statusCode).toBe(201)
    const again = await offer(c, w, 'pm_card_visa', {}, key)
    expect(again.statusCode).toBe(201)
    expect(again.json().id).toBe(first.json().id)
    expect(problem(await offer(c, w, 'pm_card_visa', { title: 'Another' }, key), 422).code).toBe('idempotency_key_mismatch')
    expect((await inject({ url: '/payments', headers: c.auth })).json().items).toHaveLength(1)
  })
})

describe('currencies', () => {
  it('refuses a price in a currency the worker\'s account is not paid in (400)', async () => {
    const c = await client()
    const w = await worker()
    expect(problem(await offer(c, w, 'pm_card_visa', { price: { amount: 2500, currency: 'JPY' } }), 400).code).toBe('currency_not_supported')
    expect(problem(await offer(c, w, 'pm_card_visa', { price: { amount: 2500, currency: 'XYZ' } }), 400).code).toBe('unknown_currency')
  })
})

describe('isolation', () => {
  it('keeps one user\'s payments from another: pay 404 to strangers, 403 to the worker', async () => {
    const c = await client()
    const w = await worker()
    const stranger = await client()
    const id = (problem(await offer(c, w, 'pm_card_visa_chargeDeclined'), 402) as unknown as { job_id: string }).job_id
    expect(problem(await pay(stranger, id, 'pm_card_visa'), 404).code).toBe('job_not_found')
    expect(problem(await pay(w, id, 'pm_card_visa'), 403).code).toBe('not_your_payment')
    expect(problem(await inject({ url: `/job/${id}`, headers: stranger.auth }), 404).code).toBe('job_not_found')
    expect((await inject({ url: '/payments', headers: stranger.auth })).json().items).toEqual([])
    expect(problem(await inject({ method: 'POST', url: `/admin/jobs/${id}/refund`, headers: stranger.auth, payload: { reason: 'mine' } }), 403).code).toBe('not_an_admin')
  })
})

describe('the ledger in the database', () => {
  it('holds only movements that sum to zero per currency', async () => {
    const rows = await db()
      .selectFrom('ledger_entries')
      .select(['transaction_id', 'currency', (eb) => eb.fn.sum<string>('amount').as('total')])
      .groupBy(['transaction_id', 'currency'])
      .execute()
    expect(rows.length).toBeGreaterThan(0)
    expect(rows.filter((r) => Number(r.total) !== 0)).toEqual([])
  })

  it('is append-only', async () => {
    await expect(db().deleteFrom('ledger_entries').execute()).rejects.toThrow(/append-only/)
  })
})

describe('POST /webhooks/stripe', () => {
  const secret = 'whsec_local'
  const signed = (payload: string, timestamp?: number) => Stripe.webhooks.generateTestHeaderString({ payload, secret, ...(timestamp ? { timestamp } : {}) })
  const event = (id: string) => JSON.stringify({ id, object: 'event', type: 'customer.created', created: Math.floor(Date.now() / 1000), data: { object: { id: 'cus_1', object: 'customer' } } })

  it('takes a signed event once, and refuses tampered and stale ones', async () => {
    const payload = event(`evt_${Date.now()}`)
    const post = (body: string, signature: string) => inject({ method: 'POST', url: '/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': signature }, payload: body })
    const first = await post(payload, signed(payload))
    expect(first.statusCode, first.body).toBe(200)
    expect(first.json()).toEqual({ received: true, duplicate: false })
    expect((await post(payload, signed(payload))).json()).toEqual({ received: true, duplicate: true })
    expect(problem(await post(payload.replace('cus_1', 'cus_2'), signed(payload)), 400).code).toBe('invalid_signature')
    const stale = event(`evt_stale_${Date.now()}`)
    expect(problem(await post(stale, signed(stale, Math.floor(Date.now() / 1000) - 301)), 400).code).toBe('invalid_signature')
    expect(problem(await post(stale, 'nonsense'), 400).code).toBe('invalid_signature')
  })
})

describe('PAYMENTS=local across a restart', () => {
  it('keeps its intents, accounts and transfers in the database: what began before a restart finishes after it', async () => {
    const platform = await openTestPlatform(testConfig({ JOB_SWEEP_INTERVAL: '0', PLATFORM_FEE_BPS: '1000' }))
    let app = await buildApp(platform.config, platform)
    try {
      const c = await newUser(app, { roles: ['CLIENT'], first_name: 'Rita' })
      const w = await newUser(app, { roles: ['WORKER'], first_name: 'Remo' })
      expect((await app.inject({ method: 'PUT', url: '/user/picture', headers: { ...w.auth, 'content-type': 'image/jpeg' }, payload: picture })).statusCode).toBe(200)
      const account = (await app.inject({ method: 'POST', url: '/payments/account', headers: w.auth })).json()
      const offer = await app.inject({ method: 'POST', url: '/job', headers: c.auth, payload: { worker_id: w.id, title: 'Fix the tap', price: { amount: 2500, currency: 'EUR' }, payment_method: 'pm_card_authenticationRequired' } })
      expect(offer.statusCode, offer.body).toBe(201)
      const job = offer.json()
      expect(job.payment.status).toBe('requires_action')

      // A restart: a new app, a new local provider; only the database stays.
      await app.close()
      app = await buildApp(platform.config, platform)
      const url = new URL(job.payment.next_action.redirect_to_url.url, 'http://localhost')
      expect((await app.inject({ method: 'POST', url: `${url.pathname}${url.search}` })).statusCode).toBe(200)
      expect((await app.inject({ url: new URL(account.onboarding_url, 'http://localhost').pathname })).statusCode).toBe(200)
      await waitUntil(async () => (await app.inject({ url: `/job/${job.id}`, headers: c.auth })).json().payment.status === 'held')
      expect((await app.inject({ url: '/payments/account', headers: w.auth })).json()).toMatchObject({ account_id: account.account_id, payouts_enabled: true })
      const step = async (user: SignedIn, status: string) => {
        const read = await app.inject({ url: `/job/${job.id}`, headers: user.auth })
        const res = await app.inject({ method: 'POST', url: `/job/${job.id}/status`, headers: { ...user.auth, 'if-match': String(read.headers.etag) }, payload: { status } })
        expect(res.statusCode, res.body).toBe(200)
        return res.json()
      }
      await step(w, 'ACCEPTED')
      await step(w, 'STARTED')
      await step(w, 'COMPLETED')
      expect((await step(c, 'PENDING_PAYMENT')).status).toBe('PAID')

      // Again: the transfer made before this restart is reversed by a refund after it.
      await app.close()
      app = await buildApp(platform.config, platform)
      const boss = await newUser(app, { first_name: 'Ada' })
      await app.accounts.setAdmin(boss.email, true)
      const token = await signIn(app, boss.email, boss.password)
      const refund = await app.inject({ method: 'POST', url: `/admin/jobs/${job.id}/refund`, headers: { authorization: `Bearer ${token}` }, payload: { amount: 1000, reason: 'Half done' } })
      expect(refund.statusCode, refund.body).toBe(200)
      expect(await balanceOf(platform.database.db, payableAccount(w.id), 'EUR')).toBe(2250 - 900)
      // The provider's own records, as a test-mode dashboard shows them.
      expect(await platform.database.db.selectFrom('local_transfers').select(['amount', 'reversed']).where('destination', '=', account.account_id).execute()).toEqual([{ amount: 2250, reversed: 900 }])
    } finally {
      await app.close()
      await platform.close()
    }
  }, 120_000)
})

describe('a job scheduled past any card hold', () => {
  // Last in the file: it moves the shared clock by weeks.
  it('is paid at auto-approval 28 days after the offer: the money was charged, not held on the card', async () => {
    const c = await client()
    const w = await worker()
    const res = await offer(c, w, 'pm_card_visa', { scheduled_at: new Date(clock.now().getTime() + 20 * 24 * HOUR).toISOString() })
    expect(res.statusCode, res.body).toBe(201)
    const job = res.json()
    await moveOk(w, job.id, 'ACCEPTED')
    clock.advance(20 * 24 * HOUR)
    await moveOk(w, job.id, 'STARTED')
    await moveOk(w, job.id, 'COMPLETED')
    clock.advance(8 * 24 * HOUR)
    await t.app.jobs.runDueWork()
    await waitUntil(async () => (await getJob(c, job.id)).status === 'PAID')
    expect((await getJob(c, job.id)).payment).toMatchObject({ status: 'paid_out' })
    expect(await balanceOf(db(), payableAccount(w.id), 'EUR')).toBe(2250)
  })
})
