import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sql } from 'kysely'
import { v7 as uuidv7 } from 'uuid'
import { insertMessages } from './store.js'
import { allPages, newUser, problem, startTestApp, type SignedIn, type TestApp } from '../../../test/support/app.js'

let t: TestApp
const SEND_LIMIT = 150

beforeAll(async () => {
  t = await startTestApp({ SEND_RATE_LIMIT: String(SEND_LIMIT) })
})
afterAll(async () => t?.close())

const send = (from: SignedIn, to: string, text: string, headers: Record<string, string> = {}) =>
  t.app.inject({ method: 'POST', url: '/send', headers: { ...from.auth, ...headers }, payload: { to, text } })
const get = (user: SignedIn, url: string) => t.app.inject({ method: 'GET', url, headers: user.auth })
const post = (user: SignedIn, url: string, payload: unknown) => t.app.inject({ method: 'POST', url, headers: user.auth, payload: payload as object })

describe('POST /send', () => {
  it('stores a trimmed message from the caller and answers it in the documented shape', async () => {
    const [alice, bob] = [await newUser(t.app, { first_name: 'Alice' }), await newUser(t.app)]
    const res = await send(alice, bob.id, '  hello Bob  ')
    expect(res.statusCode).toBe(201)
    const message = res.json()
    expect(message).toMatchObject({ from: alice.id, to: bob.id, text: 'hello Bob', kind: 'user', read_at: null })
    expect(message.sender).toMatchObject({ id: alice.id, first_name: 'Alice', deleted: false })
    expect(Date.parse(message.created_at)).not.toBeNaN()
    const inbox = await get(bob, '/inbox')
    expect(inbox.json()).toMatchObject({ items: [{ id: message.id, text: 'hello Bob' }], next_cursor: null, unread: 1 })
  })

  it('takes sender and kind from the server, never from the body', async () => {
    const [alice, bob, carol] = [await newUser(t.app), await newUser(t.app), await newUser(t.app)]
    for (const extra of [{ from: carol.id }, { kind: 'system' }]) {
      const res = await t.app.inject({ method: 'POST', url: '/send', headers: alice.auth, payload: { to: bob.id, text: 'hi', ...extra } })
      problem(res, 400)
    }
    expect((await get(bob, '/inbox')).json().items).toEqual([])
  })

  it('refuses blank, too long, malformed, unknown, deleted and self recipients with problem+json', async () => {
    const [alice, bob, gone] = [await newUser(t.app), await newUser(t.app), await newUser(t.app)]
    await t.app.inject({ method: 'DELETE', url: '/user', headers: gone.auth, payload: { current_password: gone.password } })

    expect(problem(await send(alice, bob.id, '   \n\t '), 400).code).toBe('text_blank')
    problem(await send(alice, bob.id, ''), 400)
    // Characters, not UTF-16 units: 4000 emoji pass, 4001 don't.
    expect((await send(alice, bob.id, '😀'.repeat(4000))).statusCode).toBe(201)
    expect(problem(await send(alice, bob.id, '😀'.repeat(4001)), 400).code).toBe('text_too_long')
    expect((await send(alice, bob.id, `  ${'a'.repeat(4000)}  `)).statusCode).toBe(201)
    problem(await send(alice, bob.id, 'a'.repeat(20_000)), 400)
    problem(await send(alice, 'not-a-uuid', 'hi'), 400)
    expect(problem(await send(alice, uuidv7(), 'hi'), 404).code).toBe('user_not_found')
    expect(problem(await send(alice, gone.id, 'hi'), 404).code).toBe('user_not_found')
    // Nothing was stored for the deleted recipient, nor a thread with it.
    expect(await t.app.platform.database.db.selectFrom('messages').select('id').where('recipient_id', '=', gone.id).execute()).toEqual([])
    expect(((await get(alice, '/conversations')).json().items as { user: { id: string } }[]).map((c) => c.user.id)).not.toContain(gone.id)
    expect(problem(await send(alice, alice.id, 'hi'), 400).code).toBe('to_self')
    problem(await t.app.inject({ method: 'POST', url: '/send', headers: alice.auth, payload: { to: bob.id } }), 400)
    problem(await t.app.inject({ method: 'POST', url: '/send', headers: alice.auth, payload: { to: bob.id, text: 42 } }), 400)
    problem(await t.app.inject({ method: 'POST', url: '/send', headers: { ...alice.auth, 'content-type': 'application/json' }, payload: '{"to":' }), 400)
    problem(await t.app.inject({ method: 'POST', url: '/send', payload: { to: bob.id, text: 'hi' } }), 401)
  })

  it('answers a retry with the same Idempotency-Key with the first message, stored once', async () => {
    const [alice, bob] = [await newUser(t.app), await newUser(t.app)]
    const key = { 'idempotency-key': `k-${uuidv7()}` }
    const first = await send(alice, bob.id, 'pay me', key)
    expect(first.statusCode).toBe(201)
    const retry = await send(alice, bob.id, 'pay me', key)
    expect(retry.statusCode).toBe(201)
    expect(retry.headers['idempotent-replayed']).toBe('true')
    expect(retry.json()).toEqual(first.json())
    // The same key raced by several requests at once: one message still.
    const raceKey = { 'idempotency-key': `r-${uuidv7()}` }
    const raced = await Promise.all(Array.from({ length: 6 }, () => send(alice, bob.id, 'once', raceKey)))
    expect(raced.map((r) => r.statusCode)).toEqual(Array(6).fill(201))
    expect(new Set(raced.map((r) => r.json().id)).size).toBe(1)
    // Another body under a used key is a conflict, not a silent replay.
    expect(problem(await send(alice, bob.id, 'something else', key), 409).code).toBe('idempotency_key_reused')
    // Keys are per user: Bob may use the same key for his own message.
    expect((await send(bob, alice.id, 'pay me', key)).json().from).toBe(bob.id)
    const texts = (await get(bob, '/inbox')).json().items.map((m: { text: string }) => m.text)
    expect(texts.sort()).toEqual(['once', 'pay me'])
    problem(await send(alice, bob.id, 'x', { 'idempotency-key': 'bad key with spaces' }), 400)
  })

  it('limits sends per user with 429 problem+json and Retry-After', async () => {
    const [alice, bob, carol] = [await newUser(t.app), await newUser(t.app), await newUser(t.app)]
    const results = []
    for (let i = 0; i < SEND_LIMIT; i++) results.push((await send(alice, bob.id, `m${i}`)).statusCode)
    expect(results.every((s) => s === 201)).toBe(true)
    const limited = await send(alice, bob.id, 'one too many')
    expect(problem(limited, 429).code).toBe('send_rate_limited')
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0)
    // Only Alice is limited.
    expect((await send(carol, bob.id, 'hi')).statusCode).toBe(201)
  })
})

describe('GET /inbox', () => {
  it('answers received messages newest first, paged without repeats or gaps while new ones arrive', async () => {
    const [reader, a, b] = [await newUser(t.app), await newUser(t.app), await newUser(t.app)]
    const before: string[] = []
    for (let i = 0; i < 25; i++) before.push((await send(i % 2 ? a : b, reader.id, `old ${i}`)).json().id)
    // Page through while others keep writing.
    const seen: string[] = []
    let cursor: string | null = null
    let arrivals = 0
    do {
      const [page]: [Awaited<ReturnType<typeof get>>, unknown] = await Promise.all([
        get(reader, `/inbox?limit=4${cursor ? `&cursor=${cursor}` : ''}`),
        send(arrivals++ % 2 ? a : b, reader.id, `new ${arrivals}`),
      ])
      seen.push(...page.json().items.map((m: { id: string }) => m.id))
      cursor = page.json().next_cursor
    } while (cursor)
    const old = seen.filter((id) => before.includes(id))
    expect(old).toEqual([...before].reverse())
    expect(new Set(seen).size).toBe(seen.length)
    const all = await allPages(t.app, reader, '/inbox', 7)
    expect(all.map((m) => m.id)).toEqual(all.map((m) => m.id).sort().reverse())
    expect(all).toHaveLength(25 + arrivals)
  })

  it('gives one conversation in both directions with ?with=, and only the caller\'s own', async () => {
    const [alice, bob, carol] = [await newUser(t.app), await newUser(t.app), await newUser(t.app)]
    const ids = [
      (await send(alice, bob.id, 'a1')).json().id,
      (await send(bob, alice.id, 'b1')).json().id,
      (await send(carol, alice.id, 'c1')).json().id,
      (await send(alice, bob.id, 'a2')).json().id,
    ]
    const withBob = (await get(alice, `/inbox?with=${bob.id}`)).json()
    expect(withBob.items.map((m: { text: string }) => m.text)).toEqual(['a2', 'b1', 'a1'])
    expect(withBob.unread).toBe(1)
    const paged = await allPages(t.app, alice, `/inbox?with=${bob.id}`, 2)
    expect(paged.map((m) => m.id)).toEqual([ids[3], ids[1], ids[0]])
    // Carol asking for "the conversation with Alice" sees only her own messages with Alice.
    const carolView = (await get(carol, `/inbox?with=${alice.id}`)).json()
    expect(carolView.items.map((m: { text: string }) => m.text)).toEqual(['c1'])
    expect(carolView.unread).toBe(0)
    // And Carol's inbox holds nothing of Alice's and Bob's.
    expect((await get(carol, '/inbox')).json().items).toEqual([])
    problem(await get(alice, `/inbox?with=${alice.id}`), 400)
    problem(await get(alice, '/inbox?with=nope'), 400)
    problem(await get(alice, '/inbox?cursor=garbage'), 400)
    problem(await get(alice, '/inbox?limit=0'), 400)
    problem(await get(alice, '/inbox?limit=101'), 400)
    problem(await t.app.inject({ method: 'GET', url: '/inbox' }), 401)
  })

  it('shows a deleted sender as deleted in the messages others hold', async () => {
    const [alice, bob] = [await newUser(t.app, { first_name: 'Gone' }), await newUser(t.app)]
    await send(alice, bob.id, 'bye')
    expect((await t.app.inject({ method: 'DELETE', url: '/user', headers: alice.auth, payload: { current_password: alice.password } })).statusCode).toBe(204)
    const [message] = (await get(bob, '/inbox')).json().items
    expect(message).toMatchObject({ from: alice.id, text: 'bye', sender: { id: alice.id, deleted: true, first_name: '', picture_url: null } })
    const [thread] = (await get(bob, '/conversations')).json().items
    expect(thread.user).toMatchObject({ id: alice.id, deleted: true })
  })

  it('carries system messages stored by other features, with their job', async () => {
    const bob = await newUser(t.app)
    const jobId = uuidv7()
    const [row] = await t.app.platform.database.db.transaction().execute((trx) => insertMessages(trx, [{ from: null, to: bob.id, text: 'Your job was accepted', kind: 'system', jobId, at: new Date() }]))
    await t.app.messaging.publishCreated([row!])
    const inbox = (await get(bob, '/inbox')).json()
    expect(inbox.items[0]).toMatchObject({ id: row!.id, from: null, kind: 'system', job_id: jobId, sender: null })
    expect(inbox.unread).toBe(1)
    // System messages are no conversation with anyone.
    expect((await get(bob, '/conversations')).json().items).toEqual([])
  })
})

describe('read marks and conversations', () => {
  it('keeps unread counts exact under concurrent sends, system messages and read marks', async () => {
    const bob = await newUser(t.app)
    const senders = [await newUser(t.app), await newUser(t.app), await newUser(t.app)]
    const db = t.app.platform.database.db
    const sent: string[] = []
    // Three rounds of sends from everyone at once, with read marks racing them.
    for (let round = 0; round < 3; round++) {
      const sends = senders.flatMap((s, i) => Array.from({ length: 4 }, (_, k) => send(s, bob.id, `r${round} s${i} m${k}`)))
      const system = insertMessages(db, [{ from: null, to: bob.id, text: `notice ${round}`, kind: 'system', at: new Date() }])
      const marks = sent.length > 0 ? [post(bob, '/inbox/read', { up_to: sent[Math.floor(sent.length / 2)] }), post(bob, '/inbox/read', { up_to: sent[0], with: senders[1]!.id })] : []
      const done = await Promise.all([...sends, ...marks])
      await system
      for (const r of done.slice(0, sends.length)) sent.push(r.json().id)
      sent.sort()
    }
    // What the rows say, counted the slow way.
    const rows = await db.selectFrom('messages').select(['sender_id']).where('recipient_id', '=', bob.id).where('read_at', 'is', null).execute()
    const inbox = (await get(bob, '/inbox')).json()
    expect(inbox.unread).toBe(rows.length)
    expect(inbox.unread).toBeGreaterThan(0)
    for (const s of senders) {
      const expected = rows.filter((r) => r.sender_id === s.id).length
      expect((await get(bob, `/inbox?with=${s.id}`)).json().unread).toBe(expected)
    }
    const threads = (await get(bob, '/conversations')).json().items as { user: { id: string }; unread: number }[]
    expect(threads.map((c) => c.unread).sort()).toEqual(senders.map((s) => rows.filter((r) => r.sender_id === s.id).length).sort())
    // Reading everything brings every count to zero, system messages included.
    expect((await post(bob, '/inbox/read', { up_to: inbox.items[0].id })).statusCode).toBe(204)
    expect((await get(bob, '/inbox')).json().unread).toBe(0)
    expect(((await get(bob, '/conversations')).json().items as { unread: number }[]).every((c) => c.unread === 0)).toBe(true)
  })

  it('marks messages read up to one; the sender sees read_at; unread counts follow', async () => {
    const [alice, bob, carol] = [await newUser(t.app), await newUser(t.app), await newUser(t.app)]
    const m1 = (await send(alice, bob.id, 'one')).json()
    const m2 = (await send(alice, bob.id, 'two')).json()
    const c1 = (await send(carol, bob.id, 'from carol')).json()
    const m3 = (await send(alice, bob.id, 'three')).json()
    expect((await get(bob, '/inbox')).json().unread).toBe(4)

    expect((await post(bob, '/inbox/read', { up_to: m2.id })).statusCode).toBe(204)
    const inbox = (await get(bob, '/inbox')).json()
    expect(inbox.unread).toBe(2)
    const readAt = Object.fromEntries(inbox.items.map((m: { id: string; read_at: string | null }) => [m.id, m.read_at]))
    expect(readAt[m1.id]).not.toBeNull()
    expect(readAt[m2.id]).not.toBeNull()
    expect(readAt[m3.id]).toBeNull()
    expect(readAt[c1.id]).toBeNull()
    // The sender sees read_at in the conversation.
    const alices = (await get(alice, `/inbox?with=${bob.id}`)).json().items
    expect(alices.find((m: { id: string }) => m.id === m1.id).read_at).not.toBeNull()
    expect(alices.find((m: { id: string }) => m.id === m3.id).read_at).toBeNull()

    // Only one conversation, with `with`.
    expect((await post(bob, '/inbox/read', { up_to: m3.id, with: carol.id })).statusCode).toBe(204)
    expect((await get(bob, '/inbox')).json().unread).toBe(1)
    expect((await get(bob, `/inbox?with=${alice.id}`)).json().unread).toBe(1)
    expect((await post(bob, '/inbox/read', { up_to: m3.id })).statusCode).toBe(204)
    expect((await get(bob, '/inbox')).json().unread).toBe(0)
  })

  it('refuses to mark with a message that isn\'t the caller\'s', async () => {
    const [alice, bob, mallory] = [await newUser(t.app), await newUser(t.app), await newUser(t.app)]
    const m = (await send(alice, bob.id, 'private')).json()
    expect(problem(await post(mallory, '/inbox/read', { up_to: m.id }), 404).code).toBe('message_not_found')
    problem(await post(bob, '/inbox/read', { up_to: uuidv7() }), 404)
    problem(await post(bob, '/inbox/read', { up_to: 'nope' }), 400)
    problem(await post(bob, '/inbox/read', {}), 400)
    expect((await get(bob, '/inbox')).json().unread).toBe(1)
  })

  it('lists the caller\'s threads, most recent first, with the last message and unread count', async () => {
    const [me, a, b, c] = [await newUser(t.app), await newUser(t.app, { first_name: 'A' }), await newUser(t.app, { first_name: 'B' }), await newUser(t.app)]
    await send(a, me.id, 'a1')
    await send(b, me.id, 'b1')
    await send(a, me.id, 'a2')
    await send(me, b.id, 'to b')
    await send(c, a.id, 'not mine')
    const list = (await get(me, '/conversations')).json()
    expect(list.next_cursor).toBeNull()
    expect(list.items.map((i: { user: { id: string } }) => i.user.id)).toEqual([b.id, a.id])
    expect(list.items[0]).toMatchObject({ user: { first_name: 'B', deleted: false }, last_message: { text: 'to b', from: me.id }, unread: 1 })
    expect(list.items[1]).toMatchObject({ last_message: { text: 'a2' }, unread: 2 })
    const paged = await allPages(t.app, me, '/conversations', 1)
    expect(paged.map((i) => (i as unknown as { user: { id: string } }).user.id)).toEqual([b.id, a.id])
    problem(await get(me, '/conversations?cursor=bad'), 400)
    problem(await t.app.inject({ method: 'GET', url: '/conversations' }), 401)
  })
})

describe('nothing lost', () => {
  it('puts every message answered 201 in the inbox exactly once, under many concurrent sends', async () => {
    const receiver = await newUser(t.app)
    const senders = await Promise.all(Array.from({ length: 8 }, () => newUser(t.app)))
    const sends = senders.flatMap((s, i) => Array.from({ length: 25 }, (_, j) => send(s, receiver.id, `s${i}-${j}`)))
    const results = await Promise.all(sends)
    expect(results.every((r) => r.statusCode === 201)).toBe(true)
    const sentIds = results.map((r) => r.json().id as string)
    const inbox = await allPages(t.app, receiver, '/inbox', 100)
    expect(inbox.map((m) => m.id).sort()).toEqual([...sentIds].sort())
    expect((await get(receiver, '/inbox')).json().unread).toBe(200)
  })
})

describe('sends that arrive together', () => {
  it('stores each allowed one and answers each its own outcome, blocked and gone recipients among them', async () => {
    const users = await Promise.all(Array.from({ length: 12 }, (_, i) => newUser(t.app, { first_name: `Batch${i}` })))
    const [blocker, blocked, gone] = await Promise.all([newUser(t.app), newUser(t.app), newUser(t.app)])
    expect((await post(blocker, '/blocks', { user_id: blocked.id })).statusCode).toBe(201)
    expect((await t.app.inject({ method: 'DELETE', url: '/user', headers: gone.auth, payload: { current_password: gone.password } })).statusCode).toBe(204)

    // Each user writes to the next two (so pairs write both ways at once), and the refused ones go in the same rush.
    const allowed = users.flatMap((from, i) => [1, 2].flatMap((step) => [0, 1].map((k) => ({ from, to: users[(i + step) % users.length]!, text: `${i}+${step}#${k}` }))))
    const refused = [
      { from: blocked, to: blocker.id, code: 'blocked', status: 403 },
      { from: blocker, to: blocked.id, code: 'recipient_blocked', status: 403 },
      { from: users[0]!, to: gone.id, code: 'user_not_found', status: 404 },
      { from: users[1]!, to: uuidv7(), code: 'user_not_found', status: 404 },
    ]
    const rush = [
      ...allowed.map((s) => ({ ...s, to: s.to.id })),
      ...refused.map((r) => ({ from: r.from, to: r.to, text: 'refused' })),
    ]
    // Mixed in, so that refused sends share batches with allowed ones.
    const order = rush.map((_, i) => i).sort((a, b) => ((a * 7) % rush.length) - ((b * 7) % rush.length))
    const answers = new Map(await Promise.all(order.map(async (i) => [i, await send(rush[i]!.from, rush[i]!.to, rush[i]!.text)] as const)))

    const stored: { id: string; from: string; to: string; text: string }[] = []
    allowed.forEach((s, i) => {
      const res = answers.get(i)!
      expect(res.statusCode, res.body).toBe(201)
      const message = res.json()
      expect(message).toMatchObject({ from: s.from.id, to: s.to.id, text: s.text, sender: { id: s.from.id, first_name: `Batch${users.indexOf(s.from)}` } })
      stored.push(message)
    })
    refused.forEach((r, i) => expect(problem(answers.get(allowed.length + i)!, r.status).code).toBe(r.code))

    // Every allowed message is in its recipient's inbox once, with the unread counts to match, and nothing refused was stored.
    for (const user of users) {
      const inbox = await allPages(t.app, user, '/inbox', 50)
      const expected = stored.filter((m) => m.to === user.id)
      expect(inbox.map((m) => m.id).sort()).toEqual(expected.map((m) => m.id).sort())
      expect((await get(user, '/inbox')).json().unread).toBe(expected.length)
      // Each thread's last message is the newest of the pair, whichever way it went.
      const threads = (await get(user, '/conversations?limit=50')).json().items as { user: { id: string }; last_message: { id: string } }[]
      for (const thread of threads) {
        const between = stored.filter((m) => (m.from === user.id && m.to === thread.user.id) || (m.to === user.id && m.from === thread.user.id))
        expect(thread.last_message.id).toBe(between.map((m) => m.id).sort().at(-1))
      }
      expect(threads.length).toBe(4)
    }
    const { db } = t.app.platform.database
    const strays = await db.selectFrom('messages').select('id').where((eb) => eb.or([eb('recipient_id', 'in', [blocker.id, blocked.id, gone.id]), eb('text', '=', 'refused')])).execute()
    expect(strays).toEqual([])
    // They did go together: fewer commits than messages.
    const { rows } = await sql<{ commits: number }>`SELECT count(DISTINCT xmin::text)::int AS commits FROM messages WHERE id IN (${sql.join(stored.map((m) => m.id))})`.execute(db)
    expect(rows[0]!.commits).toBeLessThan(stored.length)
  })

  it('answers the others of a batch when one send in it fails', async () => {
    const [alice, bob] = [await newUser(t.app), await newUser(t.app)]
    const { db } = t.app.platform.database
    // A send the database refuses (here by a trigger of the test's) fails alone: the others of its batch are stored.
    await sql`CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.text = 'poison' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$`.execute(db)
    await sql`CREATE TRIGGER refuse_poison BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_poison()`.execute(db)
    try {
      const texts = ['one', 'two', 'poison', 'three', 'four']
      const answers = await Promise.all(texts.map((text) => send(alice, bob.id, text)))
      expect(answers.map((r) => r.statusCode)).toEqual([201, 201, 500, 201, 201])
      const inbox = (await get(bob, '/inbox?limit=50')).json()
      expect((inbox.items as { text: string }[]).map((m) => m.text).sort()).toEqual(['four', 'one', 'three', 'two'])
      expect(inbox.unread).toBe(4)
    } finally {
      await sql`DROP TRIGGER refuse_poison ON messages`.execute(db)
      await sql`DROP FUNCTION refuse_poison()`.execute(db)
    }
  })
})
