import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'ws'
import { v7 as uuidv7 } from 'uuid'
import { hashToken } from '../sessions/index.js'
import { newUser, signIn, startTwoApps, type SignedIn } from '../../../test/support/app.js'

// Two API processes (two buildApp instances, each listening) on one database and one live store.

interface Server {
  app: FastifyInstance
  url: string
}

let a: Server
let b: Server
let closeApps: () => Promise<void>

beforeAll(async () => {
  // A pings often (dead peers go fast); B closes sockets with over 64 kB waiting.
  const { apps, close } = await startTwoApps([{ wsHeartbeatInterval: 300 }, { wsMaxBufferedBytes: 64 * 1024 }])
  closeApps = close
  const listening = async (app: FastifyInstance): Promise<Server> => {
    await app.listen({ port: 0, host: '127.0.0.1' })
    const address = app.server.address() as { port: number }
    return { app, url: `http://127.0.0.1:${address.port}` }
  }
  a = await listening(apps[0])
  b = await listening(apps[1])
})

afterAll(async () => closeApps?.())

interface Client {
  ws: WebSocket
  events: { type: string; data: any }[]
  closed: Promise<{ code: number; reason: string }>
  of(type: string): any[]
}

/** Opens /ws; rejects with the HTTP status when the server refuses the upgrade. */
function connect(server: Server, options: { token?: string; query?: string } = {}): Promise<Client> {
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws${options.query ? `?${options.query}` : ''}`, {
    headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
  })
  const events: Client['events'] = []
  ws.on('message', (data) => events.push(JSON.parse(String(data))))
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })))
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve({ ws, events, closed, of: (type) => events.filter((e) => e.type === type).map((e) => e.data) }))
    ws.on('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)))
    ws.on('error', reject)
  })
}

const send = (server: Server, from: SignedIn, to: string, text: string) =>
  server.app.inject({ method: 'POST', url: '/send', headers: from.auth, payload: { to, text } })

describe('GET /ws', () => {
  it('delivers a message sent through one process to the receiver\'s socket on the other, and to the sender\'s', async () => {
    const [alice, bob] = [await newUser(a.app), await newUser(a.app)]
    const bobSocket = await connect(b, { token: bob.token })
    const aliceSocket = await connect(a, { token: alice.token })
    const sent = await send(a, alice, bob.id, 'hello across processes')
    expect(sent.statusCode).toBe(201)
    await expect.poll(() => bobSocket.of('message.created').length).toBe(1)
    expect(bobSocket.of('message.created')[0]).toEqual(sent.json())
    await expect.poll(() => aliceSocket.of('message.created').map((m) => m.id)).toEqual([sent.json().id])
    // And back the other way.
    const reply = await send(b, bob, alice.id, 'hello back')
    await expect.poll(() => aliceSocket.of('message.created').map((m) => m.id)).toContain(reply.json().id)
    bobSocket.ws.close()
    aliceSocket.ws.close()
  })

  it('delivers a 4000-character message of 4-byte characters (past the NOTIFY limit) across processes', async () => {
    const [alice, bob] = [await newUser(a.app), await newUser(a.app)]
    const bobSocket = await connect(a, { token: bob.token })
    const text = '😀'.repeat(3999) + 'é'
    const sent = await send(b, alice, bob.id, text)
    expect(sent.statusCode).toBe(201)
    await expect.poll(() => bobSocket.of('message.created').length).toBe(1)
    expect(bobSocket.of('message.created')[0].text).toBe(text)
    bobSocket.ws.close()
  })

  it('tells the sender when the message is read, with read_at', async () => {
    const [alice, bob] = [await newUser(a.app), await newUser(a.app)]
    const aliceSocket = await connect(a, { token: alice.token })
    const m = (await send(a, alice, bob.id, 'read me')).json()
    const read = await b.app.inject({ method: 'POST', url: '/inbox/read', headers: bob.auth, payload: { up_to: m.id } })
    expect(read.statusCode).toBe(204)
    await expect.poll(() => aliceSocket.of('message.read').length).toBe(1)
    const event = aliceSocket.of('message.read')[0]
    expect(event).toMatchObject({ by: bob.id, up_to: m.id })
    const [stored] = (await a.app.inject({ method: 'GET', url: `/inbox?with=${bob.id}`, headers: alice.auth })).json().items
    expect(stored.read_at).toBe(event.read_at)
    aliceSocket.ws.close()
  })

  it('forwards job.updated events to the user\'s sockets only, and no internal events', async () => {
    const [alice, bob] = [await newUser(a.app), await newUser(a.app)]
    const [aliceSocket, bobSocket] = [await connect(a, { token: alice.token }), await connect(b, { token: bob.token })]
    await a.app.platform.live.events.publish({ to: [bob.id], type: 'job.updated', data: { id: 'job-1', status: 'ACCEPTED' } })
    await a.app.platform.live.events.publish({ to: [], type: 'cache.changed', data: { cache: 'users', keys: [bob.id] } })
    await a.app.platform.live.events.publish({ to: [alice.id], type: 'job.updated', data: { id: 'job-2' } })
    await expect.poll(() => aliceSocket.events.length).toBe(1)
    await expect.poll(() => bobSocket.events.length).toBe(1)
    expect(bobSocket.events).toEqual([{ type: 'job.updated', data: { id: 'job-1', status: 'ACCEPTED' } }])
    expect(aliceSocket.events).toEqual([{ type: 'job.updated', data: { id: 'job-2' } }])
    aliceSocket.ws.close()
    bobSocket.ws.close()
  })

  it('replays the messages after ?since= first, then live ones, none twice', async () => {
    const [alice, bob] = [await newUser(a.app), await newUser(a.app)]
    const ids: string[] = []
    for (let i = 0; i < 4; i++) ids.push((await send(a, alice, bob.id, `missed ${i}`)).json().id)
    const own = (await send(a, bob, alice.id, 'sent from another device')).json().id
    const socket = await connect(b, { token: bob.token, query: `since=${ids[0]}` })
    await expect.poll(() => socket.of('replay.done').length).toBe(1)
    expect(socket.of('message.created').map((m) => m.id)).toEqual([ids[1], ids[2], ids[3], own])
    expect(socket.of('replay.done')[0]).toEqual({ count: 4, events: 0, complete: true })
    const live = (await send(a, alice, bob.id, 'live')).json().id
    await expect.poll(() => socket.of('message.created').map((m) => m.id)).toEqual([ids[1], ids[2], ids[3], own, live])
    socket.ws.close()
    await expect(connect(b, { token: bob.token, query: 'since=not-an-id' })).rejects.toThrow('status 400')
  })

  it('replays, after ?since=, the jobs moved meanwhile as they are now and the reads, besides the messages', async () => {
    const [client, worker] = [await newUser(a.app, { roles: ['CLIENT'] }), await newUser(a.app, { roles: ['WORKER'] })]
    const jpeg = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#3a7' } }).jpeg().toBuffer()
    expect((await a.app.inject({ method: 'PUT', url: '/user/picture', headers: { ...worker.auth, 'content-type': 'image/jpeg' }, payload: jpeg })).statusCode).toBe(200)
    const lastSeen = (await send(a, client, worker.id, 'Hello, free tomorrow?')).json().id
    // The client's phone is in a tunnel now: it offers a job from another device, and the worker
    // reads everything and accepts it.
    // Unpriced (the worker quotes it later), so no money is held and no payout account is needed.
    const offered = await a.app.inject({ method: 'POST', url: '/job', headers: client.auth, payload: { worker_id: worker.id, title: 'Fix the tap' } })
    expect(offered.statusCode).toBe(201)
    const job = offered.json()
    const newest = (await a.app.inject({ method: 'GET', url: '/inbox?limit=1', headers: worker.auth })).json().items[0].id
    expect((await a.app.inject({ method: 'POST', url: '/inbox/read', headers: worker.auth, payload: { up_to: newest } })).statusCode).toBe(204)
    const accepted = await a.app.inject({ method: 'POST', url: `/job/${job.id}/status`, headers: { ...worker.auth, 'if-match': `"${job.version}"` }, payload: { status: 'ACCEPTED' } })
    expect(accepted.statusCode).toBe(200)

    const socket = await connect(b, { token: client.token, query: `since=${lastSeen}` })
    await expect.poll(() => socket.of('replay.done').length).toBe(1)
    expect(socket.of('message.created').map((m) => m.job_id)).toEqual([job.id, job.id]) // the offer's note, and the acceptance's
    expect(socket.of('job.updated')).toMatchObject([{ id: job.id, status: 'ACCEPTED' }])
    expect(socket.of('message.read')).toMatchObject([{ by: worker.id, up_to: newest }])
    expect(socket.of('replay.done')[0]).toEqual({ count: 2, events: 2, complete: true })
    socket.ws.close()
  })

  it('refuses a socket without a valid token or ticket', async () => {
    await expect(connect(a)).rejects.toThrow('status 401')
    await expect(connect(a, { token: 'x'.repeat(43) })).rejects.toThrow('status 401')
    await expect(connect(a, { query: 'ticket=made-up-ticket' })).rejects.toThrow('status 401')
    const plain = await a.app.inject({ method: 'GET', url: '/ws', headers: (await newUser(a.app)).auth })
    expect(plain.statusCode).toBe(400)
  })

  it('takes a one-time ticket instead of the token, once', async () => {
    const [alice, bob] = [await newUser(a.app), await newUser(a.app)]
    const res = await a.app.inject({ method: 'POST', url: '/ws/ticket', headers: bob.auth })
    expect(res.statusCode).toBe(201)
    const { ticket, expires_in } = res.json()
    expect(expires_in).toBeGreaterThan(0)
    expect(ticket).not.toContain(bob.token)
    // Issued by one process, taken by the other.
    const socket = await connect(b, { query: `ticket=${ticket}` })
    const m = (await send(a, alice, bob.id, 'via ticket')).json()
    await expect.poll(() => socket.of('message.created').map((x) => x.id)).toEqual([m.id])
    await expect(connect(a, { query: `ticket=${ticket}` })).rejects.toThrow('status 401')
    socket.ws.close()
    expect((await a.app.inject({ method: 'POST', url: '/ws/ticket' })).statusCode).toBe(401)
    // A ticket of a session that ended meanwhile is worthless.
    const late = (await a.app.inject({ method: 'POST', url: '/ws/ticket', headers: bob.auth })).json().ticket
    await a.app.inject({ method: 'DELETE', url: '/authorize', headers: bob.auth })
    await expect(connect(b, { query: `ticket=${late}` })).rejects.toThrow('status 401')
  })

  it('closes the sockets of a session when it ends, on every process, and only those', async () => {
    const bob = await newUser(a.app)
    const phone = await signIn(a.app, bob.email, bob.password)
    const laptopSocket = await connect(a, { token: bob.token })
    const phoneSockets = [await connect(a, { token: phone }), await connect(b, { token: phone })]
    const ticket = (await b.app.inject({ method: 'POST', url: '/ws/ticket', headers: { authorization: `Bearer ${phone}` } })).json().ticket
    const phoneByTicket = await connect(a, { query: `ticket=${ticket}` })
    expect((await b.app.inject({ method: 'DELETE', url: '/authorize', headers: { authorization: `Bearer ${phone}` } })).statusCode).toBe(204)
    for (const socket of [...phoneSockets, phoneByTicket]) expect((await socket.closed).code).toBe(4401)
    await a.app.platform.live.events.publish({ to: [bob.id], type: 'job.updated', data: { still: 'here' } })
    await expect.poll(() => laptopSocket.of('job.updated')).toEqual([{ still: 'here' }])
    // Deleting the account ends its last session too.
    await a.app.inject({ method: 'DELETE', url: '/user', headers: bob.auth, payload: { current_password: bob.password } })
    expect((await laptopSocket.closed).code).toBe(4401)
  })

  it('closes a socket whose session lapses without anyone signing out', async () => {
    const bob = await newUser(a.app)
    // A session that ends by itself a moment from now, as an idle one would.
    const token = randomBytes(32).toString('base64url')
    const now = Date.now()
    await a.app.platform.database.db
      .insertInto('sessions')
      .values({ token_hash: hashToken(token), id: uuidv7(), user_id: bob.id, user_agent: 'test', created_at: new Date(now), last_used_at: new Date(now), expires_at: new Date(now + 1500), max_expires_at: new Date(now + 1500), sessions_version: 0 })
      .execute()
    const socket = await connect(a, { token })
    // A checks sessions every 10 heartbeats of 300 ms.
    expect((await socket.closed).code).toBe(4401)
  })

  it('pings every socket once an interval, a slice of the sockets at a time', async () => {
    // Ten each: as many as one user may hold on one process.
    const [alice, bob] = [await newUser(a.app), await newUser(a.app)]
    const sockets = await Promise.all(Array.from({ length: 20 }, (_, i) => connect(a, { token: (i % 2 ? alice : bob).token })))
    const pings: number[][] = sockets.map(() => [])
    sockets.forEach((socket, i) => socket.ws.on('ping', () => pings[i]!.push(performance.now())))
    // A pings every 300 ms.
    await sleep(1000)
    for (const times of pings) {
      expect(times.length).toBeGreaterThanOrEqual(2)
      expect(times.length).toBeLessThanOrEqual(4)
    }
    // Not all at one moment: the first pings spread over the interval.
    const firsts = pings.map((times) => times[0]!)
    expect(Math.max(...firsts) - Math.min(...firsts)).toBeGreaterThan(100)
    for (const socket of sockets) socket.ws.close()
  })

  it('drops a peer that stops answering pings', async () => {
    const bob = await newUser(a.app)
    const socket = await connect(a, { token: bob.token })
    // Stop reading: pings go unanswered. A pings every 300 ms and drops a peer after a missed pong.
    const raw = (socket.ws as unknown as { _socket: import('node:net').Socket })._socket
    raw.pause()
    await sleep(1500)
    raw.resume()
    // Terminated without a close frame.
    expect((await socket.closed).code).toBe(1006)
  })

  it('closes a socket whose client reads too slowly instead of buffering for it', async () => {
    const bob = await newUser(a.app)
    const socket = await connect(b, { token: bob.token })
    const raw = (socket.ws as unknown as { _socket: import('node:net').Socket })._socket
    raw.pause()
    // Far more than the kernel's socket buffers hold, so the server's own buffer passes 64 kB.
    const big = 'x'.repeat(60_000)
    const published = 400
    for (let i = 0; i < published; i++) await a.app.platform.live.events.publish({ to: [bob.id], type: 'job.updated', data: { i, big } })
    await sleep(200)
    raw.resume()
    const { code } = await socket.closed
    expect([4408, 1006]).toContain(code)
    expect(socket.events.length).toBeLessThan(published)
  })

  it('closes its sockets with 1001 when the app closes', async () => {
    const bob = await newUser(a.app)
    const socket = await connect(a, { token: bob.token })
    await a.app.close()
    expect((await socket.closed).code).toBe(1001)
  })
})
