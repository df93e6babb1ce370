import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, problem, startTestApp, startTwoApps, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { manualClock } from '../../platform/clock.js'
import type { LiveEvent } from '../../platform/live/index.js'
import { waitUntil } from '../../../test/support/wait.js'

const clock = manualClock(new Date())
let t: TestApp
const events: LiveEvent[] = []
let picture: Buffer

beforeAll(async () => {
  t = await startTestApp({ JOB_SWEEP_INTERVAL: '0' }, { clock })
  await t.app.platform.live.events.subscribe((event) => events.push(event))
  picture = await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 1, g: 2, b: 3 } } }).jpeg().toBuffer()
})
afterAll(async () => t.close())

const JOB_PLACE = { lat: 52.52, lon: 13.405 }

async function jobAccepted() {
  const c = await newUser(t.app, { roles: ['CLIENT'] })
  const w = await newUser(t.app, { roles: ['WORKER'] })
  expect((await t.app.inject({ method: 'PUT', url: '/user/picture', headers: { ...w.auth, 'content-type': 'image/jpeg' }, payload: picture })).statusCode).toBe(200)
  const offered = await t.app.inject({ method: 'POST', url: '/job', headers: c.auth, payload: { worker_id: w.id, title: 'Fix the tap', description: 'Drips', location: JOB_PLACE } })
  expect(offered.statusCode, offered.body).toBe(201)
  const job = offered.json()
  const accepted = await move(w, job.id, 'ACCEPTED', { 'if-match': String(offered.headers.etag) })
  expect(accepted.statusCode, accepted.body).toBe(200)
  return { c, w, job }
}

const move = (user: SignedIn, jobId: string, status: string, headers: Record<string, string> = {}, extra: Record<string, unknown> = {}) =>
  t.app.inject({ method: 'POST', url: `/job/${jobId}/status`, headers: { ...user.auth, ...headers }, payload: { status, ...extra } })
const setTracking = (user: SignedIn, jobId: string, on: boolean) => t.app.inject({ method: 'POST', url: `/job/${jobId}/tracking`, headers: user.auth, payload: { on } })
const getTracking = (user: SignedIn, jobId: string) => t.app.inject({ url: `/job/${jobId}/tracking`, headers: user.auth })
const post = (user: SignedIn, lat: number, lon: number) => t.app.inject({ method: 'POST', url: '/location', headers: user.auth, payload: { lat, lon } })

/** Events about exact positions that reached anyone but `clientId`. */
const leakedBeyond = (clientId: string, jobId: string) =>
  events.filter((e) => (e.type === 'job.location' || e.type === 'job.tracking') && (e.data as { job_id: string }).job_id === jobId && e.to.some((to) => to !== clientId))

describe('live job tracking', () => {
  it('shares the worker\'s exact position with the job\'s client alone, with its age and the distance to the job', async () => {
    const { c, w, job } = await jobAccepted()
    const on = await setTracking(w, job.id, true)
    expect(on.statusCode, on.body).toBe(200)
    expect(on.json()).toMatchObject({ job_id: job.id, on: true, position: null })

    expect((await post(w, 52.53, 13.405)).statusCode).toBe(200)
    // The client hears the exact position (the map only ever has a point 100 to 200 m off).
    const heardOf = () => events.filter((e) => e.type === 'job.location' && (e.data as { job_id: string }).job_id === job.id)
    await waitUntil(() => heardOf().length > 0)
    const heard = heardOf()
    expect(heard).toHaveLength(1)
    expect(heard[0]).toMatchObject({ to: [c.id], data: { lat: 52.53, lon: 13.405 } })

    clock.advance(30_000)
    const seen = await getTracking(c, job.id)
    expect(seen.statusCode).toBe(200)
    expect(seen.json()).toMatchObject({ on: true, position: { lat: 52.53, lon: 13.405 }, age_s: 30 })
    // 0.01 degrees of latitude is about 1.1 km.
    expect(seen.json().distance_m).toBeGreaterThan(1000)
    expect(seen.json().distance_m).toBeLessThan(1200)

    // Search shows the worker at a distance only, never at the exact position.
    const searcher = await newUser(t.app, { roles: ['CLIENT'] })
    const search = await t.app.inject({ url: '/search?lat=52.53&lon=13.405&radius=1000', headers: searcher.auth })
    expect(search.body).not.toContain('52.53,')
    expect(search.body).not.toContain('"lat"')
    expect(leakedBeyond(c.id, job.id)).toEqual([])
  })

  it('is nobody else\'s: another client, another worker and an admin get 404; the client can\'t turn it on', async () => {
    const { c, w, job } = await jobAccepted()
    expect((await setTracking(w, job.id, true)).statusCode).toBe(200)
    await post(w, 52.5, 13.4)
    const stranger = await newUser(t.app, { roles: ['CLIENT'] })
    const otherWorker = await newUser(t.app, { roles: ['WORKER'] })
    const admin = await newUser(t.app)
    expect(await t.app.accounts.setAdmin(admin.email, true)).toBe(true)
    for (const user of [stranger, otherWorker, admin]) {
      expect(problem(await getTracking(user, job.id), 404).code).toBe('job_not_found')
      expect(problem(await setTracking(user, job.id, false), 404).code).toBe('job_not_found')
    }
    expect(problem(await setTracking(c, job.id, true), 403).code).toBe('not_your_tracking')
    // Still on: nobody but the worker could stop it.
    expect((await getTracking(c, job.id)).json().on).toBe(true)
    problem(await t.app.inject({ url: '/job/not-a-uuid/tracking', headers: c.auth }), 400)
  })

  it('starts only while the job is ACCEPTED or STARTED', async () => {
    const c = await newUser(t.app, { roles: ['CLIENT'] })
    const w = await newUser(t.app, { roles: ['WORKER'] })
    const offered = await t.app.inject({ method: 'POST', url: '/job', headers: c.auth, payload: { worker_id: w.id, title: 'Paint', description: 'A wall' } })
    expect(problem(await setTracking(w, offered.json().id, true), 409).code).toBe('job_not_trackable')
  })

  it('ends with the job: completing it deletes the position and tells the client', async () => {
    const { c, w, job } = await jobAccepted()
    expect((await move(w, job.id, 'STARTED')).statusCode).toBe(200)
    await setTracking(w, job.id, true)
    await post(w, 52.51, 13.4)
    expect((await getTracking(c, job.id)).json().on).toBe(true)

    expect((await move(w, job.id, 'COMPLETED')).statusCode).toBe(200)
    await t.app.jobs.stop() // lets pushes in flight finish
    expect((await getTracking(c, job.id)).json()).toMatchObject({ on: false, position: null, age_s: null, distance_m: null })
    const rows = await t.app.platform.database.db.selectFrom('job_tracking').selectAll().where('job_id', '=', job.id).execute()
    expect(rows).toEqual([])
    await waitUntil(() => events.some((e) => e.type === 'job.tracking' && e.to[0] === c.id && !(e.data as { on: boolean }).on))
    expect(events.some((e) => e.type === 'job.tracking' && e.to[0] === c.id && (e.data as { job_id: string; on: boolean }).job_id === job.id && !(e.data as { on: boolean }).on)).toBe(true)
    // Positions posted after it ended go nowhere.
    const before = events.length
    await post(w, 52.52, 13.4)
    expect(events.slice(before).filter((e) => e.type === 'job.location')).toEqual([])
    expect(problem(await setTracking(w, job.id, true), 409).code).toBe('job_not_trackable')
  })

  it('ends when the worker stops it, goes off the map or signs out', async () => {
    const { c, w, job } = await jobAccepted()
    await setTracking(w, job.id, true)
    await post(w, 52.5, 13.4)
    expect((await setTracking(w, job.id, false)).json()).toMatchObject({ on: false, position: null })
    expect((await getTracking(c, job.id)).json().on).toBe(false)

    await setTracking(w, job.id, true)
    expect((await t.app.inject({ method: 'DELETE', url: '/location', headers: w.auth })).statusCode).toBe(204)
    expect((await getTracking(c, job.id)).json().on).toBe(false)

    await setTracking(w, job.id, true)
    expect((await t.app.inject({ method: 'DELETE', url: '/authorize', headers: w.auth })).statusCode).toBe(204)
    expect((await getTracking(c, job.id)).json().on).toBe(false)
  })

  it('cancelling an ACCEPTED job ends the sharing', async () => {
    const { c, w, job } = await jobAccepted()
    await setTracking(w, job.id, true)
    await post(w, 52.5, 13.4)
    expect((await move(c, job.id, 'CANCELED', {}, { reason: 'Plans changed' })).statusCode).toBe(200)
    expect((await getTracking(c, job.id)).json().on).toBe(false)
    expect(await t.app.platform.database.db.selectFrom('job_tracking').selectAll().where('job_id', '=', job.id).execute()).toEqual([])
  })
})

describe('across processes', () => {
  it('a sharing turned on through one process carries the positions posted through another', async () => {
    const two = await startTwoApps()
    try {
      const [a, b] = two.apps
      const heard: LiveEvent[] = []
      await a.platform.live.events.subscribe((event) => void (event.type === 'job.location' && heard.push(event)))
      const c = await newUser(a, { roles: ['CLIENT'] })
      const w = await newUser(a, { roles: ['WORKER'] })
      expect((await a.inject({ method: 'PUT', url: '/user/picture', headers: { ...w.auth, 'content-type': 'image/jpeg' }, payload: picture })).statusCode).toBe(200)
      const offered = await a.inject({ method: 'POST', url: '/job', headers: c.auth, payload: { worker_id: w.id, title: 'Fix the gate', description: 'Squeaks', location: JOB_PLACE } })
      expect(offered.statusCode, offered.body).toBe(201)
      const jobId = offered.json().id as string
      expect((await a.inject({ method: 'POST', url: `/job/${jobId}/status`, headers: { ...w.auth, 'if-match': String(offered.headers.etag) }, payload: { status: 'ACCEPTED' } })).statusCode).toBe(200)
      const postThroughB = () => b.inject({ method: 'POST', url: '/location', headers: w.auth, payload: { lat: 52.53, lon: 13.405 } })
      // B has looked: the worker shares with no job yet.
      expect((await postThroughB()).statusCode).toBe(200)
      expect((await a.inject({ method: 'POST', url: `/job/${jobId}/tracking`, headers: w.auth, payload: { on: true } })).statusCode).toBe(200)
      await waitUntil(async () => {
        expect((await postThroughB()).statusCode).toBe(200)
        return heard.some((e) => (e.data as { job_id: string }).job_id === jobId)
      }, 5_000)
      expect(heard.every((e) => e.to.length === 1 && e.to[0] === c.id)).toBe(true)
    } finally {
      await two.close()
    }
  })
})
