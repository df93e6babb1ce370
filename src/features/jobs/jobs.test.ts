import fc from 'fast-check'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import { sql } from 'kysely'
import sharp from 'sharp'
import { v7 as uuidv7 } from 'uuid'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { newUser, problem, startTestApp, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { manualClock } from '../../platform/clock.js'
import type { LiveEvent } from '../../platform/live/index.js'
import { createLocalPaymentProvider, type PaymentProvider } from '../../platform/payments/index.js'
import { balanceOf, cardAccount, escrowAccount, FEES_ACCOUNT, payableAccount } from '../../platform/payments/ledger.js'
import { JOB_STATUSES, WORKFLOW, judge, type JobStatus } from './workflow.js'

const HOUR = 3_600_000
const DAY = 24 * HOUR
const clock = manualClock(new Date())

/**
 * The local provider, except for the jobs named here: their payout fails, as a provider that is
 * down does, so the tests see PENDING_PAYMENT.
 */
const held = new Set<string>()
const local = createLocalPaymentProvider()
const payments: PaymentProvider = Object.assign(Object.create(local) as PaymentProvider, {
  async createTransfer(input: Parameters<PaymentProvider['createTransfer']>[0], key: string) {
    if (held.has(input.jobId)) throw new Error('the provider is down')
    return local.createTransfer(input, key)
  },
})

let t: TestApp
const events: LiveEvent[] = []
let picture: Buffer

beforeAll(async () => {
  // The sweep runs when the tests say, at the time they say.
  t = await startTestApp({ JOB_SWEEP_INTERVAL: '0' }, { clock, payments })
  await t.app.platform.live.events.subscribe((event) => events.push(event))
  picture = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 30, g: 120, b: 200 } } }).jpeg().toBuffer()
}, 240_000)
afterAll(async () => t.close())

const inject = (options: InjectOptions) => t.app.inject(options)

async function worker(options: { picture?: boolean; first_name?: string } = {}): Promise<SignedIn> {
  const user = await newUser(t.app, { roles: ['WORKER'], first_name: options.first_name ?? 'Wanda', last_name: 'Worker' })
  // Payouts set up, as a worker does before accepting priced jobs.
  const account = await inject({ method: 'POST', url: '/payments/account', headers: user.auth })
  expect(account.statusCode, account.body).toBe(201)
  expect((await inject({ url: account.json().onboarding_url })).statusCode).toBe(200)
  if (options.picture !== false) {
    const res = await inject({ method: 'PUT', url: '/user/picture', headers: { ...user.auth, 'content-type': 'image/jpeg' }, payload: picture })
    expect(res.statusCode).toBe(200)
  }
  return user
}
const client = () => newUser(t.app, { roles: ['CLIENT'], first_name: 'Carla', last_name: 'Client' })

const offerBody = (w: SignedIn, extra: Record<string, unknown> = {}) => ({
  worker_id: w.id,
  title: 'Fix the kitchen tap',
  description: 'It drips all night.',
  price: { amount: 2500, currency: 'EUR' },
  ...('price' in extra && !extra.price ? {} : { payment_method: 'pm_card_visa' }),
  ...extra,
})

async function offer(c: SignedIn, w: SignedIn, extra: Record<string, unknown> = {}) {
  const res = await inject({ method: 'POST', url: '/job', headers: c.auth, payload: offerBody(w, extra) })
  expect(res.statusCode, res.body).toBe(201)
  return res.json()
}

/**
 * A move, as an app makes it: an accept names the version of the job the worker reads just
 * before (If-Match), unless `headers` are given.
 */
async function move(user: SignedIn, jobId: string, status: string, extra: Record<string, unknown> = {}, headers?: Record<string, string>) {
  if (!headers && status === 'ACCEPTED') {
    const read = await inject({ url: `/job/${jobId}`, headers: user.auth })
    headers = read.statusCode === 200 ? { 'if-match': String(read.headers.etag) } : {}
  }
  return inject({ method: 'POST', url: `/job/${jobId}/status`, headers: { ...user.auth, ...headers }, payload: { status, ...extra } })
}

async function moveOk(user: SignedIn, jobId: string, status: string, extra: Record<string, unknown> = {}) {
  const res = await move(user, jobId, status, extra)
  expect(res.statusCode, res.body).toBe(200)
  return res.json()
}

const getJob = async (user: SignedIn, jobId: string) => {
  const res = await inject({ url: `/job/${jobId}`, headers: user.auth })
  expect(res.statusCode, res.body).toBe(200)
  return res.json()
}

interface Msg {
  from: string | null
  to: string
  text: string
  kind: string
  job_id?: string | null
}

/** The user's messages about one job, oldest first, as the inbox shows them. */
async function messagesAbout(user: SignedIn, jobId: string): Promise<Msg[]> {
  const res = await inject({ url: '/inbox?limit=100', headers: user.auth })
  expect(res.statusCode, res.body).toBe(200)
  // The escrow's own messages (money released to the card) are payments.test.ts's to check.
  return (res.json().items as Msg[]).filter((m) => m.job_id === jobId && !m.text.endsWith('was released to your card.')).reverse()
}

/** A job of a fresh client and worker, walked to `status` along the workflow. */
async function jobIn(status: JobStatus, options: { price?: boolean; hold?: boolean } = {}) {
  const c = await client()
  const w = await worker()
  const extra: Record<string, unknown> = { title: 'Paint the fence' }
  if (options.price === false) extra.price = undefined
  const job = await offer(c, w, { ...extra, ...(status === 'EXPIRED' ? { expires_in: 3600 } : {}) })
  if (options.hold || status === 'PENDING_PAYMENT') held.add(job.id)
  const path: [SignedIn, string, Record<string, unknown>?][] = {
    REQUESTED: [],
    ACCEPTED: [[w, 'ACCEPTED']],
    DECLINED: [[w, 'DECLINED']],
    CANCELED: [[c, 'CANCELED']],
    EXPIRED: [],
    STARTED: [[w, 'ACCEPTED'], [w, 'STARTED']],
    COMPLETED: [[w, 'ACCEPTED'], [w, 'STARTED'], [w, 'COMPLETED']],
    PENDING_PAYMENT: [[w, 'ACCEPTED'], [w, 'STARTED'], [w, 'COMPLETED'], [c, 'PENDING_PAYMENT']],
    PAID: [[w, 'ACCEPTED'], [w, 'STARTED'], [w, 'COMPLETED'], [c, 'PENDING_PAYMENT']],
  }[status] as [SignedIn, string, Record<string, unknown>?][]
  for (const [who, to, body] of path) await moveOk(who, job.id, to, body)
  if (status === 'EXPIRED') {
    clock.advance(HOUR + 1000)
    await t.app.jobs.runDueWork()
  }
  const now = await getJob(c, job.id)
  expect(now.status).toBe(status)
  return { c, w, job: now }
}

describe('POST /job: offers', () => {
  it('offers a job to a worker: 201 in REQUESTED, with an ETag, a status log and the offer in the worker\'s inbox', async () => {
    const c = await client()
    const w = await worker()
    const scheduled = new Date(clock.now().getTime() + 3 * DAY).toISOString()
    const res = await inject({
      method: 'POST',
      url: '/job',
      headers: c.auth,
      payload: offerBody(w, { scheduled_at: scheduled, location: { lat: 48.8566, lon: 2.3522, address: '1 Rue de Rivoli, Paris' } }),
    })
    expect(res.statusCode).toBe(201)
    const job = res.json()
    expect(job).toMatchObject({
      client_id: c.id,
      worker_id: w.id,
      title: 'Fix the kitchen tap',
      description: 'It drips all night.',
      status: 'REQUESTED',
      price: { amount: 2500, currency: 'EUR' },
      scheduled_at: scheduled,
      location: { lat: 48.8566, lon: 2.3522, address: '1 Rue de Rivoli, Paris' },
      version: 1,
      status_log: [{ status: 'REQUESTED', by: c.id }],
    })
    expect(job.warnings).toBeUndefined()
    expect(new Date(job.expires_at).getTime() - clock.now().getTime()).toBe(72 * HOUR)
    expect(res.headers.etag).toBe('"1"')

    const [note] = await messagesAbout(w, job.id)
    expect(note).toMatchObject({ from: c.id, to: w.id, kind: 'system' })
    expect(note!.text).toContain('Carla Client offers you a job: "Fix the kitchen tap"')
    expect(note!.text).toContain('€25.00')
    expect(note!.text).toContain(`When: ${scheduled.slice(0, 16).replace('T', ' ')} UTC`)
    expect(note!.text).toContain('1 Rue de Rivoli, Paris')
    // Pushed after the commit, to both users, in every process.
    await vi.waitFor(() => expect(events.some((e) => e.type === 'job.updated' && (e.data as { id: string }).id === job.id && e.to.includes(c.id) && e.to.includes(w.id))).toBe(true))
  })

  it('warns the client when the worker has no picture (note 4), and asks the worker to add one', async () => {
    const c = await client()
    const w = await worker({ picture: false })
    const job = await offer(c, w)
    expect(job.warnings).toEqual([{ code: 'worker_has_no_picture', detail: expect.stringContaining('no profile picture') }])
    const notes = await messagesAbout(w, job.id)
    expect(notes).toHaveLength(2)
    expect(notes[1]).toMatchObject({ from: null, kind: 'system', text: expect.stringContaining('Add one') })
    // The warning belongs to the answer, not to the job.
    expect((await getJob(c, job.id)).warnings).toBeUndefined()
  })

  it('checks the ranges of every field: 400 problem+json, never 500', async () => {
    const c = await client()
    const w = await worker()
    const now = clock.now().getTime()
    const bad: Record<string, unknown>[] = [
      { title: '' },
      { title: '   ' },
      { title: 'x'.repeat(201) },
      { title: 42 },
      { description: 'x'.repeat(5001) },
      { price: { amount: 0, currency: 'EUR' } },
      { price: { amount: -5, currency: 'EUR' } },
      { price: { amount: 12.5, currency: 'EUR' } },
      { price: { amount: 'Infinity', currency: 'EUR' } },
      { price: { amount: 2_147_483_648, currency: 'EUR' } },
      { price: { amount: 100, currency: 'eur' } },
      { price: { amount: 100, currency: 'ABC' } },
      { price: { amount: 100 } },
      { price: 100 },
      { scheduled_at: new Date(now - 60_000).toISOString() },
      { scheduled_at: 'tomorrow' },
      { location: { lat: 91, lon: 0 } },
      { location: { lat: 0, lon: -181 } },
      { location: { lat: 0 } },
      { location: { lat: 'Infinity', lon: 0 } },
      { expires_in: 3599 },
      { expires_in: 30 * 24 * 3600 + 1 },
      { expires_in: 7200.5 },
      { expires_in: '7200' },
      { status: 'ACCEPTED' },
      { worker_id: 'not-a-uuid' },
    ]
    for (const extra of bad) {
      const res = await inject({ method: 'POST', url: '/job', headers: c.auth, payload: offerBody(w, extra) })
      problem(res, 400)
    }
    const { worker_id: _w, ...noWorker } = offerBody(w)
    expect(problem(await inject({ method: 'POST', url: '/job', headers: c.auth, payload: noWorker }), 400).errors).toEqual([{ field: 'body/worker_id', in: 'body', pointer: '/worker_id', message: 'is required' }])
    const { title: _t, ...noTitle } = offerBody(w)
    problem(await inject({ method: 'POST', url: '/job', headers: c.auth, payload: noTitle }), 400)
    // The edges themselves are fine.
    await offer(c, w, { expires_in: 3600, title: 'x'.repeat(200), description: 'y'.repeat(5000), price: { amount: 1, currency: 'USD' } })
    await offer(c, w, { expires_in: 30 * 24 * 3600, location: { lat: -90, lon: 180 } })
  })

  it('needs a worker who exists and holds the WORKER role; no offers to oneself, nor from non-clients', async () => {
    const c = await client()
    expect(problem(await inject({ method: 'POST', url: '/job', headers: c.auth, payload: { worker_id: uuidv7(), title: 'x' } }), 404).code).toBe('worker_not_found')
    const other = await client()
    expect(problem(await inject({ method: 'POST', url: '/job', headers: c.auth, payload: { worker_id: other.id, title: 'x' } }), 400).code).toBe('not_a_worker')
    const both = await newUser(t.app, { roles: ['CLIENT', 'WORKER'] })
    expect(problem(await inject({ method: 'POST', url: '/job', headers: both.auth, payload: { worker_id: both.id, title: 'x' } }), 400).code).toBe('offer_to_self')
    const w = await worker()
    const w2 = await worker()
    expect(problem(await inject({ method: 'POST', url: '/job', headers: w.auth, payload: { worker_id: w2.id, title: 'x' } }), 403).code).toBe('not_a_client')
    // A deleted worker is gone.
    expect((await inject({ method: 'DELETE', url: '/user', headers: w2.auth, payload: { current_password: w2.password } })).statusCode).toBe(204)
    expect(problem(await inject({ method: 'POST', url: '/job', headers: c.auth, payload: { worker_id: w2.id, title: 'x' } }), 404).code).toBe('worker_not_found')
    problem(await inject({ method: 'POST', url: '/job', payload: { worker_id: w.id, title: 'x' } }), 401)
  })
  it('refuses offers and edits between users who blocked one another (403), as it refuses their messages', async () => {
    const [c, w] = [await client(), await worker()]
    const job = await offer(c, w)
    expect((await inject({ method: 'POST', url: '/blocks', headers: w.auth, payload: { user_id: c.id } })).statusCode).toBeLessThan(300)
    expect(problem(await inject({ method: 'POST', url: '/job', headers: c.auth, payload: offerBody(w) }), 403).code).toBe('blocked')
    expect(problem(await inject({ method: 'POST', url: '/job', headers: c.auth, payload: { id: job.id, title: 'Changed' } }), 403).code).toBe('blocked')
    expect((await getJob(c, job.id)).title).toBe('Fix the kitchen tap')
  })

  it('answers 400 for a scheduled_at no database date can hold (a leap second, year 10000)', async () => {
    const [c, w] = [await client(), await worker()]
    for (const scheduled_at of ['2099-01-01T23:59:60Z', '9999-12-31T23:59:59-23:59']) {
      const res = await inject({ method: 'POST', url: '/job', headers: c.auth, payload: offerBody(w, { scheduled_at }) })
      expect(problem(res, 400).errors?.[0]?.field).toBe('body/scheduled_at')
    }
  })
})

describe('POST /job with id: edits', () => {
  it('lets the client change its offer while REQUESTED, tells the worker, and honours If-Match', async () => {
    const c = await client()
    const w = await worker()
    // No money is held for an offer without a price: its price may be named and changed.
    const job = await offer(c, w, { price: undefined })
    const res = await inject({
      method: 'POST',
      url: '/job',
      headers: { ...c.auth, 'if-match': '"1"' },
      payload: { id: job.id, title: 'Fix both taps', price: { amount: 4000, currency: 'EUR' }, expires_in: 7200, location: { lat: 1, lon: 2 } },
    })
    expect(res.statusCode, res.body).toBe(200)
    expect(res.headers.etag).toBe('"2"')
    expect(res.json()).toMatchObject({ id: job.id, title: 'Fix both taps', price: { amount: 4000, currency: 'EUR' }, version: 2, location: { lat: 1, lon: 2 } })
    // The price named, the client pays it before the worker can accept.
    expect(res.json().payment).toMatchObject({ status: 'requires_payment_method', amount: 4000, currency: 'EUR' })
    expect(new Date(res.json().expires_at).getTime()).toBe(clock.now().getTime() + 2 * HOUR)
    const notes = await messagesAbout(w, job.id)
    expect(notes.at(-1)!.text).toContain('Carla Client changed the title, the price, the place and the expiry of the offer "Fix both taps"')

    // A stale version is refused, and changes nothing.
    expect(problem(await inject({ method: 'POST', url: '/job', headers: { ...c.auth, 'if-match': '"1"' }, payload: { id: job.id, title: 'Lost update' } }), 412).code).toBe('version_mismatch')
    // Null takes the price and place off; the worker stays who it is.
    const cleared = await inject({ method: 'POST', url: '/job', headers: { ...c.auth, 'if-match': '*' }, payload: { id: job.id, price: null, location: null, worker_id: w.id } })
    expect(cleared.json()).toMatchObject({ title: 'Fix both taps', price: null, location: null, version: 3 })
    const w2 = await worker()
    expect(problem(await inject({ method: 'POST', url: '/job', headers: c.auth, payload: { id: job.id, worker_id: w2.id } }), 400).code).toBe('worker_fixed')
  })

  it('keeps the price of an offer whose money is held (409 payment_price_locked, nothing changed); its other terms still change', async () => {
    const c = await client()
    const w = await worker()
    const job = await offer(c, w)
    expect(job.payment).toMatchObject({ status: 'held', amount: 2500 })
    for (const price of [{ amount: 4000, currency: 'EUR' }, { amount: 2500, currency: 'USD' }, null]) {
      const p = problem(await inject({ method: 'POST', url: '/job', headers: c.auth, payload: { id: job.id, title: 'Fix both taps', price } }), 409)
      expect(p.code).toBe('payment_price_locked')
      expect(p.detail).toContain('cancel the offer')
    }
    expect(await getJob(c, job.id)).toMatchObject({ title: 'Fix the kitchen tap', price: { amount: 2500, currency: 'EUR' }, version: 1, payment: { status: 'held' } })
    // The same price again is no change; the other terms change as before, the money still held.
    const edited = await inject({ method: 'POST', url: '/job', headers: c.auth, payload: { id: job.id, title: 'Fix both taps', price: { amount: 2500, currency: 'EUR' } } })
    expect(edited.statusCode, edited.body).toBe(200)
    expect(edited.json()).toMatchObject({ title: 'Fix both taps', price: { amount: 2500, currency: 'EUR' }, version: 2, payment: { status: 'held' } })
    expect((await messagesAbout(w, job.id)).at(-1)!.text).toContain('changed the title of the offer "Fix both taps". Price: €25.00.')
  })

  it('tells the worker of every edit, each in a system message saying what changed and the terms now', async () => {
    const c = await client()
    const w = await worker()
    // Priced by an edit, before any money is held for it (a held price does not change).
    const job = await offer(c, w, { price: undefined })
    expect((await inject({ method: 'POST', url: '/job', headers: c.auth, payload: { id: job.id, price: { amount: 2500, currency: 'EUR' } } })).statusCode).toBe(200)
    const when = new Date(clock.now().getTime() + 5 * DAY)
    const edits: [Record<string, unknown>, string][] = [
      [{ title: 'Fix both taps' }, 'changed the title of the offer "Fix both taps". Price: €25.00. When: not set yet.'],
      [{ description: 'And the shower.' }, 'changed the description of the offer "Fix both taps".'],
      [{ price: { amount: 3000, currency: 'EUR' } }, 'changed the price of the offer "Fix both taps". Price: €30.00.'],
      [{ scheduled_at: when.toISOString() }, `changed the date of the offer "Fix both taps". Price: €30.00. When: ${when.toISOString().slice(0, 16).replace('T', ' ')} UTC.`],
      [{ location: { lat: 48.85, lon: 2.35, address: '2 Rue de Rivoli' } }, 'changed the place of the offer "Fix both taps". Price: €30.00. When: '],
      [{ expires_in: 7200 }, 'changed the expiry of the offer "Fix both taps".'],
      [{ price: null, scheduled_at: null }, 'changed the price and the date of the offer "Fix both taps". Price: none yet, quote yours. When: not set yet. Where: 2 Rue de Rivoli.'],
      [{ title: 'Fix both taps' }, 'Carla Client changed the offer "Fix both taps". Price: none yet, quote yours.'],
    ]
    for (const [i, [changes, text]] of edits.entries()) {
      const res = await inject({ method: 'POST', url: '/job', headers: c.auth, payload: { id: job.id, ...changes } })
      expect(res.statusCode, res.body).toBe(200)
      const notes = await messagesAbout(w, job.id)
      // The offer's message and the pricing edit's, then one a change.
      expect(notes).toHaveLength(3 + i)
      expect(notes.at(-1)).toMatchObject({ from: c.id, to: w.id, kind: 'system', job_id: job.id, text: expect.stringContaining(text) })
    }
    expect((await messagesAbout(w, job.id)).at(-3)!.text).toMatch(/changed the expiry of the offer "Fix both taps"\. .* Where: 2 Rue de Rivoli\. It now expires/)
  })

  it('refuses the worker (403), outsiders (404), and any edit after REQUESTED (409)', async () => {
    const { c, w, job } = await jobIn('REQUESTED')
    expect(problem(await inject({ method: 'POST', url: '/job', headers: w.auth, payload: { id: job.id, title: 'Mine now' } }), 403).code).toBe('not_your_offer')
    const outsider = await client()
    expect(problem(await inject({ method: 'POST', url: '/job', headers: outsider.auth, payload: { id: job.id, title: 'Mine now' } }), 404).code).toBe('job_not_found')
    expect(problem(await inject({ method: 'POST', url: '/job', headers: c.auth, payload: { id: uuidv7(), title: 'Nothing' } }), 404).code).toBe('job_not_found')
    await moveOk(w, job.id, 'ACCEPTED')
    expect(problem(await inject({ method: 'POST', url: '/job', headers: c.auth, payload: { id: job.id, title: 'Too late' } }), 409).code).toBe('job_not_editable')
    expect((await getJob(c, job.id)).title).toBe('Paint the fence')
  })
})

describe('accepting binds the worker to the terms read', () => {
  const accept = (w: SignedIn, jobId: string, headers: Record<string, string> = {}) =>
    inject({ method: 'POST', url: `/job/${jobId}/status`, headers: { ...w.auth, ...headers }, payload: { status: 'ACCEPTED' } })
  const edit = (c: SignedIn, jobId: string, changes: Record<string, unknown>) => inject({ method: 'POST', url: '/job', headers: c.auth, payload: { id: jobId, ...changes } })

  it('refuses an accept that names no version (428 version_required, saying to send If-Match), and * names none', async () => {
    const { c, w, job } = await jobIn('REQUESTED')
    for (const headers of [{}, { 'if-match': '*' }] as Record<string, string>[]) {
      const p = problem(await accept(w, job.id, headers), 428)
      expect(p.code).toBe('version_required')
      expect(p.detail).toContain('If-Match')
    }
    expect((await getJob(c, job.id)).status).toBe('REQUESTED')
    expect((await accept(w, job.id, { 'if-match': '"1"' })).statusCode).toBe(200)
  })

  it('refuses an accept of terms the client changed since the worker read them: 412 with the offer as it is now, the worker told of the change', async () => {
    const { c, w, job } = await jobIn('REQUESTED')
    const read = await inject({ url: `/job/${job.id}`, headers: w.auth })
    const scheduled = new Date(clock.now().getTime() + 2 * DAY).toISOString()
    // The held price stays (payment_price_locked); the other terms change under the worker.
    expect((await edit(c, job.id, { description: 'Two coats, white.', scheduled_at: scheduled })).statusCode).toBe(200)

    const stale = await accept(w, job.id, { 'if-match': String(read.headers.etag) })
    const p = problem(stale, 412)
    expect(p.code).toBe('version_mismatch')
    const current = stale.json().job
    expect(current).toMatchObject({ id: job.id, status: 'REQUESTED', version: 2, description: 'Two coats, white.', price: { amount: 2500, currency: 'EUR' }, scheduled_at: scheduled })
    expect(current.status_log).toEqual([{ status: 'REQUESTED', by: c.id, at: expect.any(String) }])
    expect((await getJob(c, job.id)).status).toBe('REQUESTED')
    expect((await messagesAbout(w, job.id)).at(-1)).toMatchObject({ from: c.id, kind: 'system', text: expect.stringContaining('changed the description and the date of the offer "Paint the fence". Price: €25.00.') })

    // Accepting the terms now shown binds to those.
    const accepted = await accept(w, job.id, { 'if-match': `"${current.version}"` })
    expect(accepted.statusCode).toBe(200)
    expect(accepted.json()).toMatchObject({ status: 'ACCEPTED', description: 'Two coats, white.', price: { amount: 2500, currency: 'EUR' }, scheduled_at: scheduled })
  })

  it('never accepts terms other than those the worker read, however an edit of the terms races the accept', async () => {
    const c = await client()
    const w = await worker()
    for (let i = 0; i < 24; i++) {
      const job = await offer(c, w, { title: `Try ${i}` })
      const read = await inject({ url: `/job/${job.id}`, headers: w.auth })
      const [edited, bare, named] = await Promise.all([
        edit(c, job.id, { description: 'Two coats, white.', scheduled_at: new Date(clock.now().getTime() + DAY).toISOString() }),
        // As apps accepted before: naming no version, so bound to whatever the terms were by then.
        accept(w, job.id),
        accept(w, job.id, { 'if-match': String(read.headers.etag) }),
      ])
      // Never taken: 428, or 409 once the accept that named its version has won.
      if (bare.statusCode === 409) {
        expect(problem(bare, 409).code).toBe('move_not_allowed')
        expect(named.statusCode).toBe(200)
      } else {
        expect(problem(bare, 428).code).toBe('version_required')
      }
      const now = await getJob(c, job.id)
      if (named.statusCode === 200) {
        // The accept came first: on the terms read, and the edit is too late.
        expect(now).toMatchObject({ status: 'ACCEPTED', description: 'It drips all night.', price: { amount: 2500, currency: 'EUR' }, scheduled_at: null })
        expect(problem(edited, 409).code).toBe('job_not_editable')
      } else {
        // The edit came first: the accept is refused with the new terms, and the worker hears of them.
        expect(problem(named, 412).code).toBe('version_mismatch')
        expect(named.json().job).toMatchObject({ status: 'REQUESTED', description: 'Two coats, white.', price: { amount: 2500, currency: 'EUR' } })
        expect(now.status).toBe('REQUESTED')
        expect((await messagesAbout(w, job.id)).at(-1)!.text).toContain('changed the description and the date of the offer')
      }
    }
  }, 60_000)
})

describe('POST /job/{id}/quote: the worker\'s price for a job the offer priced not', () => {
  const quote = (user: SignedIn, jobId: string, price: unknown, headers: Record<string, string> = {}) =>
    inject({ method: 'POST', url: `/job/${jobId}/quote`, headers: { ...user.auth, ...headers }, payload: { price } })
  const eur = (amount: number) => ({ amount, currency: 'EUR' })

  it('sets the price once, tells the client, and is what the client approves', async () => {
    const c = await client()
    const w = await worker()
    const job = await offer(c, w, { price: undefined })
    expect(job.price).toBeNull()
    expect((await messagesAbout(w, job.id))[0]!.text).toContain('Price: none yet, quote yours.')

    expect(problem(await quote(c, job.id, eur(1)), 403).code).toBe('not_your_quote')
    expect(problem(await quote(await worker(), job.id, eur(1)), 404).code).toBe('job_not_found')
    expect(problem(await quote(w, job.id, eur(4500), { 'if-match': '"7"' }), 412).code).toBe('version_mismatch')
    const res = await quote(w, job.id, eur(4500), { 'if-match': '"1"' })
    expect(res.statusCode, res.body).toBe(200)
    expect(res.headers.etag).toBe('"2"')
    expect(res.json()).toMatchObject({ status: 'REQUESTED', price: eur(4500), version: 2 })
    expect((await messagesAbout(c, job.id)).at(-1)).toMatchObject({
      from: w.id, kind: 'system', text: 'Wanda Worker quotes €45.00 for "Fix the kitchen tap": the price of the job if Wanda Worker accepts it. Change or cancel your offer if it does not suit you.',
    })
    // Once: it does not change, by the worker or by racing quotes.
    expect(problem(await quote(w, job.id, eur(9900)), 409).code).toBe('price_already_set')

    // The quote is paid for before the worker commits to it: held, like an offer's price.
    expect(res.json().payment).toMatchObject({ status: 'requires_payment_method', amount: 4500, currency: 'EUR' })
    expect(problem(await move(w, job.id, 'ACCEPTED'), 409).code).toBe('payment_not_held')
    const paid = await inject({ method: 'POST', url: `/job/${job.id}/payment`, headers: c.auth, payload: { payment_method: 'pm_card_visa' } })
    expect(paid.statusCode, paid.body).toBe(200)
    expect(paid.json().payment).toMatchObject({ status: 'held', amount: 4500 })
    await moveOk(w, job.id, 'ACCEPTED')
    await moveOk(w, job.id, 'STARTED')
    await moveOk(w, job.id, 'COMPLETED')
    expect((await messagesAbout(c, job.id)).at(-1)!.text).toContain('Approve it to pay €45.00')
    expect(await moveOk(c, job.id, 'PENDING_PAYMENT')).toMatchObject({ status: 'PAID', price: eur(4500) })
    expect(problem(await quote(w, job.id, eur(1)), 409).code).toBe('job_not_quotable')
  })

  it('is taken while ACCEPTED, STARTED or COMPLETED too, once among racing quotes; not on a job with a price or one ended', async () => {
    for (const status of ['ACCEPTED', 'STARTED', 'COMPLETED'] as const) {
      const { c, w, job } = await jobIn(status, { price: false })
      const racing = await Promise.all([1, 2, 3, 4].map((n) => quote(w, job.id, eur(1000 * n))))
      const won = racing.filter((r) => r.statusCode === 200)
      expect(won).toHaveLength(1)
      for (const r of racing.filter((r) => r.statusCode !== 200)) expect(problem(r, 409).code).toBe('price_already_set')
      expect(await getJob(c, job.id)).toMatchObject({ status, price: won[0]!.json().price })
      expect((await messagesAbout(c, job.id)).filter((m) => m.text.startsWith('Wanda Worker quotes'))).toHaveLength(1)
    }
    const priced = await jobIn('ACCEPTED')
    expect(problem(await quote(priced.w, priced.job.id, eur(1)), 409).code).toBe('price_already_set')
    for (const status of ['DECLINED', 'CANCELED', 'EXPIRED'] as const) {
      const ended = await jobIn(status, { price: false })
      expect(problem(await quote(ended.w, ended.job.id, eur(1)), 409).code).toBe('job_not_quotable')
    }
  })

  it('answers 400 for a bad price, and 401 without a token', async () => {
    const { w, job } = await jobIn('ACCEPTED', { price: false })
    for (const price of [undefined, eur(0), eur(-1), eur(1.5), { amount: 100 }, { amount: 100, currency: 'eur' }, { amount: 100, currency: 'EUR', extra: 1 }]) {
      problem(await quote(w, job.id, price), 400)
    }
    expect(problem(await quote(w, job.id, { amount: 100, currency: 'XYZ' }), 400).code).toBe('unknown_currency')
    problem(await inject({ method: 'POST', url: `/job/${job.id}/quote`, payload: { price: eur(100) } }), 401)
    problem(await quote(w, 'not-a-uuid', eur(100)), 400)
    expect((await getJob(w, job.id)).price).toBeNull()
  })
})

describe('GET /job/{id} and GET /jobs', () => {
  it('shows a job to its client and worker only; 404 to anyone else; 400 for a bad id', async () => {
    const { c, w, job } = await jobIn('REQUESTED')
    const res = await inject({ url: `/job/${job.id}`, headers: w.auth })
    expect(res.statusCode).toBe(200)
    expect(res.headers.etag).toBe(`"${job.version}"`)
    expect((await getJob(c, job.id)).id).toBe(job.id)
    const outsider = await worker()
    expect(problem(await inject({ url: `/job/${job.id}`, headers: outsider.auth }), 404).code).toBe('job_not_found')
    problem(await inject({ url: `/job/${uuidv7()}`, headers: c.auth }), 404)
    problem(await inject({ url: '/job/not-a-uuid', headers: c.auth }), 400)
    problem(await inject({ url: `/job/${job.id}` }), 401)
    // Nor can an outsider move it, or learn that it exists by trying.
    expect(problem(await move(outsider, job.id, 'ACCEPTED'), 404).code).toBe('job_not_found')
    expect(problem(await move(outsider, uuidv7(), 'ACCEPTED'), 404).code).toBe('job_not_found')
    problem(await inject({ method: 'POST', url: `/job/${job.id}/status`, payload: { status: 'ACCEPTED' } }), 401)
    expect((await getJob(c, job.id)).status).toBe('REQUESTED')
  })

  it('lists the caller\'s jobs newest first in cursor pages, filtered by role and status', async () => {
    const c = await client()
    const w = await worker()
    const both = await newUser(t.app, { roles: ['CLIENT', 'WORKER'] })
    await inject({ method: 'PUT', url: '/user/picture', headers: { ...both.auth, 'content-type': 'image/jpeg' }, payload: picture })
    const made: string[] = []
    for (let i = 0; i < 5; i++) made.push((await offer(c, w, { title: `Job ${i}` })).id)
    const asWorker = (await offer(c, both, { title: 'For both' })).id
    const asClient = (await offer(both, w, { title: 'By both' })).id
    await moveOk(w, made[1]!, 'ACCEPTED')

    const seen: string[] = []
    let cursor: string | null = null
    do {
      const res: LightMyRequestResponse = await inject({ url: `/jobs?limit=2${cursor ? `&cursor=${cursor}` : ''}`, headers: c.auth })
      expect(res.statusCode).toBe(200)
      const page = res.json()
      expect(page.items.length).toBeLessThanOrEqual(2)
      seen.push(...page.items.map((j: { id: string }) => j.id))
      cursor = page.next_cursor
    } while (cursor)
    expect(seen).toEqual([asWorker, ...made.slice().reverse()])

    const list = async (user: SignedIn, query: string) => (await inject({ url: `/jobs?${query}`, headers: user.auth })).json().items.map((j: { id: string }) => j.id)
    expect(await list(c, 'status=ACCEPTED')).toEqual([made[1]])
    expect(await list(both, '')).toEqual([asClient, asWorker])
    expect(await list(both, 'role=CLIENT')).toEqual([asClient])
    expect(await list(both, 'role=WORKER')).toEqual([asWorker])
    expect(await list(both, 'role=WORKER&status=ACCEPTED')).toEqual([])
    expect(await list(await client(), '')).toEqual([])
    const first = (await inject({ url: '/jobs', headers: c.auth })).json().items[0]
    expect(first.status_log).toEqual([{ status: 'REQUESTED', by: c.id, at: expect.any(String) }])

    problem(await inject({ url: '/jobs?cursor=garbage', headers: c.auth }), 400)
    problem(await inject({ url: '/jobs?status=DONE', headers: c.auth }), 400)
    problem(await inject({ url: '/jobs?role=ADMIN', headers: c.auth }), 400)
    problem(await inject({ url: '/jobs?limit=0', headers: c.auth }), 400)
    problem(await inject({ url: '/jobs?limit=101', headers: c.auth }), 400)
    problem(await inject({ url: '/jobs' }), 401)
  })
})

describe('the workflow table', () => {
  const actors = ['client', 'worker'] as const
  const byRole = { client: 'c', worker: 'w' } as const

  it('allows exactly the table\'s moves, actor by actor, from every status; 403 for a move not the caller\'s, 409 for one not allowed now', async () => {
    for (const from of JOB_STATUSES) {
      const shared = await jobIn(from)
      for (const actor of actors) {
        for (const to of JOB_STATUSES) {
          const verdict = judge(from, to, actor)
          const reason = { reason: 'Plans changed' }
          if (!verdict.ok) {
            const res = await move(shared[byRole[actor]], shared.job.id, to, reason)
            const expected = verdict.why === 'not_yours' ? 403 : 409
            expect(problem(res, expected).code, `${actor} ${from} -> ${to}`).toBe(verdict.why === 'not_yours' ? 'not_your_move' : 'move_not_allowed')
            continue
          }
          const fresh = await jobIn(from)
          const res = await move(fresh[byRole[actor]], fresh.job.id, to, reason)
          expect(res.statusCode, `${actor} ${from} -> ${to}: ${res.body}`).toBe(200)
          const job = res.json()
          expect(job.status).toBe(to === 'PENDING_PAYMENT' ? 'PAID' : to)
          expect(job.status_log.at(to === 'PENDING_PAYMENT' ? -2 : -1)).toMatchObject({ status: to, by: fresh[byRole[actor]].id, reason: 'Plans changed' })
          expect(job.version).toBeGreaterThan(fresh.job.version)
        }
      }
      // Forbidden moves changed nothing.
      const after = await getJob(shared.c, shared.job.id)
      expect(after.status).toBe(from)
      expect(after.version).toBe(shared.job.version)
    }
  }, 180_000)

  it('answers 400 for an unknown status and for bad bodies', async () => {
    const { w, job } = await jobIn('REQUESTED')
    problem(await move(w, job.id, 'DONE'), 400)
    problem(await move(w, job.id, 'accepted'), 400)
    problem(await inject({ method: 'POST', url: `/job/${job.id}/status`, headers: w.auth, payload: {} }), 400)
    problem(await move(w, job.id, 'DECLINED', { reason: 'x'.repeat(1001) }), 400)
    problem(await move(w, job.id, 'DECLINED', { reason: '  ' }), 400)
    problem(await move(w, job.id, 'DECLINED', { extra: true }), 400)
    expect(problem(await move(w, job.id, 'ACCEPTED', { price: { amount: 5, currency: 'EUR' } }), 400).code).toBe('price_not_expected')
    problem(await move(w, uuidv7().toUpperCase().replace(/-/g, ''), 'ACCEPTED'), 400)
  })

  it('needs a reason to cancel an ACCEPTED job, from either side', async () => {
    for (const side of ['c', 'w'] as const) {
      const j = await jobIn('ACCEPTED')
      expect(problem(await move(j[side], j.job.id, 'CANCELED'), 400).code).toBe('reason_required')
      const job = await moveOk(j[side], j.job.id, 'CANCELED', { reason: 'Ill' })
      expect(job.status_log.at(-1)).toMatchObject({ status: 'CANCELED', by: j[side].id, reason: 'Ill' })
    }
  })

  it('walks random move sequences and always answers as the table says (property)', async () => {
    const mover = fc.constantFrom('c', 'w')
    const target = fc.constantFrom(...JOB_STATUSES)
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(mover, target), { minLength: 1, maxLength: 7 }), async (steps) => {
        const { c, w, job } = await jobIn('REQUESTED')
        let status: JobStatus = 'REQUESTED'
        for (const [who, to] of steps) {
          const res = await move(who === 'c' ? c : w, job.id, to, { reason: 'because' })
          const verdict = judge(status, to, who === 'c' ? 'client' : 'worker')
          if (verdict.ok) {
            expect(res.statusCode, res.body).toBe(200)
            status = to === 'PENDING_PAYMENT' ? 'PAID' : to
          } else {
            expect(res.statusCode, res.body).toBe(verdict.why === 'not_yours' ? 403 : 409)
          }
          if (res.statusCode === 200) expect(res.json().status).toBe(status)
        }
        expect((await getJob(c, job.id)).status).toBe(status)
      }),
      { numRuns: 12 },
    )
  }, 180_000)

  it('is the table of DESIGN.md', () => {
    expect(WORKFLOW.map((m) => `${m.from}>${m.to}:${m.by.join('|')}${m.reasonRequired ? '!' : ''}`)).toEqual([
      'REQUESTED>ACCEPTED:worker',
      'REQUESTED>DECLINED:worker',
      'REQUESTED>CANCELED:client',
      'REQUESTED>EXPIRED:time',
      'ACCEPTED>STARTED:worker',
      'ACCEPTED>CANCELED:client|worker!',
      'STARTED>COMPLETED:worker',
      'COMPLETED>PENDING_PAYMENT:client|time',
      'PENDING_PAYMENT>PAID:payments',
    ])
  })
})

describe('note 4: a picture before accepting', () => {
  it('refuses to let a worker without a picture accept (409 saying so), and accepts once there is one', async () => {
    const c = await client()
    const w = await worker({ picture: false })
    const job = await offer(c, w)
    const p = problem(await move(w, job.id, 'ACCEPTED'), 409)
    expect(p.code).toBe('worker_has_no_picture')
    expect(p.detail).toMatch(/profile picture/)
    expect((await getJob(c, job.id)).status).toBe('REQUESTED')
    // Declining needs no picture.
    await inject({ method: 'PUT', url: '/user/picture', headers: { ...w.auth, 'content-type': 'image/jpeg' }, payload: picture })
    expect((await moveOk(w, job.id, 'ACCEPTED')).status).toBe('ACCEPTED')
  })
})

describe('note 3: the automated messages of each move', () => {
  it('tells the client of an acceptance with the worker\'s name and the next steps, and the other party of every later move', async () => {
    const c = await client()
    const w = await worker({ first_name: 'Ana' })
    const job = await offer(c, w)
    await moveOk(w, job.id, 'ACCEPTED')
    let toClient = await messagesAbout(c, job.id)
    expect(toClient).toHaveLength(1)
    expect(toClient[0]).toMatchObject({ from: w.id, to: c.id, kind: 'system' })
    expect(toClient[0]!.text).toContain('Ana Worker accepted "Fix the kitchen tap"')
    expect(toClient[0]!.text).toContain('Next steps')

    await moveOk(w, job.id, 'STARTED')
    await moveOk(w, job.id, 'COMPLETED')
    toClient = await messagesAbout(c, job.id)
    expect(toClient.map((m) => m.text)).toEqual([
      expect.stringContaining('accepted'),
      expect.stringContaining('Ana Worker started work on "Fix the kitchen tap"'),
      expect.stringMatching(/marked "Fix the kitchen tap" completed\. Approve it to pay €25\.00/),
    ])
    const paid = await moveOk(c, job.id, 'PENDING_PAYMENT')
    expect(paid.status).toBe('PAID')
    expect(paid.status_log.map((e: { status: string; by: string | null }) => [e.status, e.by])).toEqual([
      ['REQUESTED', c.id],
      ['ACCEPTED', w.id],
      ['STARTED', w.id],
      ['COMPLETED', w.id],
      ['PENDING_PAYMENT', c.id],
      ['PAID', null],
    ])
    const toWorker = await messagesAbout(w, job.id)
    expect(toWorker.map((m) => [m.from, m.text])).toEqual([
      [c.id, expect.stringContaining('offers you a job')],
      [c.id, expect.stringContaining('Carla Client approved "Fix the kitchen tap"; the payment of €25.00 has started')],
      // The worker is paid the price less the platform's fee (10%), and told both.
      [null, 'You were paid €22.50 for "Fix the kitchen tap" (€25.00 less the platform\'s fee of €2.50).'],
    ])
    expect((await messagesAbout(c, job.id)).at(-1)).toMatchObject({ from: null, text: 'Receipt: you paid €25.00 for "Fix the kitchen tap", of which €2.50 is the platform\'s fee and €22.50 goes to the worker. Thank you!' })
  })

  it('tells the client of a decline with its reason', async () => {
    const { c, w, job } = await jobIn('REQUESTED')
    await moveOk(w, job.id, 'DECLINED', { reason: 'Away that week' })
    const [note] = await messagesAbout(c, job.id)
    expect(note).toMatchObject({ from: w.id, kind: 'system', text: expect.stringContaining('Wanda Worker declined "Paint the fence": "Away that week"') })
  })

  it('suggests, with a decline, up to three other workers live near the job\'s location, nearest first', async () => {
    const paris = { lat: 48.8566, lon: 2.3522 }
    const at = async (user: SignedIn, northM: number) => {
      const res = await inject({ method: 'POST', url: '/location', headers: user.auth, payload: { lat: paris.lat + northM / 111_195, lon: paris.lon, ttl: 600 } })
      expect(res.statusCode, res.body).toBe(200)
    }
    const c = await client()
    const w = await worker()
    const [near1, near2, near3, near4] = [await worker({ first_name: 'Near1' }), await worker({ first_name: 'Near2' }), await worker({ first_name: 'Near3' }), await worker({ first_name: 'Near4' })]
    const notAWorker = await client()
    await at(w, 2000)
    await at(c, 100)
    await at(notAWorker, 200)
    await at(near1, 400)
    await at(near2, 1500)
    await at(near3, 4000)
    await at(near4, 10_000)

    const job = await offer(c, w, { location: { ...paris, address: 'Hôtel de Ville' } })
    // The offer says how far the worker is (each is shown 100 to 200 m from where it is).
    const [offerNote] = await messagesAbout(w, job.id)
    expect(offerNote!.text).toMatch(/Where: Hôtel de Ville, about (1\.8|1\.9|2\.0|2\.1|2\.2) km from you\./)

    await moveOk(w, job.id, 'DECLINED', { reason: 'Too far' })
    const [note] = await messagesAbout(c, job.id)
    expect(note!.text).toContain('Wanda Worker declined "Fix the kitchen tap": "Too far"')
    const suggested = [...note!.text.matchAll(/(Near\d) Worker \((\d+(?:\.\d)?) (m|km) away, user ([0-9a-f-]{36})\)/g)].map((m) => [m[1], m[4]])
    expect(suggested).toEqual([
      ['Near1', near1.id],
      ['Near2', near2.id],
      ['Near3', near3.id],
    ])
    expect(note!.text).not.toContain(notAWorker.id)
    expect(note!.text).not.toContain(w.id)

    // Far from everyone: the client hears that nobody is near.
    const lonely = await offer(c, w, { location: { lat: -45, lon: 170 } })
    await moveOk(w, lonely.id, 'DECLINED')
    expect((await messagesAbout(c, lonely.id))[0]!.text).toContain('No other workers are available near the job\'s location right now')
  })

  it('tells the worker of a cancel, and the client of a worker\'s cancel', async () => {
    const a = await jobIn('REQUESTED')
    await moveOk(a.c, a.job.id, 'CANCELED')
    expect((await messagesAbout(a.w, a.job.id)).at(-1)).toMatchObject({ from: a.c.id, text: 'Carla Client canceled "Paint the fence".' })
    const b = await jobIn('ACCEPTED')
    await moveOk(b.w, b.job.id, 'CANCELED', { reason: 'Broke my arm' })
    expect((await messagesAbout(b.c, b.job.id)).at(-1)).toMatchObject({ from: b.w.id, text: 'Wanda Worker canceled "Paint the fence": "Broke my arm"' })
  })
})

describe('deleted accounts', () => {
  it('cancel the jobs that have not started, telling the other party; jobs under way stay', async () => {
    const offered = await jobIn('REQUESTED')
    const accepted = await jobIn('ACCEPTED')
    const started = await jobIn('STARTED')
    for (const j of [offered, accepted, started]) await inject({ method: 'DELETE', url: '/user', headers: j.w.auth, payload: { current_password: j.w.password } })

    for (const j of [offered, accepted]) {
      const job = await getJob(j.c, j.job.id)
      expect(job.status).toBe('CANCELED')
      expect(job.status_log.at(-1)).toMatchObject({ status: 'CANCELED', by: j.w.id, reason: 'The account was deleted' })
      expect((await messagesAbout(j.c, j.job.id)).at(-1)?.text).toContain('canceled')
    }
    expect((await getJob(started.c, started.job.id)).status).toBe('STARTED')

    // And the other way round: a client's deletion cancels its open offer to the worker.
    const other = await jobIn('REQUESTED')
    await inject({ method: 'DELETE', url: '/user', headers: other.c.auth, payload: { current_password: other.c.password } })
    expect((await getJob(other.w, other.job.id)).status).toBe('CANCELED')
  })
})

describe('expiry, reminders and auto-approval, on a clock the tests move', () => {
  it('reminds the worker before an offer expires, then expires it in the sweep and tells the client', async () => {
    const c = await client()
    const w = await worker()
    const job = await offer(c, w, { expires_in: 3600 })
    clock.advance(29 * 60_000)
    await t.app.jobs.runDueWork()
    expect(await messagesAbout(w, job.id)).toHaveLength(1)
    clock.advance(2 * 60_000)
    await t.app.jobs.runDueWork()
    const reminded = await messagesAbout(w, job.id)
    expect(reminded).toHaveLength(2)
    expect(reminded[1]).toMatchObject({ from: null, text: expect.stringContaining('Reminder: the offer "Fix the kitchen tap" from Carla Client expires') })
    expect((await getJob(c, job.id)).status).toBe('REQUESTED')
    // Reminded once only.
    await t.app.jobs.runDueWork()
    expect(await messagesAbout(w, job.id)).toHaveLength(2)

    clock.advance(30 * 60_000)
    // Two sweeps at once (two processes): the job is expired once.
    await Promise.all([t.app.jobs.runDueWork(), t.app.jobs.runDueWork()])
    const expired = await getJob(c, job.id)
    expect(expired.status).toBe('EXPIRED')
    expect(expired.status_log.filter((e: { status: string }) => e.status === 'EXPIRED')).toEqual([{ status: 'EXPIRED', by: null, at: clock.now().toISOString() }])
    const toClient = await messagesAbout(c, job.id)
    expect(toClient).toEqual([expect.objectContaining({ from: null, text: expect.stringContaining('Your offer "Fix the kitchen tap" to Wanda Worker expired') })])
    expect(problem(await move(w, job.id, 'ACCEPTED'), 409).code).toBe('move_not_allowed')
  })

  it('expires an offer at read time, before any sweep: nobody sees a stale REQUESTED', async () => {
    const c = await client()
    const w = await worker()
    const a = await offer(c, w, { expires_in: 3600 })
    const b = await offer(c, w, { expires_in: 3600 })
    const d = await offer(c, w, { expires_in: 3600 })
    const keep = await offer(c, w, { expires_in: 7200 })
    clock.advance(HOUR)
    expect((await getJob(w, a.id)).status).toBe('EXPIRED')
    const listed = (await inject({ url: '/jobs?status=REQUESTED', headers: c.auth })).json().items.map((j: { id: string }) => j.id)
    expect(listed).toEqual([keep.id])
    expect((await getJob(c, b.id)).status_log.at(-1)).toMatchObject({ status: 'EXPIRED', by: null })
    // Accepting a stale offer expires it and answers 409.
    clock.advance(HOUR)
    expect(problem(await move(w, keep.id, 'ACCEPTED', {}, { 'if-match': '"1"' }), 409).code).toBe('job_expired')
    expect((await getJob(c, keep.id)).status).toBe('EXPIRED')
    expect((await messagesAbout(c, d.id)).filter((m) => m.text.includes('expired'))).toHaveLength(1)
  })

  it('sweeps on a timer while the app runs, and stops when told', async () => {
    const c = await client()
    const w = await worker()
    const job = await offer(c, w, { expires_in: 3600 })
    clock.advance(HOUR)
    await t.app.jobs.start(20)
    try {
      // The timer finds it: no read here could have expired it, as reads expire too.
      await vi.waitFor(async () => expect(await messagesAbout(c, job.id)).toHaveLength(1), { timeout: 10_000, interval: 50 })
    } finally {
      await t.app.jobs.stop()
    }
    expect((await getJob(c, job.id)).status_log.at(-1)).toMatchObject({ status: 'EXPIRED', by: null })
  })

  it('approves a COMPLETED job by itself after 7 days and settles it', async () => {
    const { c, w, job } = await jobIn('COMPLETED')
    clock.advance(7 * DAY - 60_000)
    await t.app.jobs.runDueWork()
    expect((await getJob(c, job.id)).status).toBe('COMPLETED')
    clock.advance(2 * 60_000)
    await t.app.jobs.runDueWork()
    const done = await getJob(c, job.id)
    expect(done.status).toBe('PAID')
    expect(done.status_log.slice(-2)).toEqual([
      { status: 'PENDING_PAYMENT', by: null, at: expect.any(String) },
      { status: 'PAID', by: null, at: expect.any(String) },
    ])
    expect((await messagesAbout(w, job.id)).map((m) => m.text)).toContain('"Paint the fence" was approved by itself, the client not answering within the approval period; the payment of €25.00 has started.')
    expect((await messagesAbout(c, job.id)).some((m) => m.text.includes('was approved by itself'))).toBe(true)
  })

  it('asks the worker for a quote when a job without a price comes up for auto-approval, and approves the quote a full period after it', async () => {
    const { c, w, job } = await jobIn('COMPLETED', { price: false })
    expect((await messagesAbout(c, job.id)).at(-1)!.text).toContain('It has no price yet: approve it once Wanda Worker has quoted one')
    clock.advance(7 * DAY + 1000)
    await t.app.jobs.runDueWork()
    expect((await getJob(c, job.id)).status).toBe('COMPLETED')
    expect((await messagesAbout(w, job.id)).at(-1)).toMatchObject({ from: null, text: '"Paint the fence" is completed, but has no price: quote yours, so that the client can approve it and you get paid.' })
    // Asked once: the next sweeps leave it be.
    clock.advance(DAY)
    await t.app.jobs.runDueWork()
    expect((await messagesAbout(w, job.id)).filter((m) => m.text.includes('has no price'))).toHaveLength(1)

    // The quote starts the approval period again: the client has all of it with the price in view.
    const quoted = await inject({ method: 'POST', url: `/job/${job.id}/quote`, headers: w.auth, payload: { price: { amount: 6000, currency: 'EUR' } } })
    expect(quoted.statusCode, quoted.body).toBe(200)
    expect((await messagesAbout(c, job.id)).at(-1)!.text).toContain('Wanda Worker quotes €60.00 for "Paint the fence". Approve it to pay €60.00')
    // Approved by itself only with the quote's price held: the client pays it.
    const pay = await inject({ method: 'POST', url: `/job/${job.id}/payment`, headers: c.auth, payload: { payment_method: 'pm_card_visa' } })
    expect(pay.statusCode, pay.body).toBe(200)
    expect(pay.json().payment.status).toBe('held')
    clock.advance(7 * DAY - 60_000)
    await t.app.jobs.runDueWork()
    expect((await getJob(c, job.id)).status).toBe('COMPLETED')
    clock.advance(2 * 60_000)
    await t.app.jobs.runDueWork()
    expect(await getJob(c, job.id)).toMatchObject({ status: 'PAID', price: { amount: 6000, currency: 'EUR' } })
  })
})

describe('settling', () => {
  it('never takes the price from the client at approval: 1 cent named with the approval is refused (400), a job without a quote is 409', async () => {
    for (const priced of [false, true]) {
      const { c, job } = await jobIn('COMPLETED', { price: priced })
      for (const price of [{ amount: 1, currency: 'EUR' }, { amount: 2500, currency: 'EUR' }]) {
        const p = problem(await move(c, job.id, 'PENDING_PAYMENT', { price }), 400)
        expect(p.code).toBe('approval_takes_no_price')
        expect(p.errors).toEqual([{ field: 'body/price', in: 'body', pointer: '/price', message: 'is not taken with an approval' }])
      }
      const after = await getJob(c, job.id)
      expect(after).toMatchObject({ status: 'COMPLETED', price: priced ? { amount: 2500, currency: 'EUR' } : null, version: job.version })
      if (!priced) expect(problem(await move(c, job.id, 'PENDING_PAYMENT'), 409).code).toBe('quote_required')
    }
  })

  it('approves the worker\'s quote once the client paid it, and records the payment in the ledger', async () => {
    const { c, w, job } = await jobIn('COMPLETED', { price: false })
    const quoted = await inject({ method: 'POST', url: `/job/${job.id}/quote`, headers: w.auth, payload: { price: { amount: 5000, currency: 'USD' } } })
    expect(quoted.statusCode, quoted.body).toBe(200)
    expect(quoted.json().payment).toMatchObject({ status: 'requires_payment_method', amount: 5000, fee: 500, currency: 'USD' })
    expect(problem(await move(c, job.id, 'PENDING_PAYMENT'), 409).code).toBe('payment_not_held')
    const pay = await inject({ method: 'POST', url: `/job/${job.id}/payment`, headers: c.auth, payload: { payment_method: 'pm_card_visa' } })
    expect(pay.statusCode, pay.body).toBe(200)
    expect(pay.json().payment.status).toBe('held')
    const paid = await moveOk(c, job.id, 'PENDING_PAYMENT')
    expect(paid).toMatchObject({ status: 'PAID', price: { amount: 5000, currency: 'USD' } })
    const db = t.app.platform.database.db
    expect(await balanceOf(db, payableAccount(w.id), 'USD')).toBe(4500)
    expect(await balanceOf(db, cardAccount(c.id), 'USD')).toBe(-5000)
    expect(await balanceOf(db, escrowAccount(job.id), 'USD')).toBe(0)
  })

  it('waits in PENDING_PAYMENT for a provider that confirms later, and settles once however often it confirms', async () => {
    const { c, w, job } = await jobIn('PENDING_PAYMENT')
    expect(job.status).toBe('PENDING_PAYMENT')
    const confirmed = await Promise.all([t.app.jobs.confirmPayment(job.id, 'tr_1'), t.app.jobs.confirmPayment(job.id, 'tr_1')])
    expect(confirmed.filter(Boolean)).toHaveLength(1)
    expect((await getJob(w, job.id)).status).toBe('PAID')
    expect(await balanceOf(t.app.platform.database.db, payableAccount(w.id), 'EUR')).toBe(2250)
    expect(await balanceOf(t.app.platform.database.db, FEES_ACCOUNT, 'EUR')).toBeGreaterThanOrEqual(250)
    expect((await messagesAbout(c, job.id)).filter((m) => m.text.startsWith('Receipt: you paid'))).toHaveLength(1)
  })
})

describe('concurrency', () => {
  it('lets exactly one of many racing moves win; the others get 409', async () => {
    const { c, w, job } = await jobIn('REQUESTED')
    const racers = await Promise.all([
      ...Array.from({ length: 10 }, () => move(w, job.id, 'ACCEPTED')),
      ...Array.from({ length: 10 }, () => move(w, job.id, 'DECLINED')),
    ])
    expect(racers.filter((r) => r.statusCode === 200)).toHaveLength(1)
    // An accept names the version it read: after the winner, that version is stale (412).
    for (const r of racers.filter((r) => r.statusCode !== 200)) expect(['move_not_allowed', 'version_mismatch']).toContain(problem(r, r.statusCode).code)
    const after = await getJob(c, job.id)
    expect(after.status_log).toHaveLength(2)
    expect(after.version).toBe(2)
    const notes = await messagesAbout(c, job.id)
    expect(notes).toHaveLength(1)

    // The same move many times at once: one wins.
    const accepted = await jobIn('ACCEPTED')
    const starts = await Promise.all(Array.from({ length: 20 }, () => move(accepted.w, accepted.job.id, 'STARTED')))
    expect(starts.filter((r) => r.statusCode === 200)).toHaveLength(1)
    for (const r of starts.filter((r) => r.statusCode !== 200)) expect(problem(r, 409).code).toBe('move_not_allowed')
    expect((await getJob(accepted.c, accepted.job.id)).status_log.map((e: { status: string }) => e.status)).toEqual(['REQUESTED', 'ACCEPTED', 'STARTED'])
  })

  it('honours If-Match on moves (412 for a stale version) and answers the new ETag', async () => {
    const { w, job } = await jobIn('REQUESTED')
    expect(problem(await move(w, job.id, 'ACCEPTED', {}, { 'if-match': '"7"' }), 412).code).toBe('version_mismatch')
    problem(await move(w, job.id, 'ACCEPTED', {}, { 'if-match': 'W/"1"' }), 412)
    const res = await move(w, job.id, 'ACCEPTED', {}, { 'if-match': '"1"' })
    expect(res.statusCode).toBe(200)
    expect(res.headers.etag).toBe('"2"')
    // Two moves from the same version: the second is 412, whichever comes second.
    const [a, b] = await Promise.all([move(w, job.id, 'STARTED', {}, { 'if-match': '"2"' }), move(w, job.id, 'STARTED', {}, { 'if-match': '"2"' })])
    expect([a.statusCode, b.statusCode].sort()).toEqual([200, 412])
  })
})

describe('atomicity', () => {
  // A fault after the status update: the database refuses the move's message, as a broken
  // messages table or a full disk would.
  async function failMessagesAbout(jobOrUser: string, column: 'job_id' | 'recipient_id') {
    const db = t.app.platform.database.db
    await sql`CREATE OR REPLACE FUNCTION jobs_test_fault() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'injected fault'; END $$`.execute(db)
    await sql.raw(`CREATE TRIGGER jobs_test_fault BEFORE INSERT ON messages FOR EACH ROW WHEN (NEW.${column} = '${jobOrUser}') EXECUTE FUNCTION jobs_test_fault()`).execute(db)
    return async () => {
      await sql`DROP TRIGGER jobs_test_fault ON messages`.execute(db)
    }
  }

  it('commits a move and its messages together or not at all', async () => {
    const { c, w, job } = await jobIn('REQUESTED')
    const heal = await failMessagesAbout(job.id, 'job_id')
    try {
      const res = await move(w, job.id, 'ACCEPTED')
      expect(problem(res, 500).code).toBe('internal_error')
    } finally {
      await heal()
    }
    const after = await getJob(c, job.id)
    expect(after).toMatchObject({ status: 'REQUESTED', version: 1 })
    expect(after.status_log).toHaveLength(1)
    expect(await messagesAbout(c, job.id)).toHaveLength(0)
    expect((await moveOk(w, job.id, 'ACCEPTED')).status).toBe('ACCEPTED')
    expect(await messagesAbout(c, job.id)).toHaveLength(1)
  })

  it('makes no offer whose message can\'t be stored', async () => {
    const c = await client()
    const w = await worker()
    const heal = await failMessagesAbout(w.id, 'recipient_id')
    try {
      problem(await inject({ method: 'POST', url: '/job', headers: c.auth, payload: offerBody(w) }), 500)
    } finally {
      await heal()
    }
    expect((await inject({ url: '/jobs', headers: c.auth })).json().items).toEqual([])
  })
})
