import { v7 as uuidv7 } from 'uuid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, problem, startTestApp, startTwoApps, type Inject, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { waitUntil } from '../../../test/support/wait.js'
import { newAdmin, newWorker, paidJob } from '../../../test/support/trust.js'
import { cardOf } from './service.js'

// GET /search's filters from profiles and reviews, on whichever live store the run uses.

let t: TestApp
let admin: SignedIn
let viewer: SignedIn
const inject = (options: Inject) => t.app.inject(options)

beforeAll(async () => {
  t = await startTestApp()
  admin = await newAdmin(t.app)
  viewer = await newUser(t.app, { roles: ['CLIENT'] })
}, 240_000)
afterAll(async () => t.close())

const LAT = 48.8566
const LON = 2.3522

async function category(name: string, parent_id?: string) {
  const res = await inject({ method: 'POST', url: '/admin/categories', headers: admin.auth, payload: { name, ...(parent_id ? { parent_id } : {}) } })
  expect(res.statusCode, res.body).toBe(201)
  return res.json().id as string
}

async function placed(worker: SignedIn, profile: Record<string, unknown>, offsetDeg: number) {
  const res = await inject({ method: 'POST', url: '/user/profile', headers: worker.auth, payload: profile })
  expect(res.statusCode, res.body).toBe(200)
  expect((await inject({ method: 'POST', url: '/location', headers: worker.auth, payload: { lat: LAT + offsetDeg, lon: LON, ttl: 3600 } })).statusCode).toBe(200)
}

const search = async (query: string) => {
  const res = await inject({ url: `/search?lat=${LAT}&lon=${LON}&radius=20000&${query}`, headers: viewer.auth })
  expect(res.statusCode, res.body).toBe(200)
  return res.json() as { items: { user: { id: string } }[]; next_cursor: string | null }
}
const ids = async (query: string) => (await search(query)).items.map((i) => i.user.id)

describe('search filters', () => {
  let plumbing: string, leaks: string, painting: string
  let near: SignedIn, mid: SignedIn, far: SignedIn, other: SignedIn

  beforeAll(async () => {
    plumbing = await category('Plumbing')
    leaks = await category('Leaks', plumbing)
    painting = await category('Painting')
    ;[near, mid, far, other] = [await newWorker(t.app, 'Near'), await newWorker(t.app, 'Mid'), await newWorker(t.app, 'Far'), await newWorker(t.app, 'Other')]
    await placed(near, { category_ids: [leaks], hourly_rate: { amount: 3000, currency: 'EUR' } }, 0.01)
    await placed(mid, { category_ids: [plumbing], hourly_rate: { amount: 6000, currency: 'EUR' } }, 0.02)
    await placed(far, { category_ids: [leaks], hourly_rate: { amount: 2000, currency: 'USD' } }, 0.03)
    await placed(other, { category_ids: [painting] }, 0.015)
    // Ratings: far 5, mid 3 (published when both sides wrote).
    for (const [worker, rating] of [[far, 5], [mid, 3]] as const) {
      const client = await newUser(t.app, { roles: ['CLIENT'] })
      const jobId = await paidJob(t.app, client, worker)
      await inject({ method: 'POST', url: `/job/${jobId}/review`, headers: client.auth, payload: { rating } })
      expect((await inject({ method: 'POST', url: `/job/${jobId}/review`, headers: worker.auth, payload: { rating: 5 } })).json().status).toBe('published')
    }
  }, 240_000)

  it('a category takes in its subcategories', async () => {
    expect(await ids(`category=${plumbing}`)).toEqual([near.id, mid.id, far.id])
    expect(await ids(`category=${leaks}`)).toEqual([near.id, far.id])
    expect(await ids(`category=${painting}`)).toEqual([other.id])
  })

  it('min_rating and max_rate with its currency', async () => {
    expect(await ids('min_rating=4')).toEqual([far.id])
    expect(await ids('min_rating=3')).toEqual([mid.id, far.id])
    expect(await ids('max_rate=5000&currency=EUR')).toEqual([near.id])
    expect(await ids('max_rate=5000&currency=USD')).toEqual([far.id])
    expect(problem(await inject({ url: `/search?lat=${LAT}&lon=${LON}&radius=20000&max_rate=5000`, headers: viewer.auth }), 400).code).toBe('invalid_input')
    expect(await ids(`category=${plumbing}&min_rating=4`)).toEqual([far.id])
  })

  it('sort=rating puts the best rated first, then the nearest', async () => {
    expect(await ids(`category=${plumbing}&sort=rating`)).toEqual([far.id, mid.id, near.id])
    const first = await search(`category=${plumbing}&sort=rating&limit=2`)
    expect(first.items.map((i) => i.user.id)).toEqual([far.id, mid.id])
    const next = await search(`category=${plumbing}&sort=rating&limit=2&cursor=${encodeURIComponent(first.next_cursor!)}`)
    expect(next.items.map((i) => i.user.id)).toEqual([near.id])
    expect(next.next_cursor).toBeNull()
  })

  it('pages through filtered results with cursors, none twice', async () => {
    const first = await search(`category=${plumbing}&limit=1`)
    const seen = first.items.map((i) => i.user.id)
    let cursor = first.next_cursor
    while (cursor) {
      const page = await search(`category=${plumbing}&limit=1&cursor=${encodeURIComponent(cursor)}`)
      seen.push(...page.items.map((i) => i.user.id))
      cursor = page.next_cursor
    }
    expect(seen).toEqual([near.id, mid.id, far.id])
  })

  it('a category search finds its workers past many nearer ones of other categories, page after page', async () => {
    // 60 painters nearer than anyone, put on the map straight through the store.
    const painters = Array.from({ length: 60 }, () => uuidv7())
    await Promise.all(
      painters.map((id, i) =>
        t.app.platform.live.locations.set(id, {
          lat: LAT + 0.0001 * (i % 10),
          lon: LON + 0.0001 * Math.floor(i / 10),
          roles: ['WORKER'],
          categories: [painting],
          expiresAt: new Date(Date.now() + 600_000),
          card: cardOf({ first_name: 'Painter', last_name: String(i), roles: ['WORKER'], picture_etag: null, created_at: new Date() }),
          version: 1,
        }),
      ),
    )
    try {
      expect(await ids(`category=${plumbing}&role=WORKER`)).toEqual([near.id, mid.id, far.id])
      const first = await search(`category=${plumbing}&limit=2`)
      expect(first.items.map((i) => i.user.id)).toEqual([near.id, mid.id])
      const next = await search(`category=${plumbing}&limit=2&cursor=${encodeURIComponent(first.next_cursor!)}`)
      expect(next.items.map((i) => i.user.id)).toEqual([far.id])
      const painted = (await search(`category=${painting}&limit=50`)).items
      expect(painted).toHaveLength(50)
      expect(painted.every((i) => (i.user as { first_name?: string }).first_name === 'Painter')).toBe(true)
    } finally {
      await Promise.all(painters.map((id) => t.app.platform.live.locations.remove(id)))
    }
  })

  it('a profile change shows in the next search', async () => {
    await inject({ method: 'POST', url: '/user/profile', headers: other.auth, payload: { category_ids: [leaks] } })
    expect(await ids(`category=${leaks}`)).toEqual([near.id, other.id, far.id])
    expect(await ids(`category=${painting}`)).toEqual([])
  })
})

describe('facets kept by each process', () => {
  it('a profile changed through one process shows in the other, a post through it bringing back no old card', async () => {
    const two = await startTwoApps()
    try {
      const [a, b] = two.apps
      const boss = await newAdmin(a)
      const made = async (name: string) => {
        const res = await a.inject({ method: 'POST', url: '/admin/categories', headers: boss.auth, payload: { name } })
        expect(res.statusCode, res.body).toBe(201)
        return res.json().id as string
      }
      const [roofs, gardens] = [await made('Roofs'), await made('Gardens')]
      const worker = await newUser(a, { roles: ['WORKER'], first_name: 'Rita' })
      const looker = await newUser(a, { roles: ['CLIENT'] })
      const profile = async (category: string) => expect((await a.inject({ method: 'POST', url: '/user/profile', headers: worker.auth, payload: { category_ids: [category] } })).statusCode).toBe(200)
      const post = async () => expect((await b.inject({ method: 'POST', url: '/location', headers: worker.auth, payload: { lat: LAT, lon: LON, ttl: 3600 } })).statusCode).toBe(200)
      const found = async (category: string) => {
        const res = await b.inject({ url: `/search?lat=${LAT}&lon=${LON}&radius=5000&category=${category}`, headers: looker.auth })
        expect(res.statusCode, res.body).toBe(200)
        return (res.json() as { items: { user: { id: string } }[] }).items.some((i) => i.user.id === worker.id)
      }
      await profile(roofs)
      await post() // B holds the worker's facets now (roofs)
      expect([await found(roofs), await found(gardens)]).toEqual([true, false])
      await profile(gardens)
      await waitUntil(async () => (await found(gardens)) && !(await found(roofs)))
      // Off the map, then back through B: the card B makes is of the new facets (B heard of the
      // change), not the ones it held.
      expect((await a.inject({ method: 'DELETE', url: '/location', headers: worker.auth })).statusCode).toBe(204)
      expect([await found(roofs), await found(gardens)]).toEqual([false, false])
      await waitUntil(async () => {
        await post()
        return (await found(gardens)) && !(await found(roofs))
      }, 5_000)
    } finally {
      await two.close()
    }
  })
})
