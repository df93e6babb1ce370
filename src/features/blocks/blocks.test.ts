import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { v7 as uuidv7 } from 'uuid'
import { encodeCursor } from '../../http/cursor.js'
import { allPages, newUser, problem, startTestApp, type SignedIn, type TestApp } from '../../../test/support/app.js'

let t: TestApp

beforeAll(async () => {
  t = await startTestApp()
})
afterAll(async () => t?.close())

const send = (from: SignedIn, to: string, text: string) => t.app.inject({ method: 'POST', url: '/send', headers: from.auth, payload: { to, text } })
const get = (user: SignedIn, url: string) => t.app.inject({ method: 'GET', url, headers: user.auth })
const post = (user: SignedIn, url: string, payload: unknown) => t.app.inject({ method: 'POST', url, headers: user.auth, payload: payload as object })

describe('blocks and reports', () => {
  it('answers 400, not 500, for a block cursor holding a time no Date can hold', async () => {
    const u = await newUser(t.app)
    const cursor = encodeCursor({ at: '2020-01-01T23:59:60Z', id: uuidv7() })
    expect(problem(await get(u, `/blocks?cursor=${cursor}`), 400).code).toBe('invalid_cursor')
  })

  it('stops messages both ways while a block stands, and lists blocks', async () => {
    const [alice, bob, carol] = [await newUser(t.app), await newUser(t.app, { first_name: 'Bob' }), await newUser(t.app)]
    const blocked = await post(alice, '/blocks', { user_id: bob.id })
    expect(blocked.statusCode).toBe(201)
    expect(blocked.json().user).toMatchObject({ id: bob.id, first_name: 'Bob' })
    expect((await post(alice, '/blocks', { user_id: bob.id })).statusCode).toBe(200)
    expect(problem(await send(bob, alice.id, 'hey'), 403).code).toBe('blocked')
    expect(problem(await send(alice, bob.id, 'hey'), 403).code).toBe('recipient_blocked')
    // A refused send stores nothing, on either side.
    for (const user of [alice, bob]) {
      const inbox = (await get(user, '/inbox')).json()
      expect(inbox.items).toEqual([])
      expect(inbox.unread).toBe(0)
      expect((await get(user, '/conversations')).json().items).toEqual([])
    }
    expect((await send(carol, alice.id, 'hi')).statusCode).toBe(201)
    await post(alice, '/blocks', { user_id: carol.id })
    const list = await allPages(t.app, alice, '/blocks', 1)
    expect(list.map((b) => (b as unknown as { user: { id: string } }).user.id).sort()).toEqual([bob.id, carol.id].sort())
    expect((await get(bob, '/blocks')).json().items).toEqual([])

    expect((await t.app.inject({ method: 'DELETE', url: `/blocks/${bob.id}`, headers: alice.auth })).statusCode).toBe(204)
    expect((await send(bob, alice.id, 'hey again')).statusCode).toBe(201)
    problem(await t.app.inject({ method: 'DELETE', url: `/blocks/${bob.id}`, headers: alice.auth }), 404)
    // Bob can't lift Alice's block on Carol.
    problem(await t.app.inject({ method: 'DELETE', url: `/blocks/${alice.id}`, headers: carol.auth }), 404)
    expect((await get(alice, '/blocks')).json().items).toHaveLength(1)
    problem(await post(alice, '/blocks', { user_id: alice.id }), 400)
    problem(await post(alice, '/blocks', { user_id: uuidv7() }), 404)
    problem(await post(alice, '/blocks', { user_id: 'x' }), 400)
    problem(await t.app.inject({ method: 'DELETE', url: '/blocks/x', headers: alice.auth }), 400)
    problem(await t.app.inject({ method: 'GET', url: '/blocks' }), 401)
  })

  it('leaves blocked users out of search, both ways, until unblocked', async () => {
    const [alice, bob, carol] = [await newUser(t.app), await newUser(t.app, { roles: ['WORKER'] }), await newUser(t.app, { roles: ['WORKER'] })]
    const at = { lat: 52.52, lon: 13.405 }
    for (const u of [alice, bob, carol]) expect((await post(u, '/location', at)).statusCode).toBe(200)
    const found = async (viewer: SignedIn) =>
      (await get(viewer, `/search?lat=${at.lat}&lon=${at.lon}&radius=1000`)).json().items.map((i: { user: { id: string } }) => i.user.id)
    expect(await found(alice)).toEqual(expect.arrayContaining([bob.id, carol.id]))
    await post(alice, '/blocks', { user_id: bob.id })
    expect(await found(alice)).not.toContain(bob.id)
    expect(await found(bob)).not.toContain(alice.id)
    expect(await found(alice)).toContain(carol.id)
    await t.app.inject({ method: 'DELETE', url: `/blocks/${bob.id}`, headers: alice.auth })
    expect(await found(alice)).toContain(bob.id)
  })

  it('fills search pages past blocked users, without repeats or gaps, and no cursor names a hidden user', async () => {
    const viewer = await newUser(t.app)
    const workers = await Promise.all(Array.from({ length: 8 }, () => newUser(t.app, { roles: ['WORKER'] })))
    const at = { lat: -41.29, lon: 174.78 }
    for (const w of workers) expect((await post(w, '/location', at)).statusCode).toBe(200)
    const search = `/search?lat=${at.lat}&lon=${at.lon}&radius=2000&role=WORKER&limit=2`
    const ids = (page: { items: { user: { id: string } }[] }) => page.items.map((i) => i.user.id)
    const everyone = ids((await get(viewer, `${search.replace('limit=2', 'limit=20')}`)).json())
    expect(everyone).toHaveLength(8)
    // The viewer blocks the three nearest and one further on; one more blocks the viewer.
    const hidden = [everyone[0]!, everyone[1]!, everyone[2]!, everyone[5]!]
    for (const id of hidden.slice(0, 3)) await post(viewer, '/blocks', { user_id: id })
    const blocker = workers.find((w) => w.id === hidden[3])!
    await post(blocker, '/blocks', { user_id: viewer.id })

    const visible = everyone.filter((id) => !hidden.includes(id))
    for (const limit of [1, 2]) {
      const pages: string[][] = []
      const cursors: string[] = []
      let cursor: string | null = null
      do {
        const url = `${search.replace('limit=2', `limit=${limit}`)}${cursor ? `&cursor=${cursor}` : ''}`
        const page: { items: { user: { id: string } }[]; next_cursor: string | null } = (await get(viewer, url)).json()
        pages.push(ids(page))
        cursor = page.next_cursor
        if (cursor) cursors.push(cursor)
      } while (cursor)
      expect(pages.flat()).toEqual(visible)
      expect(pages.slice(0, -1).every((page) => page.length === limit)).toBe(true)
      // A cursor is the last answered position: never where a hidden user is.
      for (const c of cursors) expect(hidden).not.toContain(JSON.parse(Buffer.from(c, 'base64url').toString()).u)
    }
    // Nor from where only hidden users are nearest: the page is the first visible one.
    const first = (await get(viewer, search.replace('limit=2', 'limit=1'))).json()
    expect(ids(first)).toEqual([visible[0]])
  })

  it('stores reports of received messages and of users, and only those', async () => {
    const [alice, bob, mallory] = [await newUser(t.app), await newUser(t.app), await newUser(t.app)]
    const m = (await send(mallory, alice.id, 'spam')).json()
    const toBob = (await send(alice, bob.id, 'private')).json()
    const report = await post(alice, '/reports', { message_id: m.id, reason: 'spam' })
    expect(report.statusCode).toBe(201)
    expect(report.json()).toMatchObject({ user_id: mallory.id, message_id: m.id, reason: 'spam' })
    expect((await post(alice, '/reports', { user_id: mallory.id, reason: 'harassment' })).json()).toMatchObject({ user_id: mallory.id, message_id: null })
    // Someone else's message, or one's own sent message, can't be reported by message id.
    expect(problem(await post(mallory, '/reports', { message_id: toBob.id, reason: 'x' }), 404).code).toBe('message_not_found')
    problem(await post(alice, '/reports', { message_id: toBob.id, reason: 'x' }), 404)
    problem(await post(alice, '/reports', { user_id: uuidv7(), reason: 'x' }), 404)
    problem(await post(alice, '/reports', { user_id: alice.id, reason: 'x' }), 400)
    problem(await post(alice, '/reports', { message_id: m.id, user_id: mallory.id, reason: 'x' }), 400)
    problem(await post(alice, '/reports', { reason: 'x' }), 400)
    problem(await post(alice, '/reports', { user_id: mallory.id, reason: '   ' }), 400)
    const stored = await t.app.platform.database.db.selectFrom('reports').select(['reporter_id', 'user_id']).where('reporter_id', '=', alice.id).execute()
    expect(stored).toHaveLength(2)
  })
})
