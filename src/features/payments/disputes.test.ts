import type { InjectOptions } from 'fastify'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, startTestApp, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { waitUntil } from '../../../test/support/wait.js'
import { manualClock } from '../../platform/clock.js'
import { createLocalPaymentProvider, type LocalPaymentProvider } from '../../platform/payments/index.js'
import { balanceOf, cardAccount, DISPUTES_ACCOUNT, escrowAccount, payableAccount } from '../../platform/payments/ledger.js'

// A dispute (chargeback) is recorded and applied whatever the job's status when it arrives: the
// payment disputed, a payout not made yet held, the client, the worker and the admins told. A
// dispute recorded while the payout's transfer is under way does not undo the transfer: the job
// is PAID, the chargeback falls on the platform, and a lost dispute takes the worker's share back.
// PAYMENTS=local, PLATFORM_FEE_BPS 1000 (10%).

const HOUR = 3_600_000
const clock = manualClock(new Date())
const local = createLocalPaymentProvider()
/** Runs before the local provider makes a transfer (once), to put something between the ask and its record. */
let beforeTransfer: (() => Promise<void>) | undefined
const provider: LocalPaymentProvider = {
  ...local,
  async createTransfer(input, key) {
    const hook = beforeTransfer
    beforeTransfer = undefined
    await hook?.()
    return local.createTransfer(input, key)
  },
}

let t: TestApp
let picture: Buffer
let admin: SignedIn

beforeAll(async () => {
  t = await startTestApp({ JOB_SWEEP_INTERVAL: '0', PLATFORM_FEE_BPS: '1000' }, { clock, payments: provider })
  picture = await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 10, g: 160, b: 90 } } }).jpeg().toBuffer()
  admin = await newUser(t.app, { first_name: 'Ada', last_name: 'Admin' })
  expect(await t.app.accounts.setAdmin(admin.email, true)).toBe(true)
}, 240_000)
afterAll(async () => t?.close())

const inject = (options: InjectOptions) => t.app.inject(options)
const db = () => t.app.platform.database.db

async function worker(): Promise<SignedIn> {
  const user = await newUser(t.app, { roles: ['WORKER'], first_name: 'Wanda', last_name: 'Worker' })
  expect((await inject({ method: 'PUT', url: '/user/picture', headers: { ...user.auth, 'content-type': 'image/jpeg' }, payload: picture })).statusCode).toBe(200)
  const account = await inject({ method: 'POST', url: '/payments/account', headers: user.auth })
  expect((await inject({ url: account.json().onboarding_url })).statusCode).toBe(200)
  return user
}
const client = () => newUser(t.app, { roles: ['CLIENT'], first_name: 'Carla', last_name: 'Client' })
async function moveOk(user: SignedIn, jobId: string, status: string, extra: Record<string, unknown> = {}) {
  const read = await inject({ url: `/job/${jobId}`, headers: user.auth })
  const headers = status === 'ACCEPTED' ? { 'if-match': String(read.headers.etag) } : {}
  const res = await inject({ method: 'POST', url: `/job/${jobId}/status`, headers: { ...user.auth, ...headers }, payload: { status, ...extra } })
  expect(res.statusCode, res.body).toBe(200)
  return res.json()
}
const getJob = async (user: SignedIn, jobId: string) => (await inject({ url: `/job/${jobId}`, headers: user.auth })).json()
async function texts(user: SignedIn, jobId: string): Promise<string[]> {
  const res = await inject({ url: '/inbox?limit=100', headers: user.auth })
  return (res.json().items as { job_id?: string; text: string }[]).filter((m) => m.job_id === jobId).map((m) => m.text)
}
const accountOf = async (user: SignedIn) => (await db().selectFrom('payment_accounts').select('account_id').where('user_id', '=', user.id).executeTakeFirstOrThrow()).account_id
/** The worker's payouts turned on or off, at the provider and in the app's copy. */
async function payoutsOn(w: SignedIn, enabled: boolean) {
  await db().updateTable('local_accounts').set({ payouts_enabled: enabled }).where('id', '=', await accountOf(w)).execute()
  await db().updateTable('payment_accounts').set({ payouts_enabled: enabled }).where('user_id', '=', w.id).execute()
}

/** A job moved to `status` with its price held (pm_card_visa); PENDING_PAYMENT: its payout failing (the worker's payouts off at the provider). */
async function jobIn(status: string) {
  const c = await client()
  const w = await worker()
  const res = await inject({ method: 'POST', url: '/job', headers: c.auth, payload: { worker_id: w.id, title: 'Fix the tap', price: { amount: 2500, currency: 'EUR' }, payment_method: 'pm_card_visa' } })
  expect(res.statusCode, res.body).toBe(201)
  const job = res.json()
  const path: Record<string, [SignedIn, string, Record<string, unknown>?][]> = {
    REQUESTED: [],
    DECLINED: [[w, 'DECLINED']],
    CANCELED: [[w, 'ACCEPTED'], [c, 'CANCELED', { reason: 'Plans changed' }]],
    ACCEPTED: [[w, 'ACCEPTED']],
    STARTED: [[w, 'ACCEPTED'], [w, 'STARTED']],
    COMPLETED: [[w, 'ACCEPTED'], [w, 'STARTED'], [w, 'COMPLETED']],
    PENDING_PAYMENT: [[w, 'ACCEPTED'], [w, 'STARTED'], [w, 'COMPLETED'], [c, 'PENDING_PAYMENT']],
    PAID: [[w, 'ACCEPTED'], [w, 'STARTED'], [w, 'COMPLETED'], [c, 'PENDING_PAYMENT']],
  }
  for (const [user, to, extra] of path[status] ?? []) {
    // Payouts off once the worker is done: the approval's payout then fails, and the job waits in PENDING_PAYMENT.
    if (status === 'PENDING_PAYMENT' && to === 'PENDING_PAYMENT') await payoutsOn(w, false)
    await moveOk(user, job.id, to, extra)
  }
  if (status === 'EXPIRED') {
    clock.advance(73 * HOUR)
    await t.app.jobs.runDueWork()
  }
  await waitUntil(async () => (await getJob(c, job.id)).status === status)
  return { c, w, job: await getJob(c, job.id) }
}

let disputes = 0
/** The provider's dispute event for a job's charge, received and applied. */
async function dispute(jobId: string, status: 'needs_response' | 'won' | 'lost', id = `dp_test${++disputes}`) {
  const { payment_intent_id: intent } = await db().selectFrom('jobs').select('payment_intent_id').where('id', '=', jobId).executeTakeFirstOrThrow()
  const type = status === 'needs_response' ? 'charge.dispute.created' : 'charge.dispute.closed'
  await t.app.payments.receiveEvent({ id: `evt_${id}_${status}`, type, created: Math.floor(Date.now() / 1000), data: { object: { id, object: 'dispute', amount: 2500, currency: 'eur', payment_intent: intent, reason: 'fraudulent', status } } })
  await t.app.payments.applyEvents()
  return id
}
const ledgerKeys = async (jobId: string) => (await db().selectFrom('ledger_transactions').select('key').where('job_id', '=', jobId).orderBy('id').execute()).map((r) => r.key)

describe('a dispute, whatever the job\'s status', () => {
  for (const status of ['REQUESTED', 'ACCEPTED', 'STARTED', 'COMPLETED', 'PENDING_PAYMENT', 'PAID', 'DECLINED', 'CANCELED', 'EXPIRED']) {
    it(`is recorded and applied in ${status}: the payment disputed, both parties and the admins told`, async () => {
      const { c, w, job } = await jobIn(status)
      const id = await dispute(job.id, 'needs_response')
      expect((await getJob(c, job.id)).payment.status).toBe('disputed')
      expect(await ledgerKeys(job.id)).toContain(`dispute:${id}`)
      expect(await texts(c, job.id)).toContain('Your bank disputed the payment of €25.00 for "Fix the tap". We hold it until the dispute is settled.')
      expect((await texts(w, job.id)).some((text) => text.startsWith('The client\'s bank disputed the payment of €25.00'))).toBe(true)
      expect((await texts(admin, job.id)).some((text) => text.startsWith('Dispute: the payment of €25.00'))).toBe(true)
      // The same event again changes nothing.
      await dispute(job.id, 'needs_response', id)
      expect((await ledgerKeys(job.id)).filter((key) => key === `dispute:${id}`)).toHaveLength(1)
    })
  }

  it('in PENDING_PAYMENT holds the worker\'s payout until the dispute is won, then pays it', async () => {
    const { c, w, job } = await jobIn('PENDING_PAYMENT')
    const id = await dispute(job.id, 'needs_response')
    expect((await inject({ url: '/payments/balance', headers: w.auth })).json().balances).toEqual([{ currency: 'EUR', pending: 2250, available: 0 }])
    // Payouts possible again: the payment task rests all the same.
    await payoutsOn(w, true)
    await t.app.jobs.payOrFail(job.id)
    expect(await getJob(c, job.id)).toMatchObject({ status: 'PENDING_PAYMENT', payment: { status: 'disputed' } })
    expect(await balanceOf(db(), payableAccount(w.id), 'EUR')).toBe(0)
    await dispute(job.id, 'won', id)
    await waitUntil(async () => (await getJob(c, job.id)).status === 'PAID')
    expect((await getJob(c, job.id)).payment.status).toBe('paid_out')
    expect(await balanceOf(db(), payableAccount(w.id), 'EUR')).toBe(2250)
    expect(await balanceOf(db(), escrowAccount(job.id), 'EUR')).toBe(0)
  })

  it('won after a release leaves the payment released', async () => {
    const { c, job } = await jobIn('DECLINED')
    const id = await dispute(job.id, 'needs_response')
    await dispute(job.id, 'won', id)
    expect((await getJob(c, job.id)).payment.status).toBe('released')
    expect(await balanceOf(db(), cardAccount(c.id), 'EUR')).toBe(0)
  })

  it('recorded while the payout\'s transfer is under way: the job is PAID, the chargeback on the platform; lost, the worker\'s share comes back', async () => {
    const { c, w, job } = await jobIn('COMPLETED')
    const before = await balanceOf(db(), DISPUTES_ACCOUNT, 'EUR')
    let id = ''
    beforeTransfer = async () => {
      id = await dispute(job.id, 'needs_response')
    }
    const approved = await moveOk(c, job.id, 'PENDING_PAYMENT')
    expect(id).not.toBe('')
    expect(approved).toMatchObject({ status: 'PAID', payment: { status: 'disputed' } })
    expect(await balanceOf(db(), payableAccount(w.id), 'EUR')).toBe(2250)
    expect(await balanceOf(db(), escrowAccount(job.id), 'EUR')).toBe(0)
    expect(await balanceOf(db(), DISPUTES_ACCOUNT, 'EUR')).toBe(before - 2500)
    expect(await texts(c, job.id)).toContain('Your bank disputed the payment of €25.00 for "Fix the tap". We hold it until the dispute is settled.')

    await dispute(job.id, 'lost', id)
    expect((await getJob(c, job.id)).payment).toMatchObject({ status: 'refunded', refunded: 2500 })
    expect(await balanceOf(db(), payableAccount(w.id), 'EUR')).toBe(0)
    expect(await balanceOf(db(), DISPUTES_ACCOUNT, 'EUR')).toBe(before)
    expect(await balanceOf(db(), cardAccount(c.id), 'EUR')).toBe(0)
    const transfer = await db().selectFrom('local_transfers').select(['amount', 'reversed']).where('destination', '=', await accountOf(w)).executeTakeFirstOrThrow()
    expect(transfer).toEqual({ amount: 2250, reversed: 2250 })
  })
})
