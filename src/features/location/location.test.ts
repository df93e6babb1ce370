import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sql } from 'kysely'
import sharp from 'sharp'
import { TEST_REDIS_URL } from '../../../test/support/backends.js'
import { UnauthenticatedError } from '../../errors.js'
import { newUser, problem, signIn, startTestApp, startTwoApps, type SignedIn, type TestApp } from '../../../test/support/app.js'

let t: TestApp
beforeAll(async () => {
  t = await startTestApp()
})
afterAll(async () => t?.close())

const post = (who: SignedIn, payload: unknown) => t.app.inject({ method: 'POST', url: '/location', headers: who.auth, payload: payload as object })
const search = (who: SignedIn, query: Record<string, string | number>) =>
  t.app.inject({ method: 'GET', url: '/search', headers: who.auth, query: Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)])) })
const found = async (who: SignedIn, query: Record<string, string | number>) => {
  const res = await search(who, query)
  expect(res.statusCode, res.body).toBe(200)
  return res.json() as { items: { user: { id: string }; distance_m: number }[]; next_cursor: string | null }
}
const ids = async (who: SignedIn, query: Record<string, string | number>) => (await found(who, query)).items.map((i) => i.user.id)

describe('live location and search', () => {
  it('a worker posts, a client finds it by distance, never by coordinates', async () => {
    const worker = await newUser(t.app, { roles: ['WORKER'], first_name: 'Wanda' })
    const client = await newUser(t.app, { roles: ['CLIENT'] })
    const res = await post(worker, { lat: 52.52, lon: 13.405 })
    expect(res.statusCode, res.body).toBe(200)
    const expiresAt = Date.parse(res.json().expires_at)
    expect(expiresAt - Date.now()).toBeGreaterThan(290_000) // the default ttl, 300 s
    expect(expiresAt - Date.now()).toBeLessThanOrEqual(300_000)

    const page = await found(client, { lat: 52.529, lon: 13.405, radius: 2000, role: 'WORKER' })
    expect(page.items).toHaveLength(1)
    expect(Object.keys(page.items[0]!).sort()).toEqual(['distance_m', 'user'])
    expect(page.items[0]!.user).toMatchObject({ id: worker.id, first_name: 'Wanda', roles: ['WORKER'] })
    expect(page.items[0]!.user).not.toHaveProperty('email')
    expect(JSON.stringify(page)).not.toMatch(/"(lat|lon|latitude|longitude)"/)
    // 1001 m from the real spot; the worker is shown 100 to 200 m from it.
    expect(Math.abs(page.items[0]!.distance_m - 1001)).toBeLessThanOrEqual(201)
    expect(page.next_cursor).toBeNull()

    // Role filter, and the caller never finds itself.
    expect(await ids(client, { lat: 52.52, lon: 13.405, radius: 1000, role: 'CLIENT' })).toEqual([])
    expect(await ids(worker, { lat: 52.52, lon: 13.405, radius: 1000 })).toEqual([])
    expect(await ids(client, { lat: 52.52, lon: 13.405, radius: 1000 })).toEqual([worker.id])
  })

  it('posting again moves the user and renews its expiry; DELETE takes it off the map, and only its own', async () => {
    const worker = await newUser(t.app, { roles: ['WORKER'] })
    const other = await newUser(t.app, { roles: ['WORKER'] })
    const client = await newUser(t.app)
    expect((await post(worker, { lat: 40.4168, lon: -3.7038, ttl: 60 })).statusCode).toBe(200)
    expect((await post(other, { lat: 40.4168, lon: -3.7038, ttl: 60 })).statusCode).toBe(200)
    const moved = await post(worker, { lat: 41.3874, lon: 2.1686, ttl: 600 })
    expect(Date.parse(moved.json().expires_at) - Date.now()).toBeGreaterThan(590_000)
    expect(await ids(client, { lat: 40.4168, lon: -3.7038, radius: 2000 })).toEqual([other.id])
    expect(await ids(client, { lat: 41.3874, lon: 2.1686, radius: 2000 })).toEqual([worker.id])

    // Another user's DELETE touches only its own location.
    expect((await t.app.inject({ method: 'DELETE', url: '/location', headers: other.auth })).statusCode).toBe(204)
    expect(await ids(client, { lat: 41.3874, lon: 2.1686, radius: 2000 })).toEqual([worker.id])
    expect(await ids(client, { lat: 40.4168, lon: -3.7038, radius: 2000 })).toEqual([])
    expect((await t.app.inject({ method: 'DELETE', url: '/location', headers: worker.auth })).statusCode).toBe(204)
    expect(await ids(client, { lat: 41.3874, lon: 2.1686, radius: 2000 })).toEqual([])
    expect((await t.app.inject({ method: 'DELETE', url: '/location', headers: worker.auth })).statusCode).toBe(204)
  })

  it('a worker who gives up the WORKER role leaves WORKER searches at once', async () => {
    const worker = await newUser(t.app, { roles: ['CLIENT', 'WORKER'] })
    const client = await newUser(t.app)
    await post(worker, { lat: 50.0755, lon: 14.4378 })
    expect(await ids(client, { lat: 50.0755, lon: 14.4378, radius: 500, role: 'WORKER' })).toEqual([worker.id])
    const changed = await t.app.inject({ method: 'POST', url: '/user', headers: worker.auth, payload: { roles: ['CLIENT'] } })
    expect(changed.statusCode, changed.body).toBe(200)
    expect(await ids(client, { lat: 50.0755, lon: 14.4378, radius: 500, role: 'WORKER' })).toEqual([])
    expect(await ids(client, { lat: 50.0755, lon: 14.4378, radius: 500, role: 'CLIENT' })).toEqual([worker.id])
  })

  it('a worker who signs out or deletes its account vanishes at once', async () => {
    const leaving = await newUser(t.app, { roles: ['WORKER'] })
    const deleted = await newUser(t.app, { roles: ['WORKER'] })
    const client = await newUser(t.app)
    await post(leaving, { lat: 45.764, lon: 4.8357 })
    await post(deleted, { lat: 45.7641, lon: 4.8357 })
    expect((await ids(client, { lat: 45.764, lon: 4.8357, radius: 500 })).sort()).toEqual([leaving.id, deleted.id].sort())

    expect((await t.app.inject({ method: 'DELETE', url: '/authorize', headers: leaving.auth })).statusCode).toBe(204)
    expect(await ids(client, { lat: 45.764, lon: 4.8357, radius: 500 })).toEqual([deleted.id])
    expect((await t.app.inject({ method: 'DELETE', url: '/user', headers: deleted.auth, payload: { current_password: deleted.password } })).statusCode).toBe(204)
    expect(await ids(client, { lat: 45.764, lon: 4.8357, radius: 500 })).toEqual([])
  })

  it('a worker signed in on two devices stays on the map when one signs out, and leaves it with the last', async () => {
    const worker = await newUser(t.app, { roles: ['WORKER'] })
    const phone = worker.auth
    const tablet = { authorization: `Bearer ${await signIn(t.app, worker.email, worker.password)}` }
    const client = await newUser(t.app)
    await post(worker, { lat: 45.1885, lon: 5.7245 })
    const near = { lat: 45.1885, lon: 5.7245, radius: 500 }
    expect(await ids(client, near)).toEqual([worker.id])
    expect((await t.app.inject({ method: 'DELETE', url: '/authorize', headers: tablet })).statusCode).toBe(204)
    expect(await ids(client, near)).toEqual([worker.id])
    expect((await t.app.inject({ method: 'DELETE', url: '/authorize', headers: phone })).statusCode).toBe(204)
    expect(await ids(client, near)).toEqual([])
  })

  it('shows, in one process\'s searches, a rename, a block and a deletion made through another', async () => {
    // Each process keeps the users it shows; a change made anywhere must reach them all.
    const { apps: [a, b], close } = await startTwoApps()
    try {
      const worker = await newUser(a, { roles: ['WORKER'], first_name: 'Before' })
      const client = await newUser(a)
      // An admin's search shows users as process A's cache of accounts has them (with emails).
      const admin = await newUser(a)
      expect(await a.accounts.setAdmin(admin.email, true)).toBe(true)
      const at = { lat: 60.1699, lon: 24.9384 }
      expect((await a.inject({ method: 'POST', url: '/location', headers: worker.auth, payload: at })).statusCode).toBe(200)
      const shown = async (viewer: SignedIn) => {
        const res = await a.inject({ url: '/search', headers: viewer.auth, query: { lat: String(at.lat), lon: String(at.lon), radius: '500' } })
        return (res.json() as { items: { user: { first_name: string; email?: string } }[] }).items.map((i) => i.user)
      }
      const names = async () => (await shown(client)).map((u) => u.first_name)
      expect(await names()).toEqual(['Before'])
      expect(await shown(admin)).toEqual([expect.objectContaining({ first_name: 'Before', email: worker.email })])

      expect((await b.inject({ method: 'POST', url: '/user', headers: worker.auth, payload: { first_name: 'After' } })).statusCode).toBe(200)
      await expect.poll(names, { timeout: 5000 }).toEqual(['After'])
      await expect.poll(async () => (await shown(admin)).map((u) => u.first_name), { timeout: 5000 }).toEqual(['After'])
      expect((await b.inject({ method: 'POST', url: '/blocks', headers: worker.auth, payload: { user_id: client.id } })).statusCode).toBe(201)
      await expect.poll(names, { timeout: 5000 }).toEqual([])
      expect((await b.inject({ method: 'DELETE', url: `/blocks/${client.id}`, headers: worker.auth })).statusCode).toBe(204)
      await expect.poll(names, { timeout: 5000 }).toEqual(['After'])
      expect((await b.inject({ method: 'DELETE', url: '/user', headers: worker.auth, payload: { current_password: worker.password } })).statusCode).toBe(204)
      await expect.poll(names, { timeout: 5000 }).toEqual([])
    } finally {
      await close()
    }
  })

  it('shows a worker as its account is now: a new picture at once, the email only to an admin', async () => {
    const worker = await newUser(t.app, { roles: ['WORKER'] })
    const client = await newUser(t.app)
    const admin = await newUser(t.app)
    expect(await t.app.accounts.setAdmin(admin.email, true)).toBe(true)
    const at = { lat: 38.7223, lon: -9.1393 }
    await post(worker, at)
    const shown = async (who: SignedIn) => (await found(who, { ...at, radius: 300 })).items.map((i) => i.user)
    expect(await shown(client)).toEqual([expect.objectContaining({ id: worker.id, picture_url: null })])

    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } }).png().toBuffer()
    const pictured = await t.app.inject({ method: 'PUT', url: '/user/picture', headers: { ...worker.auth, 'content-type': 'image/png' }, payload: png })
    expect(pictured.statusCode, pictured.body).toBe(200)
    const { email: _email, email_confirmed: _confirmed, ...publicView } = pictured.json()
    expect(publicView.picture_url).toMatch(/^\/users\/.+\/picture\?v=/)
    expect(await shown(client)).toEqual([publicView])
    expect((await shown(admin))[0]).toMatchObject({ id: worker.id, email: worker.email })
    // Made an admin (from the command line) while on the map: found as one at once, by admins only.
    expect(await t.app.accounts.setAdmin(worker.email, true)).toBe(true)
    expect(await ids(admin, { ...at, radius: 300, role: 'ADMIN' })).toEqual([worker.id])
    expect(await shown(admin)).toEqual([expect.objectContaining({ id: worker.id, roles: ['WORKER', 'ADMIN'] })])
    problem(await search(client, { ...at, radius: 300, role: 'ADMIN' }), 403)
    expect(await shown(client)).toEqual([expect.objectContaining({ id: worker.id, roles: ['WORKER'] })])
  })

  // Rows of live_locations from before the card column have none (Redis members always do): this
  // runs on the PostgreSQL live store whichever live store the suite runs on.
  it('shows a worker whose location was stored without a card, from its account', async () => {
    const pg = TEST_REDIS_URL ? await startTestApp({ REDIS_URL: undefined }) : t
    try {
      expect(pg.app.platform.live.kind).toBe('postgres')
      const worker = await newUser(pg.app, { roles: ['WORKER'], first_name: 'Uncarded' })
      const client = await newUser(pg.app)
      const at = { lat: -34.6037, lon: -58.3816 }
      expect((await pg.app.inject({ method: 'POST', url: '/location', headers: worker.auth, payload: at })).statusCode).toBe(200)
      await sql`UPDATE live_locations SET card = NULL WHERE user_id = ${worker.id}`.execute(pg.app.platform.database.db)
      expect((await pg.app.platform.live.locations.nearby({ ...at, radiusM: 300, limit: 5 }))[0]).toMatchObject({ userId: worker.id, card: null })
      const res = await pg.app.inject({ method: 'GET', url: '/search?lat=-34.6037&lon=-58.3816&radius=300', headers: client.auth })
      expect(res.json().items.map((i: { user: unknown }) => i.user)).toEqual([expect.objectContaining({ id: worker.id, first_name: 'Uncarded' })])
    } finally {
      if (pg !== t) await pg.close()
    }
  })

  it('a post under way when its user signs out or deletes the account does not bring it back to the map', async () => {
    for (const leave of ['sign out', 'delete'] as const) {
      const worker = await newUser(t.app, { roles: ['WORKER'] })
      const client = await newUser(t.app)
      const at = { lat: 41.9028, lon: 12.4964 }
      // The post authenticated before the user left, and stores its location after.
      const auth = (await t.app.sessions.authenticate(worker.token))!
      if (leave === 'sign out') expect((await t.app.inject({ method: 'DELETE', url: '/authorize', headers: worker.auth })).statusCode).toBe(204)
      else expect((await t.app.inject({ method: 'DELETE', url: '/user', headers: worker.auth, payload: { current_password: worker.password } })).statusCode).toBe(204)
      await expect(t.app.location.post(auth, at)).rejects.toThrow(UnauthenticatedError)
      expect(await ids(client, { ...at, radius: 500 })).toEqual([])
    }
  })

  it('a post that stored while a sign-out committed in another process, not heard yet, leaves the map when it is', async () => {
    const { apps: [a], close } = await startTwoApps()
    try {
      const worker = await newUser(a, { roles: ['WORKER'] })
      const client = await newUser(a)
      const at = { lat: 45.4642, lon: 9.19 }
      const onMap = async () => (await a.inject({ url: '/search', headers: client.auth, query: { lat: String(at.lat), lon: String(at.lon), radius: '500' } })).json().items.length > 0
      // What another process's change sends every process, once committed.
      const heard = () => sql`SELECT pg_notify('sessions_changed', ${JSON.stringify({ from: randomUUID(), seq: 1, users: [worker.id] })})`.execute(a.platform.database.db)
      // Process A holds two sessions of the worker. One ends elsewhere, its news still on the way;
      // A's post with it stores the worker on the map (A can't know yet), and when the news comes,
      // the worker stays: it is signed in on its other device.
      const otherToken = await signIn(a, worker.email, worker.password)
      const first = (await a.sessions.authenticate(worker.token))!
      await sql`DELETE FROM sessions WHERE id = ${first.sessionId}`.execute(a.platform.database.db)
      await expect(a.location.post(first, at)).resolves.toBeDefined()
      await heard()
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect(await onMap()).toBe(true)
      // Its last session ends the same way: once the news comes, A takes the worker off the map.
      const second = (await a.sessions.authenticate(otherToken))!
      await sql`DELETE FROM sessions WHERE user_id = ${worker.id}`.execute(a.platform.database.db)
      await expect(a.location.post(second, at)).resolves.toBeDefined()
      expect(await onMap()).toBe(true)
      await heard()
      await expect.poll(onMap, { timeout: 5000 }).toBe(false)
    } finally {
      await close()
    }
  })

  it('a post whose session this process holds reads no session from the database', async () => {
    const worker = await newUser(t.app, { roles: ['WORKER'] })
    const at = { lat: 50.0755, lon: 14.4378 }
    expect((await post(worker, at)).statusCode).toBe(200)
    const statements: string[] = []
    t.app.platform.database.logQueries((event) => statements.push(event.query.sql))
    try {
      expect((await post(worker, { ...at, lat: at.lat + 0.01 })).statusCode).toBe(200)
    } finally {
      t.app.platform.database.logQueries(undefined)
    }
    expect(statements.filter((text) => /\bsessions\b/.test(text))).toEqual([])
  })

  it('a location with a short ttl expires by itself', async () => {
    const worker = await newUser(t.app, { roles: ['WORKER'] })
    const client = await newUser(t.app)
    await post(worker, { lat: 59.3293, lon: 18.0686, ttl: 1 })
    expect(await ids(client, { lat: 59.3293, lon: 18.0686, radius: 300 })).toEqual([worker.id])
    await new Promise((resolve) => setTimeout(resolve, 1100))
    expect(await ids(client, { lat: 59.3293, lon: 18.0686, radius: 300 })).toEqual([])
  })

  it('pages nearest first with a cursor that continues in distance order', async () => {
    const client = await newUser(t.app)
    const workers = await Promise.all(Array.from({ length: 7 }, () => newUser(t.app, { roles: ['WORKER'] })))
    // 1 km apart going north: each shown at most 200 m off, so the order holds.
    await Promise.all(workers.map((w, i) => post(w, { lat: 35.6762 + (i * 1000) / 111_226, lon: 139.6503 })))
    const seen: { id: string; d: number }[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const page: Awaited<ReturnType<typeof found>> = await found(client, { lat: 35.6762, lon: 139.6503, radius: 10_000, limit: 3, ...(cursor ? { cursor } : {}) })
      expect(page.items.length).toBeLessThanOrEqual(3)
      seen.push(...page.items.map((i) => ({ id: i.user.id, d: i.distance_m })))
      cursor = page.next_cursor
      pages++
    } while (cursor && pages < 10)
    expect(seen.map((s) => s.id)).toEqual(workers.map((w) => w.id))
    expect([...seen.map((s) => s.d)].sort((a, b) => a - b)).toEqual(seen.map((s) => s.d))
    expect(pages).toBe(3)
  })

  it('answers 400 problem+json for bad input and 401 without a token', async () => {
    const user = await newUser(t.app, { roles: ['WORKER'] })
    for (const body of [
      {},
      { lat: 48 },
      { lon: 2 },
      { lat: 91, lon: 0 },
      { lat: -90.0001, lon: 0 },
      { lat: 0, lon: 180.5 },
      { lat: 0, lon: -181 },
      { lat: '48', lon: '2' },
      { lat: null, lon: 2 },
      { lat: 48, lon: 2, ttl: 0 },
      { lat: 48, lon: 2, ttl: 86_401 },
      { lat: 48, lon: 2, ttl: 1.5 },
      { lat: 48, lon: 2, extra: true },
    ]) {
      problem(await post(user, body), 400)
    }
    problem(await t.app.inject({ method: 'POST', url: '/location', headers: { ...user.auth, 'content-type': 'application/json' }, payload: '{"lat": 1e999, "lon": 0}' }), 400)

    const good = { lat: 48, lon: 2, radius: 1000 }
    for (const query of [
      { lon: 2, radius: 1000 },
      { lat: 48, radius: 1000 },
      { lat: 48, lon: 2 },
      { ...good, lat: 90.5 },
      { ...good, lat: 'north' },
      { ...good, lon: -180.01 },
      { ...good, lon: 'NaN' },
      { ...good, radius: -1 },
      { ...good, radius: 50_001 },
      { ...good, radius: 'Infinity' },
      { ...good, limit: 0 },
      { ...good, limit: 101 },
      { ...good, role: 'PLUMBER' },
      { ...good, cursor: 'garbage' },
      { ...good, cursor: Buffer.from('{"d":-1,"u":"x"}').toString('base64url') },
      { ...good, cursor: Buffer.from('[1,2]').toString('base64url') },
    ]) {
      problem(await search(user, query as Record<string, string | number>), 400)
    }
    expect(problem(await search(user, { ...good, cursor: 'garbage' }), 400).code).toBe('invalid_cursor')
    expect((await search(user, { ...good, radius: 0 })).statusCode).toBe(200)
    expect((await search(user, { ...good, lat: 90, lon: 180, radius: 50_000 })).statusCode).toBe(200)

    problem(await t.app.inject({ method: 'POST', url: '/location', payload: { lat: 1, lon: 1 } }), 401)
    problem(await t.app.inject({ method: 'DELETE', url: '/location' }), 401)
    problem(await t.app.inject({ method: 'GET', url: '/search?lat=1&lon=1&radius=10' }), 401)
    problem(await t.app.inject({ method: 'GET', url: '/search?lat=1&lon=1&radius=10', headers: { authorization: 'Bearer not-a-real-token-at-all-000000' } }), 401)
  })
})
