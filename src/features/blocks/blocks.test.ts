import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { v7 as uuidv7 } from 'uuid'
import { encodeCursor } from '../../http/cursor.js'
import { allPages, newUser, problem, startTestApp, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { newAdmin, newWorker } from '../../../test/support/trust.js'

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

  describe('a block racing messages and offers', () => {
    /**
     * An observer in the database: a message or a job between two users, committed while a
     * block between them stood committed, is written down in block_leaks. The check runs at the
     * commit itself (a deferred constraint trigger), so whatever the order of the statements
     * before, it sees exactly what "got through after the block" means.
     */
    async function watchLeaks() {
      const db = t.app.platform.database.db
      await sql`CREATE TABLE IF NOT EXISTS block_leaks (tbl text, id uuid)`.execute(db)
      // A job's pair is its client and worker, whether the job is made with its worker or an open
      // request is taken (its worker set); an alert's is the open request's client and the worker.
      await sql`CREATE OR REPLACE FUNCTION block_leak() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE a uuid; b uuid; row_id uuid;
        BEGIN
          IF TG_TABLE_NAME = 'messages' THEN a := NEW.sender_id; b := NEW.recipient_id; row_id := NEW.id;
          ELSIF TG_TABLE_NAME = 'job_alerts' THEN SELECT client_id INTO a FROM jobs WHERE id = NEW.job_id; b := NEW.worker_id; row_id := NEW.job_id;
          ELSE a := NEW.client_id; b := NEW.worker_id; row_id := NEW.id;
          END IF;
          IF EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = a AND blocked_id = b) OR (blocker_id = b AND blocked_id = a)) THEN
            INSERT INTO block_leaks VALUES (TG_TABLE_NAME, row_id);
          END IF;
          RETURN NULL;
        END $$`.execute(db)
      const watched = { messages: 'INSERT', jobs: 'INSERT OR UPDATE OF worker_id', job_alerts: 'INSERT' }
      for (const [table, events] of Object.entries(watched)) {
        await sql.raw(`CREATE CONSTRAINT TRIGGER block_leak AFTER ${events} ON ${table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION block_leak()`).execute(db)
      }
      return {
        leaks: async () => (await sql<{ tbl: string; id: string }>`SELECT tbl, id FROM block_leaks`.execute(db)).rows,
        async stop() {
          for (const table of Object.keys(watched)) await sql.raw(`DROP TRIGGER block_leak ON ${table}`).execute(db)
        },
      }
    }

    /**
     * On PGlite (one connection, in process), a request's statements run back to back unless
     * others wait for the connection: the test holds it while requests line up for it, in the
     * order they reach it. hold() takes it (at the end of the line), release() lets it go, and
     * settle() leaves requests time to reach the line. On PostgreSQL, where requests race by
     * themselves, none of this does anything.
     */
    function connectionHolder() {
      const { database } = t.app.platform
      const pglite = database.kind === 'pglite'
      let release = () => {}
      return {
        async hold() {
          if (!pglite) return
          const previous = release
          let held!: () => void
          const holding = new Promise<void>((resolve) => (held = resolve))
          const released = new Promise<void>((resolve) => (release = resolve))
          void database.db.connection().execute(async () => {
            held()
            await released
          })
          // Taken again before it is let go, so the requests queued meanwhile keep their place.
          previous()
          await holding
        },
        release: () => release(),
        settle: () => (pglite ? new Promise<void>((resolve) => setTimeout(resolve, 100)) : Promise.resolve()),
      }
    }

    it('lets no message, idempotent send, offer or offer edit through once a block between the two has committed', async () => {
      const watch = await watchLeaks()
      try {
        for (let round = 0; round < 3; round++) {
          const client = await newUser(t.app, { roles: ['CLIENT'] })
          const worker = await newUser(t.app, { roles: ['WORKER'] })
          // The worker is on the map, so an offer with a place asks how far away it is.
          expect((await post(worker, '/location', { lat: 48.85, lon: 2.35 })).statusCode).toBe(200)
          const offer = (extra: object = {}) =>
            post(client, '/job', { worker_id: worker.id, title: 'Fix the tap', location: { lat: 48.86, lon: 2.35 }, ...extra })
          const offers = await Promise.all(Array.from({ length: 6 }, () => offer()))
          const jobIds = offers.map((r) => r.json().id as string)

          const kinds = [
            (i: number) => send(client, worker.id, `plain ${i}`),
            (i: number) => t.app.inject({ method: 'POST', url: '/send', headers: { ...worker.auth, 'idempotency-key': `k-${round}-${i}` }, payload: { to: client.id, text: `keyed ${i}` } }),
            (i: number) => t.app.inject({ method: 'POST', url: '/send', headers: { ...client.auth, 'idempotency-key': `k-${round}-${i}` }, payload: { to: worker.id, text: `keyed ${i}` } }),
            (i: number) => offer({ title: `Offer ${i}` }),
            (i: number) => post(client, '/job', { id: jobIds[i % jobIds.length], title: `Edited ${i}` }),
          ]
          // The block first, then the others at once. On PGlite (one connection, in process) a
          // request's statements run back to back unless others wait for the connection, so the
          // test holds it while they line up behind it, the block first; on PostgreSQL they race.
          // (inject sends a request once its answer is awaited: Promise.resolve sends it now.)
          const line = connectionHolder()
          await line.hold()
          const blocking = Promise.resolve(post(worker, '/blocks', { user_id: client.id }))
          await line.settle()
          const racers = Array.from({ length: 30 }, (_, i) => Promise.resolve(kinds[i % kinds.length]!(i)))
          await line.settle()
          // Once signed in they wait for their bodies before their handlers run: hold the
          // connection again, so that their handlers line up too.
          await line.hold()
          await line.settle()
          line.release()
          expect((await blocking).statusCode).toBe(201)
          const answers = await Promise.all(racers)
          for (const res of answers) {
            if (res.statusCode < 300) continue
            expect([403, 409], res.body).toContain(res.statusCode)
            // An edit may lose a race to another edit of the same offer; nothing else is refused but for the block.
            expect(['blocked', 'recipient_blocked', 'job_busy']).toContain(JSON.parse(res.body).code)
          }
          // Once it answered, nothing more goes either way.
          expect(problem(await send(client, worker.id, 'after'), 403).code).toBe('blocked')
          expect(problem(await offer(), 403).code).toBe('blocked')
          expect(await watch.leaks()).toEqual([])
        }
      } finally {
        await watch.stop()
      }
    }, 60_000)

    it('lets no open request alert, nor an alerted worker take one, once a block between worker and client has committed', async () => {
      const admin = await newAdmin(t.app)
      const created = await post(admin, '/admin/categories', { name: `Racing ${Math.random().toString(36).slice(2, 8)}` })
      expect(created.statusCode, created.body).toBe(201)
      const category_id = created.json().id as string
      const here = { lat: 45.46, lon: 9.19 }
      const watch = await watchLeaks()
      try {
        for (let round = 0; round < 3; round++) {
          const client = await newUser(t.app, { roles: ['CLIENT'] })
          // Off the map, with a saved alert: the audience is read without a hold, before the transaction.
          const worker = await newWorker(t.app, `Racer${round}`)
          expect((await post(worker, '/alerts', { ...here, radius: 2000, category_ids: [category_id] })).statusCode).toBe(201)
          const request = (i: number) => post(client, '/job', { title: `Request ${round}.${i}`, category_id, location: here })
          const open = await Promise.all(Array.from({ length: 6 }, (_, i) => request(i)))
          const jobs = open.map((r) => r.json() as { id: string; version: number })
          const accept = (i: number) => {
            const job = jobs[i % jobs.length]!
            return t.app.inject({ method: 'POST', url: `/job/${job.id}/status`, headers: { ...worker.auth, 'if-match': `"${job.version}"` }, payload: { status: 'ACCEPTED' } })
          }
          const kinds = [accept, (i: number) => request(100 + i)]

          // The block first (by either side, a round each), then the others at once, lined up as above.
          const line = connectionHolder()
          await line.hold()
          const blocking = Promise.resolve(round % 2 === 0 ? post(client, '/blocks', { user_id: worker.id }) : post(worker, '/blocks', { user_id: client.id }))
          await line.settle()
          const racers = Array.from({ length: 12 }, (_, i) => Promise.resolve(kinds[i % kinds.length]!(Math.floor(i / kinds.length))))
          await line.settle()
          await line.hold()
          await line.settle()
          line.release()
          expect((await blocking).statusCode).toBe(201)
          for (const res of await Promise.all(racers)) {
            if (res.statusCode < 300) continue
            expect(res.statusCode, res.body).toBe(403)
            expect(JSON.parse(res.body).code).toBe('blocked')
          }
          // Once it answered, the worker takes none of the requests left, and a new one does not alert it.
          for (let i = 0; i < jobs.length; i++) {
            // (On PostgreSQL an accept may have won before the block: that job is the worker's.)
            if ((await get(client, `/job/${jobs[i]!.id}`)).json().worker_id === worker.id) continue
            expect(problem(await accept(i), 403).code).toBe('blocked')
          }
          const after = (await request(999)).json() as { id: string }
          const alerted = await t.app.platform.database.db.selectFrom('job_alerts').select('worker_id').where('job_id', '=', after.id).execute()
          // (The workers of earlier rounds watch the same place: they are alerted.)
          expect(alerted.map((a) => a.worker_id)).not.toContain(worker.id)
          expect(await watch.leaks()).toEqual([])
        }
      } finally {
        await watch.stop()
      }
    }, 60_000)
  })
})
