import { computeDestinationPoint } from 'geolib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TEST_REDIS_URL } from '../../../test/support/backends.js'
import { newUser, signIn, startTestApp, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { random } from '../../cli/seed.js'
import { manualClock } from '../../platform/clock.js'
import { EARTH_RADIUS_M, haversineM } from '../../platform/live/geo.js'
import type { GeoPoint } from '../../platform/live/index.js'

// The attacker's side of the map: workers who stay at one spot post again and again, their GPS
// jittering by meters, while observers search from many points around and keep every distance
// they are answered. Whatever they compute, a worker who has not moved must stay ~100 m+ away.

const WORKERS = 20
const POSTS = 100
const GPS_SIGMA_M = 10
const OBSERVERS = 3
const POINTS_EACH = 17 // 51 search points in all
const SEARCHES_EACH = 3 // after each round of posts, from each observer's next 3 points in turn
const CENTRE = { lat: 45.764, lon: 4.8357 }

const M_PER_DEG = (EARTH_RADIUS_M * Math.PI) / 180
const COS = Math.cos((CENTRE.lat * Math.PI) / 180)
// A local plane around the centre, in meters (x east, y north): the attacker's arithmetic.
const toPlane = (p: GeoPoint) => ({ x: (p.lon - CENTRE.lon) * M_PER_DEG * COS, y: (p.lat - CENTRE.lat) * M_PER_DEG })
const fromPlane = (q: { x: number; y: number }): GeoPoint => ({ lat: CENTRE.lat + q.y / M_PER_DEG, lon: CENTRE.lon + q.x / (M_PER_DEG * COS) })
const at = (from: GeoPoint, distanceM: number, bearing: number): GeoPoint => {
  const to = computeDestinationPoint({ latitude: from.lat, longitude: from.lon }, distanceM, bearing, EARTH_RADIUS_M)
  return { lat: to.latitude, lon: to.longitude }
}

interface Seen {
  from: GeoPoint
  distanceM: number
}

/** The point whose distances best fit the answers (least squares, Gauss-Newton on the sphere's distances). */
function trilaterate(seen: readonly Seen[]): GeoPoint {
  const froms = seen.map((s) => toPlane(s.from))
  let p = { x: froms.reduce((a, f) => a + f.x, 0) / froms.length, y: froms.reduce((a, f) => a + f.y, 0) / froms.length }
  for (let step = 0; step < 50; step++) {
    const here = fromPlane(p)
    let [a, b, c, u, v] = [0, 0, 0, 0, 0]
    seen.forEach((s, i) => {
      const dx = p.x - froms[i]!.x
      const dy = p.y - froms[i]!.y
      const norm = Math.hypot(dx, dy) || 1
      const [jx, jy] = [dx / norm, dy / norm]
      const r = haversineM(here.lat, here.lon, s.from.lat, s.from.lon) - s.distanceM
      a += jx * jx
      b += jx * jy
      c += jy * jy
      u += jx * r
      v += jy * r
    })
    const det = a * c - b * b
    const sx = (c * u - b * v) / det
    const sy = (a * v - b * u) / det
    p = { x: p.x - sx, y: p.y - sy }
    if (Math.hypot(sx, sy) < 1e-3) break
  }
  return fromPlane(p)
}

const median = (values: number[]) => {
  const sorted = [...values].sort((x, y) => x - y)
  const mid = sorted.length / 2
  return sorted.length % 2 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const stores = [
  { name: 'postgres live store', env: { REDIS_URL: undefined } },
  ...(TEST_REDIS_URL ? [{ name: 'redis live store', env: {} }] : []),
]

describe.each(stores)('location privacy on the $name', ({ env }) => {
  const clock = manualClock(new Date())
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp(env, { clock })
  })
  afterAll(async () => t?.close())

  it('keeps a worker who stays put 100 m+ away from an attacker who averages and trilaterates 100 posts seen from 51 points', { timeout: 300_000 }, async () => {
    const rnd = random(20240611)
    const gauss = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd())
    const workers: { who: SignedIn; spot: GeoPoint }[] = []
    for (let i = 0; i < WORKERS; i++) {
      workers.push({ who: await newUser(t.app, { roles: ['WORKER'] }), spot: at(CENTRE, 1000 * Math.sqrt(rnd()), rnd() * 360) })
    }
    const observers = await Promise.all(Array.from({ length: OBSERVERS }, () => newUser(t.app, { roles: ['CLIENT'] })))
    // Search points all around, 1.5 to 3 km from the centre; every worker is within 5 km of each.
    const points = observers.map((who, o) =>
      Array.from({ length: POINTS_EACH }, (_, i) => ({ who, from: at(CENTRE, 1500 + 1500 * rnd(), ((i * OBSERVERS + o) * 360) / (OBSERVERS * POINTS_EACH)) })),
    )

    // seen[w][post]: every distance the observers were answered about worker w after that post.
    const seen: Seen[][][] = workers.map(() => [])
    for (let post = 0; post < POSTS; post++) {
      clock.advance((5 + 10 * rnd()) * 60_000)
      await Promise.all(
        workers.map(async ({ who, spot }) => {
          // Now and then a worker's location has ended (it went off the map) before it posts again.
          if (post % 10 === 9) expect((await t.app.inject({ method: 'DELETE', url: '/location', headers: who.auth })).statusCode).toBe(204)
          const fix = fromPlane({ x: toPlane(spot).x + GPS_SIGMA_M * gauss(), y: toPlane(spot).y + GPS_SIGMA_M * gauss() })
          const res = await t.app.inject({ method: 'POST', url: '/location', headers: who.auth, payload: { ...fix, ttl: 600 } })
          expect(res.statusCode, res.body).toBe(200)
        }),
      )
      workers.forEach((_, w) => seen[w]!.push([]))
      // Each observer searches from points spread around (every sixth of its own, in turn).
      const round = points.flatMap((mine) => Array.from({ length: SEARCHES_EACH }, (_, k) => mine[(post + k * 6) % POINTS_EACH]!))
      await Promise.all(
        round.map(async ({ who, from }) => {
          const res = await t.app.inject({ method: 'GET', url: '/search', headers: who.auth, query: { lat: String(from.lat), lon: String(from.lon), radius: '5000', role: 'WORKER', limit: '100' } })
          expect(res.statusCode, res.body).toBe(200)
          const items = (res.json() as { items: { user: { id: string }; distance_m: number }[] }).items
          expect(items).toHaveLength(WORKERS)
          for (const item of items) {
            const w = workers.findIndex((x) => x.who.id === item.user.id)
            seen[w]![post]!.push({ from, distanceM: item.distance_m })
            // Still useful: the distance answered is the worker's, give or take the blur (200 m at
            // most) and the GPS noise of the post that placed it.
            expect(Math.abs(item.distance_m - haversineM(from.lat, from.lon, workers[w]!.spot.lat, workers[w]!.spot.lon))).toBeLessThanOrEqual(250)
          }
        }),
      )
    }

    // The attacker's two estimates of each worker's spot, of which the better counts: the mean of
    // the positions shown post by post (each found from that post's distances), and one least-
    // squares fit of every distance answered.
    const errors = { mean: [] as number[], fit: [] as number[], best: [] as number[] }
    workers.forEach(({ spot }, w) => {
      const shown = seen[w]!.map((answers) => toPlane(trilaterate(answers)))
      const mean = fromPlane({ x: shown.reduce((a, p) => a + p.x, 0) / shown.length, y: shown.reduce((a, p) => a + p.y, 0) / shown.length })
      const fit = trilaterate(seen[w]!.flat())
      const meanError = haversineM(mean.lat, mean.lon, spot.lat, spot.lon)
      const fitError = haversineM(fit.lat, fit.lon, spot.lat, spot.lon)
      errors.mean.push(meanError)
      errors.fit.push(fitError)
      errors.best.push(Math.min(meanError, fitError))
    })
    const figure = (values: number[]) => `${median(values).toFixed(1)} m (min ${Math.min(...values).toFixed(1)}, max ${Math.max(...values).toFixed(1)})`
    console.log(
      `attacker's error over ${WORKERS} workers, ${POSTS} posts each with ${GPS_SIGMA_M} m GPS noise, seen from ${OBSERVERS * POINTS_EACH} points by ${OBSERVERS} accounts:\n` +
        `  mean of shown positions: median ${figure(errors.mean)}\n  least-squares fit of all distances: median ${figure(errors.fit)}\n  better of the two: median ${figure(errors.best)}`,
    )
    expect(median(errors.best)).toBeGreaterThanOrEqual(100)
  })

  it('shows a worker at one point 100 to 200 m off while it stays, elsewhere once it moved for real, and at that point again back home', async () => {
    const worker = await newUser(t.app, { roles: ['WORKER'] })
    const client = await newUser(t.app, { roles: ['CLIENT'] })
    const home = { lat: 48.137, lon: 11.575 }
    const away = at(home, 3000, 90)
    const froms = [0, 72, 144, 216, 288].map((bearing, i) => at(home, 1000 + 200 * i, bearing))
    const postAt = async (who: SignedIn, p: GeoPoint) => expect((await t.app.inject({ method: 'POST', url: '/location', headers: who.auth, payload: p })).statusCode).toBe(200)
    // The distances a client is answered about the worker, from each point.
    const answers = () =>
      Promise.all(
        froms.map(async (from) => {
          const res = await t.app.inject({ method: 'GET', url: '/search', headers: client.auth, query: { lat: String(from.lat), lon: String(from.lon), radius: '10000', role: 'WORKER' } })
          const hit = (res.json() as { items: { user: { id: string }; distance_m: number }[] }).items.find((i) => i.user.id === worker.id)!
          return { from, distanceM: hit.distance_m }
        }),
      )
    const offBy = (seen: Seen[], truth: GeoPoint) => {
      const shown = trilaterate(seen)
      return haversineM(shown.lat, shown.lon, truth.lat, truth.lon)
    }

    await postAt(worker, home)
    const atHome = await answers()
    expect(offBy(atHome, home)).toBeGreaterThanOrEqual(99)
    expect(offBy(atHome, home)).toBeLessThanOrEqual(201)
    // GPS jitter, and a walk down the street: the same answers every time.
    for (const [distance, bearing] of [[5, 0], [12, 100], [30, 200], [20, 300], [50, 45], [80, 180]] as const) {
      await postAt(worker, at(home, distance, bearing))
      expect(await answers()).toEqual(atHome)
    }
    // Its location ended (off the map, or signed out) and it is back: the same point again.
    expect((await t.app.inject({ method: 'DELETE', url: '/location', headers: worker.auth })).statusCode).toBe(204)
    await postAt(worker, home)
    expect(await answers()).toEqual(atHome)
    expect((await t.app.inject({ method: 'DELETE', url: '/authorize', headers: worker.auth })).statusCode).toBe(204)
    const again = { ...worker, auth: { authorization: `Bearer ${await signIn(t.app, worker.email, worker.password)}` } }
    await postAt(again, at(home, 10, 270))
    expect(await answers()).toEqual(atHome)

    // 3 km away: shown there, as far off; then back home, where it was shown before.
    await postAt(again, away)
    const atWork = await answers()
    expect(offBy(atWork, away)).toBeGreaterThanOrEqual(99)
    expect(offBy(atWork, away)).toBeLessThanOrEqual(201)
    await postAt(again, at(home, 15, 30))
    expect(await answers()).toEqual(atHome)

    // Deleting the account forgets where it was shown.
    expect(await t.app.platform.live.locations.anchors(worker.id)).toHaveLength(2)
    expect((await t.app.inject({ method: 'DELETE', url: '/user', headers: again.auth, payload: { current_password: worker.password } })).statusCode).toBe(204)
    expect(await t.app.platform.live.locations.anchors(worker.id)).toEqual([])
  })
})
