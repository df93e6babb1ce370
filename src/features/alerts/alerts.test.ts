import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { newUser, problem, startTestApp, type Inject, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { newAdmin, newWorker } from '../../../test/support/trust.js'
import { manualClock } from '../../platform/clock.js'
import type { LiveEvent } from '../../platform/live/index.js'
import { cellsOfCircle, cellsOfPoint } from './grid.js'

// Open requests (POST /job without worker_id) and who they alert: workers live on the map within
// their service radius, in the category, and workers with a saved alert covering the place; never
// across a block. Then the race to take one: exactly one worker wins.

const HOUR = 3_600_000
const clock = manualClock(new Date())
let t: TestApp
let admin: SignedIn
const events: LiveEvent[] = []
const inject = (options: Inject) => t.app.inject(options)

beforeAll(async () => {
  t = await startTestApp({ JOB_SWEEP_INTERVAL: '0', NOTIFICATION_SWEEP_INTERVAL: '0' }, { clock })
  await t.app.platform.live.events.subscribe((event) => events.push(event))
  admin = await newAdmin(t.app)
}, 240_000)
afterAll(async () => t.close())

/** Meters north of a point, as degrees of latitude. */
const north = (m: number) => m / 111_320

async function category(name: string, parent_id?: string) {
  const res = await inject({ method: 'POST', url: '/admin/categories', headers: admin.auth, payload: { name: `${name} ${Math.random().toString(36).slice(2, 8)}`, ...(parent_id ? { parent_id } : {}) } })
  expect(res.statusCode, res.body).toBe(201)
  return res.json().id as string
}

/** A worker on the map at a place, with a profile (categories, service radius). */
async function liveWorker(name: string, at: { lat: number; lon: number }, profile: Record<string, unknown>) {
  const worker = await newWorker(t.app, name)
  const res = await inject({ method: 'POST', url: '/user/profile', headers: worker.auth, payload: profile })
  expect(res.statusCode, res.body).toBe(200)
  expect((await inject({ method: 'POST', url: '/location', headers: worker.auth, payload: { ...at, ttl: 3600 } })).statusCode).toBe(200)
  return worker
}

/** A worker off the map with a saved alert. */
async function savedWorker(name: string, alert: Record<string, unknown>) {
  const worker = await newWorker(t.app, name)
  const res = await inject({ method: 'POST', url: '/alerts', headers: worker.auth, payload: alert })
  expect(res.statusCode, res.body).toBe(201)
  return worker
}

const post = (client: SignedIn, body: Record<string, unknown>) => inject({ method: 'POST', url: '/job', headers: client.auth, payload: { title: 'Fix a leaking tap', ...body } })
const readJob = (user: SignedIn, id: string) => inject({ url: `/job/${id}`, headers: user.auth })
const listed = async (user: SignedIn, query = '') => ((await inject({ url: `/jobs${query}`, headers: user.auth })).json().items as { id: string }[]).map((j) => j.id)
const accept = (worker: SignedIn, id: string, etag: string) =>
  inject({ method: 'POST', url: `/job/${id}/status`, headers: { ...worker.auth, 'if-match': etag }, payload: { status: 'ACCEPTED' } })
const alertedBy = (jobId: string) => new Set(events.filter((e) => e.type === 'job.alert' && (e.data as { id: string }).id === jobId).flatMap((e) => e.to))

describe('the grid of saved alerts', () => {
  it('files a circle under every cell it touches, the poles and the antimeridian included', () => {
    for (const [lat, lon, r] of [[48.85, 2.35, 5000], [48.85, 2.35, 300], [48.85, 2.35, 1399], [0, 179.99, 20000], [0.001, -179.999, 800], [-33.9, 151.2, 50000], [89.95, 10, 30000], [89.995, 10, 900], [-89.9, -170, 1000], [64.1, -21.9, 50000]] as const) {
      const cells = new Set(cellsOfCircle(lat, lon, r))
      // Points on and inside the circle, in every direction, fall in its cells.
      for (let bearing = 0; bearing < 360; bearing += 15) {
        for (const part of [0, 0.5, 0.99]) {
          const d = (r * part) / 6_371_000
          const b = (bearing * Math.PI) / 180
          const φ1 = (lat * Math.PI) / 180
          const φ2 = Math.asin(Math.sin(φ1) * Math.cos(d) + Math.cos(φ1) * Math.sin(d) * Math.cos(b))
          const λ2 = (lon * Math.PI) / 180 + Math.atan2(Math.sin(b) * Math.sin(d) * Math.cos(φ1), Math.cos(d) - Math.sin(φ1) * Math.sin(φ2))
          const pLon = ((((λ2 * 180) / Math.PI + 540) % 360) + 360) % 360 - 180
          expect(cellsOfPoint((φ2 * 180) / Math.PI, pLon).some((c) => cells.has(c)), `${lat},${lon} r=${r} bearing ${bearing} part ${part}`).toBe(true)
        }
      }
    }
    // Each circle is filed at the size that suits it: a few cells, whatever its radius.
    for (const r of [100, 700, 1400, 3000, 10_000, 50_000]) expect(cellsOfCircle(48.85, 2.35, r).length, `r=${r}`).toBeLessThanOrEqual(12)
    expect(cellsOfPoint(48.85, 2.35)).toHaveLength(4)
  })
})

describe('saved alerts', () => {
  it('are a worker\'s own: made, listed in pages, deleted by their owner only', async () => {
    const plumbing = await category('Plumbing')
    const worker = await newWorker(t.app, 'Sol')
    const other = await newWorker(t.app, 'Oli')
    const made: string[] = []
    for (let i = 0; i < 3; i++) {
      const res = await inject({ method: 'POST', url: '/alerts', headers: worker.auth, payload: { lat: 52.5 + i / 100, lon: 13.4, radius: 2000 + i, category_ids: [plumbing, plumbing] } })
      expect(res.statusCode, res.body).toBe(201)
      expect(res.json()).toMatchObject({ lat: 52.5 + i / 100, lon: 13.4, radius: 2000 + i, category_ids: [plumbing] })
      made.push(res.json().id)
    }
    const first = (await inject({ url: '/alerts?limit=2', headers: worker.auth })).json()
    expect(first.items.map((a: { id: string }) => a.id)).toEqual([made[2], made[1]])
    const second = (await inject({ url: `/alerts?limit=2&cursor=${first.next_cursor}`, headers: worker.auth })).json()
    expect(second).toEqual({ items: [expect.objectContaining({ id: made[0] })], next_cursor: null })
    expect(problem(await inject({ url: '/alerts?cursor=garbage', headers: worker.auth }), 400).code).toBe('invalid_cursor')
    // Another worker sees none of them and deletes none of them.
    expect((await inject({ url: '/alerts', headers: other.auth })).json().items).toEqual([])
    expect(problem(await inject({ method: 'DELETE', url: `/alerts/${made[0]}`, headers: other.auth }), 404).code).toBe('alert_not_found')
    expect((await inject({ method: 'DELETE', url: `/alerts/${made[0]}`, headers: worker.auth })).statusCode).toBe(204)
    expect(problem(await inject({ method: 'DELETE', url: `/alerts/${made[0]}`, headers: worker.auth }), 404).code).toBe('alert_not_found')
    expect((await inject({ url: '/alerts', headers: worker.auth })).json().items).toHaveLength(2)
    expect((await inject({ url: '/alerts' })).statusCode).toBe(401)
  })

  it('have bounds: a radius of 100 m to 50 km, 1 to 20 offered categories, 20 alerts a worker, workers only', async () => {
    const plumbing = await category('Plumbing')
    const worker = await newWorker(t.app, 'Bo')
    const make = (body: Record<string, unknown>, user = worker) => inject({ method: 'POST', url: '/alerts', headers: user.auth, payload: { lat: 40, lon: -3, radius: 1000, category_ids: [plumbing], ...body } })
    expect(problem(await make({ radius: 99 }), 400).code).toBe('invalid_input')
    expect(problem(await make({ radius: 50_001 }), 400).code).toBe('invalid_input')
    expect(problem(await make({ category_ids: [] }), 400).code).toBe('invalid_input')
    expect(problem(await make({ lat: 91 }), 400).code).toBe('invalid_input')
    expect(problem(await make({ category_ids: ['0190f3c4-0000-7000-8000-000000000000'] }), 400).code).toBe('category_not_found')
    const client = await newUser(t.app, { roles: ['CLIENT'] })
    expect(problem(await make({}, client), 403).code).toBe('forbidden')
    // Twenty at most, even when asked for at once.
    const answers = await Promise.all(Array.from({ length: 24 }, (_, i) => make({ radius: 1000 + i })))
    expect(answers.filter((r) => r.statusCode === 201)).toHaveLength(20)
    expect(answers.filter((r) => r.statusCode === 409).map((r) => r.json().code)).toEqual(Array(4).fill('too_many_alerts'))
  })
})

describe('open requests', () => {
  it('alert the workers live within their service radius and those with a saved alert holding the place, in the category, never across a block', async () => {
    const plumbing = await category('Plumbing')
    const leaks = await category('Leaks', plumbing)
    const painting = await category('Painting')
    const here = { lat: 52.52, lon: 13.405 }
    const near = { lat: here.lat + north(1500), lon: here.lon }
    const client = await newUser(t.app, { roles: ['CLIENT'], first_name: 'Carla', last_name: 'Client' })

    const liveIn = await liveWorker('LiveIn', near, { category_ids: [leaks], service_radius_m: 5000 })
    const liveParent = await liveWorker('LiveParent', near, { category_ids: [plumbing], service_radius_m: 5000 })
    const liveNoRadius = await liveWorker('LiveDefault', near, { category_ids: [leaks] }) // the default 10 km
    const liveTooFar = await liveWorker('LiveTooFar', { lat: here.lat + north(8000), lon: here.lon }, { category_ids: [leaks], service_radius_m: 5000 })
    const liveOther = await liveWorker('LiveOther', near, { category_ids: [painting], service_radius_m: 5000 })
    const liveBlocked = await liveWorker('LiveBlocked', near, { category_ids: [leaks], service_radius_m: 5000 })
    const liveBlocking = await liveWorker('LiveBlocking', near, { category_ids: [leaks], service_radius_m: 5000 })
    const savedIn = await savedWorker('SavedIn', { ...near, radius: 3000, category_ids: [leaks] })
    const savedParent = await savedWorker('SavedParent', { ...near, radius: 3000, category_ids: [painting, plumbing] })
    const savedOut = await savedWorker('SavedOut', { lat: here.lat + north(6000), lon: here.lon, radius: 5000, category_ids: [leaks] })
    const savedOther = await savedWorker('SavedOther', { ...near, radius: 3000, category_ids: [painting] })
    const savedBlocked = await savedWorker('SavedBlocked', { ...near, radius: 3000, category_ids: [leaks] })
    // The client blocked two of them, and one blocked the client.
    for (const w of [liveBlocked, savedBlocked]) expect((await inject({ method: 'POST', url: '/blocks', headers: client.auth, payload: { user_id: w.id } })).statusCode).toBe(201)
    expect((await inject({ method: 'POST', url: '/blocks', headers: liveBlocking.auth, payload: { user_id: client.id } })).statusCode).toBe(201)

    // Search takes in a category's subcategories: the request is for plumbing in general.
    const res = await post(client, { category_id: plumbing, location: { ...here, address: 'Alexanderplatz 1' }, expires_in: 7200 })
    expect(res.statusCode, res.body).toBe(201)
    const job = res.json()
    expect(job).toMatchObject({ client_id: client.id, worker_id: null, open_request: true, status: 'REQUESTED', category_id: plumbing })

    const expected = [liveIn, liveParent, liveNoRadius, savedIn, savedParent].map((w) => w.id).sort()
    const left = [liveTooFar, liveOther, liveBlocked, liveBlocking, savedOut, savedOther, savedBlocked]
    // Events come through the live store (over Redis, a moment after the answer).
    await vi.waitFor(() => expect([...alertedBy(job.id)].sort()).toEqual(expected))
    const { rows } = await sql<{ worker_id: string }>`SELECT worker_id FROM job_alerts WHERE job_id = ${job.id}`.execute(t.app.platform.database.db)
    expect(rows.map((r) => r.worker_id).sort()).toEqual(expected)

    // Each alerted worker has a system message from the client, may read the request and lists it.
    for (const w of [liveIn, savedParent]) {
      const [message] = (await inject({ url: '/inbox?limit=1', headers: w.auth })).json().items
      expect(message).toMatchObject({ kind: 'system', job_id: job.id, sender: expect.objectContaining({ id: client.id }) })
      expect(message.text).toContain('New open request near you from Carla Client: "Fix a leaking tap"')
      expect(message.text).toMatch(/about \d+(\.\d)? k?m from you/)
      expect((await readJob(w, job.id)).statusCode).toBe(200)
      expect(await listed(w)).toContain(job.id)
      expect(await listed(w, '?role=WORKER&status=REQUESTED')).toContain(job.id)
    }
    // Those left out can't read it, nor see it listed.
    for (const w of left) {
      expect(problem(await readJob(w, job.id), 404).code).toBe('job_not_found')
      expect(await listed(w)).not.toContain(job.id)
    }
    // The alert is a notification of the job_alert kind.
    await t.app.notifications.runDueWork()
    const notes = await sql<{ user_id: string }>`SELECT user_id FROM notifications WHERE job_id = ${job.id} AND event = 'job_alert'`.execute(t.app.platform.database.db)
    expect(notes.rows.map((r) => r.user_id).sort()).toEqual(expected)
    // A worker who was not alerted can't take it.
    expect(problem(await accept(liveOther, job.id, `"${job.version}"`), 404).code).toBe('job_not_found')
  })

  it('need a title, a category and a place; a request in a category with nobody near alerts nobody and waits', async () => {
    const plumbing = await category('Plumbing')
    const client = await newUser(t.app, { roles: ['CLIENT'] })
    const missing = problem(await post(client, { category_id: plumbing }), 400)
    expect(missing.code).toBe('open_request_incomplete')
    expect(missing.errors?.map((e) => e.field)).toEqual(['body/location'])
    expect(problem(await post(client, { location: { lat: 10, lon: 10 } }), 400).code).toBe('open_request_incomplete')
    expect(problem(await post(client, { category_id: '0190f3c4-0000-7000-8000-000000000000', location: { lat: 10, lon: 10 } }), 400).code).toBe('category_not_found')
    const worker = await newWorker(t.app, 'NotAClient')
    expect(problem(await post(worker, { category_id: plumbing, location: { lat: 10, lon: 10 } }), 403).code).toBe('not_a_client')
    const lonely = await post(client, { category_id: plumbing, location: { lat: -45, lon: 170 } })
    expect(lonely.statusCode, lonely.body).toBe(201)
    expect(alertedBy(lonely.json().id).size).toBe(0)
    expect(await listed(client, '?role=CLIENT')).toContain(lonely.json().id)
  })

  it('is taken by exactly one of many workers accepting at once; the others get 409 job_taken and it leaves their lists', async () => {
    const cleaning = await category('Cleaning')
    const here = { lat: 40.4168, lon: -3.7038 }
    const client = await newUser(t.app, { roles: ['CLIENT'], first_name: 'Rita' })
    const workers = await Promise.all(Array.from({ length: 8 }, (_, i) => savedWorker(`Racer${i}`, { ...here, radius: 2000, category_ids: [cleaning] })))
    const res = await post(client, { title: 'Clean the flat', category_id: cleaning, location: here, price: { amount: 6000, currency: 'EUR' }, payment_method: 'pm_card_visa' })
    expect(res.statusCode, res.body).toBe(201)
    const job = res.json()
    // A priced open request holds the money at posting, as a priced offer does.
    expect(job.payment).toMatchObject({ status: 'held', amount: 6000 })
    await vi.waitFor(() => expect(alertedBy(job.id).size).toBe(8))
    const etag = String((await readJob(workers[0]!, job.id)).headers.etag)

    const answers = await Promise.all(workers.map((w) => accept(w, job.id, etag)))
    const won = answers.filter((a) => a.statusCode === 200)
    expect(won, answers.map((a) => `${a.statusCode} ${a.body}`).join('\n')).toHaveLength(1)
    const winner = workers[answers.indexOf(won[0]!)]!
    const losers = workers.filter((w) => w !== winner)
    for (const a of answers.filter((a) => a !== won[0])) expect(problem(a, 409).code).toBe('job_taken')
    expect(won[0]!.json()).toMatchObject({ status: 'ACCEPTED', worker_id: winner.id, open_request: true, payment: expect.objectContaining({ status: 'held' }) })

    // The job is the winner's and the client's now; the others neither read nor list it, and heard it closed.
    expect((await readJob(winner, job.id)).json().worker_id).toBe(winner.id)
    expect((await readJob(client, job.id)).json().status_log.map((e: { status: string; by: string }) => [e.status, e.by])).toEqual([['REQUESTED', client.id], ['ACCEPTED', winner.id]])
    for (const loser of losers) {
      expect(problem(await readJob(loser, job.id), 404).code).toBe('job_not_found')
      expect(await listed(loser)).not.toContain(job.id)
      expect(problem(await accept(loser, job.id, etag), 409).code).toBe('job_taken')
    }
    const closed = () => events.filter((e) => e.type === 'job.closed' && (e.data as { job_id: string }).job_id === job.id)
    await vi.waitFor(() => expect(closed().flatMap((e) => e.to).sort()).toEqual(losers.map((w) => w.id).sort()))
    const [told] = (await inject({ url: '/inbox?limit=1', headers: client.auth })).json().items
    expect(told).toMatchObject({ kind: 'system', job_id: job.id, sender: expect.objectContaining({ id: winner.id }) })
    expect(told.text).toContain('accepted "Clean the flat"')
    // From here it is an ordinary job between the two.
    expect((await inject({ method: 'POST', url: `/job/${job.id}/status`, headers: winner.auth, payload: { status: 'STARTED' } })).statusCode).toBe(200)
  })

  it('keeps the usual accept rules: If-Match, a picture, payouts for a paid job; a worker may only accept it', async () => {
    const moving = await category('Moving')
    const here = { lat: 41.9, lon: 12.5 }
    const client = await newUser(t.app, { roles: ['CLIENT'] })
    const ready = await savedWorker('Ready', { ...here, radius: 2000, category_ids: [moving] })
    // Without a picture or payouts: made by hand, as newWorker sets both up.
    const bare = await newUser(t.app, { roles: ['WORKER'], first_name: 'Bare' })
    expect((await inject({ method: 'POST', url: '/alerts', headers: bare.auth, payload: { ...here, radius: 2000, category_ids: [moving] } })).statusCode).toBe(201)
    const job = (await post(client, { title: 'Move a sofa', category_id: moving, location: here, price: { amount: 3000, currency: 'EUR' }, payment_method: 'pm_card_visa' })).json()
    const etag = `"${job.version}"`
    expect(problem(await accept(bare, job.id, etag), 409).code).toBe('worker_has_no_picture')
    expect(problem(await inject({ method: 'POST', url: `/job/${job.id}/status`, headers: ready.auth, payload: { status: 'ACCEPTED' } }), 428).code).toBe('version_required')
    expect(problem(await inject({ method: 'POST', url: `/job/${job.id}/status`, headers: ready.auth, payload: { status: 'DECLINED' } }), 403).code).toBe('not_your_move')
    // The client changes the terms: an accept of the version read before is refused.
    expect((await inject({ method: 'POST', url: '/job', headers: client.auth, payload: { id: job.id, description: 'Third floor, no lift' } })).statusCode).toBe(200)
    const staleAnswer = await accept(ready, job.id, etag)
    expect(problem(staleAnswer, 412).code).toBe('version_mismatch')
    const now = `"${(staleAnswer.json() as { job: { version: number } }).job.version}"`
    expect((await accept(ready, job.id, now)).statusCode).toBe(200)
    expect(problem(await accept(bare, job.id, now), 409).code).toBe('job_taken')

    const unpaid = await newUser(t.app, { roles: ['WORKER'], first_name: 'Unpaid' })
    await inject({ method: 'PUT', url: '/user/picture', headers: { ...unpaid.auth, 'content-type': 'image/png' }, payload: Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR42mN4MVEBK2IYWhIAJiBmQYlo2rUAAAAASUVORK5CYII=', 'base64') })
    expect((await inject({ method: 'POST', url: '/alerts', headers: unpaid.auth, payload: { ...here, radius: 2000, category_ids: [moving] } })).statusCode).toBe(201)
    const second = (await post(client, { title: 'Move a bed', category_id: moving, location: here, price: { amount: 3000, currency: 'EUR' }, payment_method: 'pm_card_visa' })).json()
    expect(problem(await accept(unpaid, second.id, `"${second.version}"`), 409).code).toBe('payouts_not_enabled')
  })

  it('can\'t be taken across a block made after the alert, whichever of the two made it (403 blocked)', async () => {
    const repairs = await category('Repairs')
    const here = { lat: 59.33, lon: 18.07 }
    const client = await newUser(t.app, { roles: ['CLIENT'] })
    const saved = (name: string) => savedWorker(name, { ...here, radius: 2000, category_ids: [repairs] })
    const [shunned, shunning, free] = await Promise.all([saved('Shunned'), saved('Shunning'), saved('Free')])
    const job = (await post(client, { title: 'Fix a door', category_id: repairs, location: here })).json()
    await vi.waitFor(() => expect(alertedBy(job.id).size).toBe(3))
    const block = (by: SignedIn, user: SignedIn) => inject({ method: 'POST', url: '/blocks', headers: by.auth, payload: { user_id: user.id } })
    expect((await block(client, shunned)).statusCode).toBe(201)
    expect((await block(shunning, client)).statusCode).toBe(201)
    const etag = `"${job.version}"`
    for (const w of [shunned, shunning]) {
      const refused = problem(await accept(w, job.id, etag), 403)
      expect(refused.code).toBe('blocked')
    }
    // Nothing was written: the request still waits, and the client heard of no accept.
    expect((await readJob(client, job.id)).json()).toMatchObject({ status: 'REQUESTED', worker_id: null, version: job.version })
    expect((await accept(free, job.id, etag)).statusCode).toBe(200)
    // A request posted after the block alerts neither of them.
    const next = (await post(client, { title: 'Fix a window', category_id: repairs, location: here })).json()
    await vi.waitFor(() => expect([...alertedBy(next.id)]).toEqual([free.id]))
  })

  it('leave out a worker blocked after the audience was found, and refuse an accept a block overtook between its read and its write', async () => {
    const locks = await category('Locks')
    const here = { lat: 50.08, lon: 14.42 }
    const client = await newUser(t.app, { roles: ['CLIENT'] })
    const saved = (name: string) => savedWorker(name, { ...here, radius: 2000, category_ids: [locks] })
    const [late, other] = await Promise.all([saved('Late'), saved('Other')])
    const block = (by: SignedIn, user: SignedIn) => inject({ method: 'POST', url: '/blocks', headers: by.auth, payload: { user_id: user.id } })

    // The block commits once the audience was found (with the worker in it), before the request's transaction.
    const audience = t.app.alerts.audience.bind(t.app.alerts)
    const spy = vi.spyOn(t.app.alerts, 'audience').mockImplementationOnce(async (request) => {
      const found = await audience(request)
      expect(found.map((a) => a.workerId)).toContain(late.id)
      expect((await block(client, late)).statusCode).toBe(201)
      return found
    })
    try {
      const job = (await post(client, { title: 'Change a lock', category_id: locks, location: here })).json()
      expect(spy).toHaveBeenCalledTimes(1)
      const { rows } = await sql<{ worker_id: string }>`SELECT worker_id FROM job_alerts WHERE job_id = ${job.id}`.execute(t.app.platform.database.db)
      expect(rows.map((r) => r.worker_id)).toEqual([other.id])
      await vi.waitFor(() => expect([...alertedBy(job.id)]).toEqual([other.id]))
      expect((await inject({ url: '/inbox', headers: late.auth })).json().items.filter((m: { job_id: string | null }) => m.job_id === job.id)).toEqual([])
    } finally {
      spy.mockRestore()
    }

    // An accept reads no block, then one commits before its write: the write finds it, and the accept is refused.
    const priced = (await post(client, { title: 'Fit a lock', category_id: locks, location: here, price: { amount: 4000, currency: 'EUR' }, payment_method: 'pm_card_visa' })).json()
    await vi.waitFor(() => expect(alertedBy(priced.id).has(other.id)).toBe(true))
    const checkCurrency = t.app.payments.checkCurrency.bind(t.app.payments)
    const overtaken = vi.spyOn(t.app.payments, 'checkCurrency').mockImplementationOnce(async (workerId, currency) => {
      expect((await block(other, client)).statusCode).toBe(201)
      return checkCurrency(workerId, currency)
    })
    try {
      expect(problem(await accept(other, priced.id, `"${priced.version}"`), 403).code).toBe('blocked')
      expect(overtaken).toHaveBeenCalledTimes(1)
    } finally {
      overtaken.mockRestore()
    }
    expect((await readJob(client, priced.id)).json()).toMatchObject({ status: 'REQUESTED', worker_id: null })
  })

  it('that nobody takes expires as offers do, its money released; one the client cancels closes for the alerted', async () => {
    const gardening = await category('Gardening')
    const here = { lat: 48.2082, lon: 16.3738 }
    const client = await newUser(t.app, { roles: ['CLIENT'] })
    const worker = await savedWorker('Gardener', { ...here, radius: 2000, category_ids: [gardening] })
    const job = (await post(client, { title: 'Mow the lawn', category_id: gardening, location: here, expires_in: 3600, price: { amount: 2000, currency: 'EUR' }, payment_method: 'pm_card_visa' })).json()
    clock.advance(HOUR + 1000)
    await t.app.jobs.runDueWork()
    const expired = (await readJob(client, job.id)).json()
    expect(expired).toMatchObject({ status: 'EXPIRED', worker_id: null, payment: expect.objectContaining({ status: 'released' }) })
    const [told] = (await inject({ url: '/inbox?limit=3', headers: client.auth })).json().items.filter((m: { job_id: string; text: string }) => m.job_id === job.id && m.text.includes('expired'))
    expect(told.text).toContain('Your open request "Mow the lawn" expired: no worker took it.')
    expect(await listed(worker)).not.toContain(job.id)
    expect(problem(await readJob(worker, job.id), 404).code).toBe('job_not_found')
    await vi.waitFor(() => expect(events.some((e) => e.type === 'job.closed' && (e.data as { job_id: string }).job_id === job.id && e.to.includes(worker.id))).toBe(true))

    const second = (await post(client, { title: 'Trim the hedge', category_id: gardening, location: here })).json()
    expect(await listed(worker)).toContain(second.id)
    expect((await inject({ method: 'POST', url: `/job/${second.id}/status`, headers: client.auth, payload: { status: 'CANCELED' } })).statusCode).toBe(200)
    expect(await listed(worker)).not.toContain(second.id)
    await vi.waitFor(() => expect(events.some((e) => e.type === 'job.closed' && (e.data as { job_id: string; status: string }).job_id === second.id && e.to.includes(worker.id))).toBe(true))
  })
})
