import fc from 'fast-check'
import { computeDestinationPoint, getDistance } from 'geolib'
import { v7 as uuidv7 } from 'uuid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Redis } from 'ioredis'
import type { LiveStore, LocationRole, NearbyHit, NearbyQuery } from '../src/platform/live/index.js'
import { cellOf, createRedisLocationStore, packId, unpackId } from '../src/platform/live/redis/locations.js'
import { deleteRedisKeys, liveBackends, TEST_REDIS_URL, uniqueName } from './support/backends.js'

// One contract for every live-location store, checked against brute force: geolib's haversine
// over the same points. geolib's sphere is 0.084% larger than Redis GEO's, and Redis keeps
// positions to about half a meter, hence the tolerance.
const tolerance = (d: number) => d * 0.0012 + 1
const CELL_LAT = 180 / 1024 // geohash precision 4: 10 bits of latitude, 10 of longitude
const CELL_LON = 360 / 1024

interface Point {
  userId: string
  lat: number
  lon: number
  roles: LocationRole[]
  categories: string[]
  expired: boolean
}

const CATEGORIES = ['0193a0f0-0000-7000-8000-00000000000a', '0193a0f0-0000-7000-8000-00000000000b', 'plumbing, not a uuid']

/** The card a test stores with a user's location: any text, commas and braces included. */
const cardFor = (userId: string) => `{"name":"card, of ${userId}"}`

const normLon = (lon: number) => ((((lon + 180) % 360) + 360) % 360) - 180
const clampLat = (lat: number) => Math.max(-90, Math.min(90, lat))
const byDistanceThenId = (a: NearbyHit, b: NearbyHit) => a.distanceM - b.distanceM || (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0)

// Where a scenario happens: anywhere, near a pole, across the antimeridian, or on cell borders.
const centreArb = fc.oneof(
  fc.record({ lat: fc.double({ min: -70, max: 70, noNaN: true }), lon: fc.double({ min: -180, max: 180, noNaN: true }) }),
  fc.record({ lat: fc.oneof(fc.double({ min: 84, max: 90, noNaN: true }), fc.double({ min: -90, max: -84, noNaN: true })), lon: fc.double({ min: -180, max: 180, noNaN: true }) }),
  fc.record({ lat: fc.double({ min: -60, max: 60, noNaN: true }), lon: fc.oneof(fc.double({ min: 179.7, max: 180, noNaN: true }), fc.double({ min: -180, max: -179.7, noNaN: true })) }),
  fc.record({ lat: fc.integer({ min: 100, max: 900 }).map((i) => -90 + i * CELL_LAT), lon: fc.integer({ min: 0, max: 1023 }).map((j) => -180 + j * CELL_LON) }),
)

const pointSpecArb = fc.record({
  kind: fc.constantFrom('offset', 'offset', 'offset', 'same-as-centre', 'same-as-previous', 'on-lat-border', 'on-lon-border'),
  bearing: fc.double({ min: 0, max: 360, noNaN: true, maxExcluded: true }),
  distance: fc.oneof(fc.double({ min: 0, max: 2000, noNaN: true }), fc.double({ min: 0, max: 60_000, noNaN: true })),
  roles: fc.constantFrom<LocationRole[]>(['WORKER'], ['WORKER'], ['CLIENT'], ['CLIENT', 'WORKER'], ['ADMIN']),
  expired: fc.boolean().map((b) => b && Math.random() < 0.5),
  categories: fc.subarray(CATEGORIES),
})

const queryArb = fc.record({
  radius: fc.oneof(fc.constantFrom(0, 1, 50_000), fc.integer({ min: 0, max: 50_000 }), fc.integer({ min: 0, max: 3000 })),
  limit: fc.oneof(fc.constant(100), fc.integer({ min: 1, max: 10 })),
  role: fc.constantFrom<LocationRole | undefined>(undefined, 'WORKER', 'CLIENT', 'ADMIN'),
  categories: fc.option(fc.subarray(CATEGORIES, { minLength: 1 }), { nil: undefined, freq: 2 }),
  shift: fc.record({ bearing: fc.double({ min: 0, max: 360, noNaN: true, maxExcluded: true }), distance: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 5000, noNaN: true })) }),
})

function buildPoints(centre: { lat: number; lon: number }, specs: (typeof pointSpecArb extends fc.Arbitrary<infer T> ? T : never)[]): Point[] {
  const points: Point[] = []
  for (const spec of specs) {
    let lat: number
    let lon: number
    const moved = computeDestinationPoint({ latitude: centre.lat, longitude: centre.lon }, spec.distance, spec.bearing)
    const prev = points[points.length - 1]
    switch (spec.kind) {
      case 'same-as-centre':
        ;({ lat, lon } = centre)
        break
      case 'same-as-previous':
        lat = prev?.lat ?? centre.lat
        lon = prev?.lon ?? centre.lon
        break
      case 'on-lat-border':
        lat = -90 + Math.round((centre.lat + 90) / CELL_LAT) * CELL_LAT
        lon = moved.longitude
        break
      case 'on-lon-border':
        lat = moved.latitude
        lon = -180 + Math.round((centre.lon + 180) / CELL_LON) * CELL_LON
        break
      default:
        lat = moved.latitude
        lon = moved.longitude
    }
    points.push({ userId: uuidv7(), lat: clampLat(lat), lon: normLon(lon), roles: spec.roles, categories: spec.categories, expired: spec.expired })
  }
  return points
}

describe.each(liveBackends())('$name: locations', (backend) => {
  let live: LiveStore
  let close: () => Promise<void>

  beforeAll(async () => {
    ;({ live, close } = await backend.open())
  })
  afterAll(async () => close())

  const inAMinute = () => new Date(Date.now() + 60_000)
  const put = (p: Point) =>
    live.locations.set(p.userId, { lat: p.lat, lon: p.lon, roles: p.roles, categories: p.categories, expiresAt: p.expired ? new Date(Date.now() - 1000) : inAMinute(), card: cardFor(p.userId), version: 1 })

  /** Every page of a query, following `after` as the API's cursor does. */
  const allPages = async (query: NearbyQuery, pageSize: number) => {
    const hits: NearbyHit[] = []
    for (let page = 0; page < 200; page++) {
      const got = await live.locations.nearby({ ...query, limit: pageSize, after: hits[hits.length - 1] })
      hits.push(...got)
      if (got.length < pageSize) return hits
    }
    throw new Error('too many pages')
  }

  it('finds a user at the very spot with radius 0, moves it, and takes it off the map', async () => {
    const id = uuidv7()
    await live.locations.set(id, { lat: 48.8566, lon: 2.3522, roles: ['WORKER'], expiresAt: inAMinute(), card: cardFor(id), version: 1 })
    const here = await live.locations.nearby({ lat: 48.8566, lon: 2.3522, radiusM: 0, limit: 10 })
    expect(here.map((h) => h.userId)).toEqual([id])
    expect(here[0]!.distanceM).toBeLessThan(0.5)

    // Across the world: another cell, so it leaves the first one.
    await live.locations.set(id, { lat: -33.8688, lon: 151.2093, roles: ['WORKER'], expiresAt: inAMinute(), card: cardFor(id), version: 1 })
    expect(await live.locations.nearby({ lat: 48.8566, lon: 2.3522, radiusM: 50_000, limit: 10 })).toEqual([])
    expect((await live.locations.nearby({ lat: -33.87, lon: 151.21, radiusM: 1000, limit: 10 })).map((h) => h.userId)).toEqual([id])

    await live.locations.remove(id)
    expect(await live.locations.nearby({ lat: -33.87, lon: 151.21, radiusM: 1000, limit: 10 })).toEqual([])
    await live.locations.remove(id) // twice is fine
  })

  it('filters by role inside the store and leaves out the excluded', async () => {
    const [w, c, both] = [uuidv7(), uuidv7(), uuidv7()]
    await live.locations.set(w, { lat: 10, lon: 10, roles: ['WORKER'], expiresAt: inAMinute(), card: cardFor(w), version: 1 })
    await live.locations.set(c, { lat: 10.001, lon: 10, roles: ['CLIENT'], expiresAt: inAMinute(), card: cardFor(c), version: 1 })
    await live.locations.set(both, { lat: 10.002, lon: 10, roles: ['CLIENT', 'WORKER'], expiresAt: inAMinute(), card: cardFor(both), version: 1 })
    const ids = async (q: Partial<NearbyQuery>) => (await live.locations.nearby({ lat: 10, lon: 10, radiusM: 1000, limit: 10, ...q })).map((h) => h.userId)
    expect(await ids({})).toEqual([w, c, both])
    expect(await ids({ role: 'WORKER' })).toEqual([w, both])
    expect(await ids({ role: 'CLIENT' })).toEqual([c, both])
    expect(await ids({ role: 'ADMIN' })).toEqual([])
    expect(await ids({ exclude: new Set([w]) })).toEqual([c, both])
    // A new post replaces the roles too.
    await live.locations.set(both, { lat: 10.002, lon: 10, roles: ['CLIENT'], expiresAt: inAMinute(), card: cardFor(both), version: 1 })
    expect(await ids({ role: 'WORKER' })).toEqual([w])
    await Promise.all([w, c, both].map((id) => live.locations.remove(id)))
  })

  it('filters by category inside the store, in GEO cells and polar caps, and takes new categories in place', async () => {
    const [plumbing, painting, leaks] = CATEGORIES as [string, string, string]
    for (const at of [{ lat: 41.3874, lon: 2.1686 }, { lat: -88.2, lon: 10 }]) {
      const [a, b, c, none] = [uuidv7(), uuidv7(), uuidv7(), uuidv7()]
      const place = (id: string, dLat: number, categories: string[], version = 1) =>
        live.locations.set(id, { lat: at.lat + dLat, lon: at.lon, roles: ['WORKER'], categories, expiresAt: inAMinute(), card: cardFor(id), version })
      await place(a, 0, [plumbing])
      await place(b, 0.001, [painting, leaks])
      await place(c, 0.002, [leaks])
      await place(none, 0.0005, [])
      const ids = async (categories?: string[], role?: LocationRole) =>
        (await live.locations.nearby({ ...at, radiusM: 1000, limit: 10, role, ...(categories ? { categories: new Set(categories) } : {}) })).map((h) => h.userId)
      expect(await ids()).toEqual([a, none, b, c])
      expect(await ids([plumbing])).toEqual([a])
      expect(await ids([leaks])).toEqual([b, c])
      expect(await ids([plumbing, leaks], 'WORKER')).toEqual([a, b, c])
      expect(await ids([plumbing], 'CLIENT')).toEqual([])
      expect(await ids([])).toEqual([])
      expect(await ids(['0193a0f0-0000-7000-8000-0000000000ff'])).toEqual([])
      // Pages of a filtered search follow one another as the unfiltered ones do.
      const first = await live.locations.nearby({ ...at, radiusM: 1000, limit: 1, categories: new Set([plumbing, leaks]) })
      const rest = await live.locations.nearby({ ...at, radiusM: 1000, limit: 10, categories: new Set([plumbing, leaks]), after: first[0] })
      expect([...first, ...rest].map((h) => h.userId)).toEqual([a, b, c])

      // A change takes new categories; an older one does not, nor does an older post.
      await live.locations.update(a, { roles: ['WORKER'], card: cardFor(a), categories: [leaks], version: 2 })
      expect(await ids([plumbing])).toEqual([])
      expect(await ids([leaks])).toEqual([a, b, c])
      await live.locations.update(a, { roles: ['WORKER'], card: cardFor(a), categories: [plumbing], version: 1 })
      await place(a, 0, [plumbing], 1)
      expect(await ids([leaks])).toEqual([a, b, c])
      await Promise.all([a, b, c, none].map((id) => live.locations.remove(id)))
    }
  })

  it('answers each hit with its card, and changes a user\'s card and roles in place', async () => {
    // One user in a GEO cell, one beyond Redis GEO's band (a polar cap).
    for (const at of [{ lat: 33.5731, lon: -7.5898 }, { lat: 88.5, lon: 40 }]) {
      const id = uuidv7()
      const near = (role: LocationRole) => live.locations.nearby({ ...at, radiusM: 100, limit: 5, role })
      await live.locations.set(id, { ...at, roles: ['WORKER'], expiresAt: inAMinute(), card: 'first, card', version: 1 })
      const [before] = await near('WORKER')
      expect(before).toMatchObject({ userId: id, card: 'first, card' })

      await live.locations.update(id, { roles: ['CLIENT', 'ADMIN'], card: 'second, card', version: 2 })
      expect(await near('WORKER')).toEqual([])
      expect(await near('CLIENT')).toEqual([{ ...before, card: 'second, card' }])
      expect(await near('ADMIN')).toEqual([{ ...before, card: 'second, card' }])
      await live.locations.remove(id)
    }
  })

  it('never takes a card and roles older than the stored ones, though an older post still moves the user', async () => {
    for (const at of [{ lat: -22.9068, lon: -43.1729 }, { lat: 87.9, lon: -120 }]) {
      const id = uuidv7()
      const moved = { lat: at.lat + 0.001, lon: at.lon }
      const near = async (where: { lat: number; lon: number }, role: LocationRole) => live.locations.nearby({ ...where, radiusM: 60, limit: 5, role })
      await live.locations.set(id, { ...at, roles: ['WORKER'], expiresAt: inAMinute(), card: 'version 1', version: 1 })
      await live.locations.update(id, { roles: ['CLIENT'], card: 'version 3', version: 3 })
      // A post that read the account before its change lands after it: it moves the user, and
      // the newer card and roles stay.
      await live.locations.set(id, { ...moved, roles: ['WORKER'], expiresAt: inAMinute(), card: 'version 2', version: 2 })
      expect(await near(at, 'CLIENT')).toEqual([])
      expect(await near(moved, 'WORKER')).toEqual([])
      expect(await near(moved, 'CLIENT')).toMatchObject([{ userId: id, card: 'version 3' }])
      // So does a change that lands after a newer one.
      await live.locations.update(id, { roles: ['WORKER'], card: 'version 2', version: 2 })
      expect(await near(moved, 'CLIENT')).toMatchObject([{ userId: id, card: 'version 3' }])
      // A newer post takes its own.
      await live.locations.set(id, { ...moved, roles: ['WORKER'], expiresAt: inAMinute(), card: 'version 4', version: 4 })
      expect(await near(moved, 'WORKER')).toMatchObject([{ userId: id, card: 'version 4' }])
      expect(await near(moved, 'CLIENT')).toEqual([])
      await live.locations.remove(id)
    }
  })

  it('never brings back, on a change, a location that was removed or expired', async () => {
    const at = { lat: -1.2921, lon: 36.8219 }
    const [removed, expired, never] = [uuidv7(), uuidv7(), uuidv7()]
    await live.locations.set(removed, { ...at, roles: ['WORKER'], expiresAt: inAMinute(), card: cardFor(removed), version: 1 })
    await live.locations.set(expired, { ...at, roles: ['WORKER'], expiresAt: new Date(Date.now() + 300), card: cardFor(expired), version: 1 })
    await live.locations.remove(removed)
    await new Promise((resolve) => setTimeout(resolve, 400))
    for (const id of [removed, expired, never]) await live.locations.update(id, { roles: ['WORKER', 'CLIENT'], card: 'changed', version: 2 })
    expect(await live.locations.nearby({ ...at, radiusM: 100, limit: 5 })).toEqual([])
  })

  it('never answers an expired location, before or after the sweep', async () => {
    const [gone, stays] = [uuidv7(), uuidv7()]
    await live.locations.set(gone, { lat: -20, lon: -40, roles: ['WORKER'], expiresAt: new Date(Date.now() + 300), card: cardFor(gone), version: 1 })
    await live.locations.set(stays, { lat: -20.0001, lon: -40, roles: ['WORKER'], expiresAt: inAMinute(), card: cardFor(stays), version: 1 })
    const ids = async () => (await live.locations.nearby({ lat: -20, lon: -40, radiusM: 100, limit: 10 })).map((h) => h.userId)
    expect(await ids()).toEqual([gone, stays])
    await new Promise((resolve) => setTimeout(resolve, 400))
    expect(await ids()).toEqual([stays])
    expect(await live.locations.sweep()).toBeGreaterThanOrEqual(1)
    expect(await ids()).toEqual([stays])
    // Renewing an expired one brings it back.
    await live.locations.set(gone, { lat: -20, lon: -40, roles: ['WORKER'], expiresAt: inAMinute(), card: cardFor(gone), version: 1 })
    expect(await ids()).toEqual([gone, stays])
    await Promise.all([gone, stays].map((id) => live.locations.remove(id)))
  })

  it('answers what brute-force haversine answers: radius 0, same spots, poles, antimeridian, cell borders, expired', async () => {
    await fc.assert(
      fc.asyncProperty(centreArb, fc.array(pointSpecArb, { minLength: 0, maxLength: 40 }), fc.array(queryArb, { minLength: 1, maxLength: 3 }), async (centre, specs, queries) => {
        const points = buildPoints(centre, specs)
        await Promise.all(points.map(put))
        try {
          for (const query of queries) {
            const shifted = computeDestinationPoint({ latitude: centre.lat, longitude: centre.lon }, query.shift.distance, query.shift.bearing)
            const categories = query.categories && new Set(query.categories)
            const q = { lat: clampLat(shifted.latitude), lon: normLon(shifted.longitude), radiusM: query.radius, limit: query.limit, role: query.role, ...(categories ? { categories } : {}) }
            const hits = await live.locations.nearby(q)

            const inCategories = (p: Point) => !categories || p.categories.some((c) => categories.has(c))
            const valid = new Map(points.filter((p) => !p.expired && (!q.role || p.roles.includes(q.role)) && inCategories(p)).map((p) => [p.userId, p]))
            const trueDistance = (p: Point) => getDistance({ latitude: q.lat, longitude: q.lon }, { latitude: p.lat, longitude: p.lon }, 0.01)

            expect(hits.length).toBeLessThanOrEqual(q.limit)
            expect(new Set(hits.map((h) => h.userId)).size).toBe(hits.length)
            expect([...hits].sort(byDistanceThenId)).toEqual(hits)
            for (const hit of hits) {
              const p = valid.get(hit.userId)
              expect(p, 'an expired, filtered or unknown user was answered').toBeDefined()
              expect(hit.card).toBe(cardFor(hit.userId))
              const d = trueDistance(p!)
              expect(Math.abs(hit.distanceM - d)).toBeLessThanOrEqual(tolerance(d))
              expect(d).toBeLessThanOrEqual(q.radiusM + tolerance(q.radiusM))
            }
            // Complete: every valid point surely inside (and nearer than the last hit, if the page is full) is there.
            const answered = new Set(hits.map((h) => h.userId))
            const last = hits[hits.length - 1]
            for (const p of valid.values()) {
              const d = trueDistance(p)
              const surelyInside = d === 0 || d + tolerance(d) <= q.radiusM
              const surelyBeforeLast = hits.length < q.limit || d + 2 * tolerance(d) < (last?.distanceM ?? Infinity)
              if (surelyInside && surelyBeforeLast) expect(answered.has(p.userId), `missing a point ${d} m away`).toBe(true)
            }
            // Pages in (distance, user id) order give exactly the one big answer.
            if (q.limit === 100) {
              const paged = await allPages(q, 3)
              expect(paged).toEqual(hits)
            }
          }
        } finally {
          await Promise.all(points.map((p) => live.locations.remove(p.userId)))
        }
      }),
      { numRuns: 60 },
    )
  })

  it('keeps a user\'s anchors past the end of its location, until their own expiry; forgetting drops both', async () => {
    const [id, other] = [uuidv7(), uuidv7()]
    const at = { lat: 51.5074, lon: -0.1278 }
    const points = [{ lat: 51.50812345678901, lon: -0.12901234567891 }, { lat: 88.5, lon: 179.999999 }]
    const near = async () => (await live.locations.nearby({ ...at, radiusM: 100, limit: 5 })).map((h) => h.userId)
    expect(await live.locations.anchors(id)).toEqual([])
    await live.locations.set(id, { ...at, roles: ['WORKER'], expiresAt: new Date(Date.now() + 300), card: 'c', version: 1, anchors: { points, expiresAt: inAMinute() } })
    expect(await live.locations.anchors(id)).toEqual(points)
    expect(await live.locations.anchors(other)).toEqual([])
    // A post without anchors leaves them as they are.
    await live.locations.set(id, { ...at, roles: ['WORKER'], expiresAt: new Date(Date.now() + 300), card: 'c', version: 1 })
    expect(await live.locations.anchors(id)).toEqual(points)
    // The location expires, is swept, is removed: the anchors stay.
    await new Promise((resolve) => setTimeout(resolve, 400))
    expect(await near()).toEqual([])
    await live.locations.sweep()
    await live.locations.remove(id)
    expect(await live.locations.anchors(id)).toEqual(points)

    // Replaced by the next anchors given; gone once they expire, swept or not.
    await live.locations.set(id, { ...at, roles: ['WORKER'], expiresAt: inAMinute(), card: 'c', version: 1, anchors: { points: points.slice(1), expiresAt: new Date(Date.now() + 300) } })
    expect(await live.locations.anchors(id)).toEqual(points.slice(1))
    await new Promise((resolve) => setTimeout(resolve, 400))
    expect(await live.locations.anchors(id)).toEqual([])
    await live.locations.sweep()
    expect(await live.locations.anchors(id)).toEqual([])
    expect(await near()).toEqual([id])

    // Forgetting a user takes it off the map and drops its anchors; a user it doesn't know is fine.
    await live.locations.set(id, { ...at, roles: ['WORKER'], expiresAt: inAMinute(), card: 'c', version: 1, anchors: { points, expiresAt: inAMinute() } })
    await live.locations.set(other, { ...at, roles: ['WORKER'], expiresAt: inAMinute(), card: 'c', version: 1, anchors: { points, expiresAt: inAMinute() } })
    await live.locations.forget(id)
    expect(await near()).toEqual([other])
    expect(await live.locations.anchors(id)).toEqual([])
    expect(await live.locations.anchors(other)).toEqual(points)
    await live.locations.forget(uuidv7())
    await live.locations.forget(other)
  })

  it('pages through many users at the same few spots without gaps or repeats', async () => {
    const spots = [[45, 7], [45.0005, 7], [45, 7.0007]] as const
    const ids: string[] = []
    await Promise.all(
      Array.from({ length: 60 }, (_, i) => {
        const id = uuidv7()
        ids.push(id)
        const [lat, lon] = spots[i % spots.length]!
        return live.locations.set(id, { lat, lon, roles: ['WORKER'], expiresAt: inAMinute(), card: cardFor(id), version: 1 })
      }),
    )
    const query = { lat: 45, lon: 7, radiusM: 500, limit: 100 }
    const whole = await live.locations.nearby(query)
    expect(whole).toHaveLength(60)
    for (const size of [1, 7, 20]) expect(await allPages(query, size)).toEqual(whole)
    await Promise.all(ids.map((id) => live.locations.remove(id)))
  })
})

// The Redis layout itself: a GEO member per user and role (its packed id and entry), its place in
// a bucket of where users are; nothing else per user, and nothing left behind when it goes.
// Checked on the keys.
describe.runIf(TEST_REDIS_URL)('redis live store: location layout', () => {
  const prefix = `${uniqueName()}:`
  let redis: Redis
  let locations: ReturnType<typeof createRedisLocationStore>

  beforeAll(() => {
    redis = new Redis(TEST_REDIS_URL!)
    locations = createRedisLocationStore(redis, prefix)
  })
  afterAll(async () => {
    locations.stop()
    redis.disconnect()
    await deleteRedisKeys(TEST_REDIS_URL!, prefix)
  })

  // The user ids of a GEO key's members (each: the id's length, the id, the entry).
  const members = async (cell: string, suffix: string) => (await redis.zrangeBuffer(`${prefix}loc:{${cell}}:${suffix}`, 0, -1)).map((m) => unpackId(m.subarray(1, 1 + m[0]!)))
  const whereKey = (id: string) => {
    const packed = packId(id)
    return `${prefix}loc:w:{${packed.readUInt16BE(packed.length - 2)}}`
  }
  const cellKeys = (cell: string) => ['w', 'c', 'a', 'm'].map((suffix) => `${prefix}loc:{${cell}}:${suffix}`)
  const leftInCell = async (cell: string) => Promise.all(cellKeys(cell).map((key) => redis.exists(key)))

  it('packs UUIDs into 16 bytes and keeps any other id as it is', () => {
    const id = uuidv7()
    expect(packId(id)).toHaveLength(16)
    for (const other of [id, 'bob', 'sixteen-chars-id', 'ünïcode 17 bytes', id.toUpperCase()]) expect(unpackId(packId(other))).toBe(other)
  })

  it('keeps one member a user and role and one entry, renews them in place, and sweeps them when they expire', async () => {
    const id = uuidv7()
    const cell = cellOf(45.05, 5.05)
    const first = Date.now() + 60_000
    await locations.set(id, { lat: 45.05, lon: 5.05, roles: ['WORKER', 'CLIENT'], expiresAt: new Date(first), card: cardFor(id), version: 1 })
    await locations.set(id, { lat: 45.0501, lon: 5.05, roles: ['WORKER'], expiresAt: new Date(first + 1000), card: cardFor(id), version: 1 })
    expect(await members(cell, 'w')).toEqual([id])
    expect(await members(cell, 'c')).toEqual([])
    expect((await redis.hgetBuffer(whereKey(id), packId(id) as unknown as string))!.toString('latin1', 8)).toBe(cell)
    expect(Number(await redis.get(`${prefix}loc:{${cell}}:m`))).toBe(first)
    // No key of its own: the user is in its cell's keys and in a bucket of where users are.
    expect(await redis.keys(`${prefix}*${id}*`)).toEqual([])

    await locations.set(id, { lat: 45.05, lon: 5.05, roles: ['WORKER'], expiresAt: new Date(Date.now() + 200), card: cardFor(id), version: 1 })
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(await locations.nearby({ lat: 45.05, lon: 5.05, radiusM: 100, limit: 5 })).toEqual([])
    expect(await locations.sweep()).toBe(1)
    expect(await leftInCell(cell)).toEqual([0, 0, 0, 0])
    expect(await redis.exists(whereKey(id))).toBe(0)
  })

  it('answers ids that are not UUIDs as they were given', async () => {
    const ids = ['bob', 'sixteen-chars-id', 'ünïcode 17 bytes']
    await Promise.all(ids.map((id, i) => locations.set(id, { lat: 12 + i * 0.0001, lon: 12, roles: ['WORKER'], expiresAt: new Date(Date.now() + 60_000), card: cardFor(id), version: 1 })))
    expect((await locations.nearby({ lat: 12, lon: 12, radiusM: 100, limit: 5 })).map((h) => [h.userId, h.card])).toEqual(ids.map((id) => [id, cardFor(id)]))
    await Promise.all(ids.map((id) => locations.remove(id)))
    expect(await locations.nearby({ lat: 12, lon: 12, radiusM: 100, limit: 5 })).toEqual([])
  })

  it('leaves nothing in the cell when a user whose roles and card changed is removed, or expires and is swept', async () => {
    const [removed, swept] = [uuidv7(), uuidv7()]
    const cell = cellOf(-3.05, 15.05)
    await locations.set(removed, { lat: -3.05, lon: 15.05, roles: ['WORKER'], expiresAt: new Date(Date.now() + 60_000), card: 'first', version: 1 })
    await locations.set(swept, { lat: -3.0501, lon: 15.05, roles: ['CLIENT'], expiresAt: new Date(Date.now() + 300), card: 'first', version: 1 })
    await locations.update(removed, { roles: ['CLIENT', 'ADMIN'], card: 'second, with: colons', version: 2 })
    await locations.update(swept, { roles: ['WORKER', 'CLIENT'], card: 'second', version: 2 })
    await locations.remove(removed)
    await new Promise((resolve) => setTimeout(resolve, 400))
    expect(await locations.sweep()).toBeGreaterThanOrEqual(1)
    expect(await leftInCell(cell)).toEqual([0, 0, 0, 0])
    expect(await Promise.all([removed, swept].map((id) => redis.hexists(whereKey(id), packId(id) as unknown as string)))).toEqual([0, 0])
  })

  it('never brings back a removed or expired location on a change, even with its cell still written down', async () => {
    const [removed, expired] = [uuidv7(), uuidv7()]
    const cell = cellOf(-5.05, 25.05)
    await locations.set(removed, { lat: -5.05, lon: 25.05, roles: ['WORKER'], expiresAt: new Date(Date.now() + 60_000), card: 'c', version: 1 })
    await locations.set(expired, { lat: -5.0501, lon: 25.05, roles: ['WORKER'], expiresAt: new Date(Date.now() + 300), card: 'c', version: 1 })
    await locations.remove(removed)
    await new Promise((resolve) => setTimeout(resolve, 400))
    // As if the bucket still said where they were.
    const place = (lat: number) => {
      const at = Buffer.alloc(8)
      at.writeInt32BE(Math.round(lat * 1e7), 0)
      at.writeInt32BE(Math.round(25.05 * 1e7), 4)
      return Buffer.concat([at, Buffer.from(cell)])
    }
    await redis.hset(whereKey(removed), packId(removed) as unknown as string, place(-5.05) as unknown as string)
    await redis.hset(whereKey(expired), packId(expired) as unknown as string, place(-5.0501) as unknown as string)
    for (const id of [removed, expired]) await locations.update(id, { roles: ['WORKER', 'CLIENT'], card: 'changed', version: 2 })
    expect(await locations.nearby({ lat: -5.05, lon: 25.05, radiusM: 100, limit: 5 })).toEqual([])
    expect(await members(cell, 'c')).toEqual([])
    expect(await locations.sweep()).toBe(1) // the expired one
    expect(await leftInCell(cell)).toEqual([0, 0, 0, 0])
  })

  it('skips a cell whose earliest expiry lies ahead, and drops the keys of the layout before', async () => {
    const id = uuidv7()
    const cell = cellOf(-10.05, 20.05)
    const old = ['W', 'C', 'A', 'e', 'u', 'h'].map((suffix) => `${prefix}loc:{${cell}}:${suffix}`)
    await redis.geoadd(old[0]!, 20.05, -10.05, `${id}:${Date.now() + 60_000}:20.05,-10.05:card`)
    await redis.zadd(old[3]!, Date.now() + 60_000, id)
    await redis.hset(old[4]!, id, 'entry')
    await locations.set(id, { lat: -10.05, lon: 20.05, roles: ['WORKER'], expiresAt: new Date(Date.now() + 60_000), card: 'c', version: 1 })
    expect(await locations.sweep()).toBe(0)
    expect(await Promise.all(old.map((key) => redis.exists(key)))).toEqual([0, 0, 0, 0, 0, 0])
    expect((await locations.nearby({ lat: -10.05, lon: 20.05, radiusM: 100, limit: 5 })).map((h) => h.userId)).toEqual([id])
    await locations.remove(id)
  })
})
