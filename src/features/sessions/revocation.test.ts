import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { buildApp } from '../../app.js'
import { openDatabase, type DatabaseHandle } from '../../platform/db/index.js'
import type { Platform } from '../../platform/index.js'
import { mailsTo, newUser, problem, tokenOf, signIn, startTestApp, startTwoApps, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { createScratchDatabase, openTestPlatform, TEST_DATABASE_URL, testConfig } from '../../../test/support/backends.js'
import { startTcpProxy, type TcpProxy } from '../../../test/support/tcp-proxy.js'
import { waitUntil } from '../../../test/support/wait.js'

// Each process keeps the authentications it serves; a change made through one process must
// reach the other within a second: its tokens refused there (its sockets closed), or what they
// carry of the user renewed.

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const me = (app: FastifyInstance, token: string) => app.inject({ url: '/user', headers: bearer(token) })

/** Waits until a second has passed since `since` (performance.now()), then runs `check`. */
async function aSecondAfter<T>(since: number, check: () => Promise<T>): Promise<T> {
  await sleep(Math.max(0, since + 1000 - performance.now()))
  return check()
}

interface Socket {
  closed: Promise<number>
  /** When the close came (performance.now()), once it came. */
  closedAt?: number
}

async function listening(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws`
}

function connect(url: string, token: string): Promise<Socket> {
  const ws = new WebSocket(url, { headers: bearer(token) })
  const socket: Socket = {
    closed: new Promise((resolve) =>
      ws.on('close', (code) => {
        socket.closedAt = performance.now()
        resolve(code)
      }),
    ),
  }
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve(socket))
    ws.on('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)))
    ws.on('error', reject)
  })
}

describe('a change made through one process, on the other', () => {
  let a: FastifyInstance
  let b: FastifyInstance
  let wsB: string
  let close: () => Promise<void>

  beforeAll(async () => {
    const started = await startTwoApps()
    ;[a, b] = started.apps
    close = started.close
    wsB = await listening(b)
  })
  afterAll(async () => close?.())

  /** A user with a second device; B has served both tokens (so holds them) and has a socket of each. */
  async function signedInTwice() {
    const user = await newUser(a)
    const phone = await signIn(a, user.email, user.password)
    for (const token of [user.token, phone]) expect((await me(b, token)).statusCode).toBe(200)
    const sockets = { laptop: await connect(wsB, user.token), phone: await connect(wsB, phone) }
    return { user, phone, sockets }
  }

  /** A second after `answeredAt`, B refuses these tokens and their sockets are closed with 4401. */
  async function refusedOnB(answeredAt: number, tokens: string[], sockets: Socket[]) {
    const answers = await aSecondAfter(answeredAt, () => Promise.all(tokens.map((token) => me(b, token))))
    for (const answer of answers) problem(answer, 401)
    for (const socket of sockets) {
      expect(await socket.closed).toBe(4401)
      expect(socket.closedAt! - answeredAt).toBeLessThan(1000)
    }
  }

  it('a sign-out', async () => {
    const { user, phone, sockets } = await signedInTwice()
    expect((await a.inject({ method: 'DELETE', url: '/authorize', headers: bearer(phone) })).statusCode).toBe(204)
    await refusedOnB(performance.now(), [phone], [sockets.phone])
    expect((await me(b, user.token)).statusCode).toBe(200)
  })

  it('ending one session by id', async () => {
    const { user, phone, sockets } = await signedInTwice()
    const other = (await a.inject({ url: '/sessions', headers: user.auth })).json().items.find((s: { current: boolean }) => !s.current)
    expect((await a.inject({ method: 'DELETE', url: `/sessions/${other.id}`, headers: user.auth })).statusCode).toBe(204)
    await refusedOnB(performance.now(), [phone], [sockets.phone])
    expect((await me(b, user.token)).statusCode).toBe(200)
  })

  it('a sign-out everywhere', async () => {
    const { user, phone, sockets } = await signedInTwice()
    expect((await a.inject({ method: 'DELETE', url: '/sessions', headers: user.auth })).statusCode).toBe(204)
    await refusedOnB(performance.now(), [user.token, phone], [sockets.laptop, sockets.phone])
  })

  it('a new password: every session but the one that changed it', async () => {
    const { user, phone, sockets } = await signedInTwice()
    const changed = await a.inject({ method: 'POST', url: '/user', headers: user.auth, payload: { password: 'a brand new secret', current_password: user.password } })
    expect(changed.statusCode).toBe(200)
    await refusedOnB(performance.now(), [phone], [sockets.phone])
    expect((await me(b, user.token)).statusCode).toBe(200)
    expect(sockets.laptop.closedAt).toBeUndefined()
  })

  it('a new password set by an admin: every session', async () => {
    const [{ user, phone, sockets }, admin] = [await signedInTwice(), await newUser(a)]
    await a.accounts.setAdmin(admin.email, true)
    const changed = await a.inject({ method: 'POST', url: '/user', headers: admin.auth, payload: { id: user.id, password: 'set by the admin' } })
    expect(changed.statusCode).toBe(200)
    await refusedOnB(performance.now(), [user.token, phone], [sockets.laptop, sockets.phone])
  })

  it('a deletion', async () => {
    const { user, phone, sockets } = await signedInTwice()
    expect((await a.inject({ method: 'DELETE', url: '/user', headers: user.auth, payload: { current_password: user.password } })).statusCode).toBe(204)
    await refusedOnB(performance.now(), [user.token, phone], [sockets.laptop, sockets.phone])
  })

  it('a new email: shown by the other process within a second, the sessions stay', async () => {
    const { user, sockets } = await signedInTwice()
    const email = `renamed.${user.email}`
    const changed = await a.inject({ method: 'POST', url: '/user', headers: user.auth, payload: { email, current_password: user.password, first_name: 'Renamed' } })
    expect(changed.statusCode).toBe(200)
    // A new email takes effect when the link mailed to it is followed.
    const [mail] = await mailsTo(a, email)
    expect((await a.inject({ method: 'POST', url: '/email/confirm', payload: { token: tokenOf(mail!) } })).statusCode).toBe(204)
    const seen = await aSecondAfter(performance.now(), () => me(b, user.token))
    expect(seen.json()).toMatchObject({ email, first_name: 'Renamed' })
    expect(sockets.laptop.closedAt).toBeUndefined()
  })

  it('a role given (as the command line does): shown by the other process within a second', async () => {
    const { user } = await signedInTwice()
    expect((await me(b, user.token)).json().roles).toEqual(['CLIENT'])
    expect(await a.accounts.setAdmin(user.email, true)).toBe(true)
    const seen = await aSecondAfter(performance.now(), () => me(b, user.token))
    expect(seen.json().roles).toEqual(['CLIENT', 'ADMIN'])
    // What the new role opens is open on B at once too.
    expect((await b.inject({ url: '/users?role=ADMIN', headers: user.auth })).statusCode).toBe(200)
  })

  it('relies on nothing it kept once a message of the channel went missing', async () => {
    const users = await Promise.all(Array.from({ length: 3 }, () => newUser(a)))
    for (const u of users) expect((await me(b, u.token)).statusCode).toBe(200)
    expect(b.sessions.cached()).toBeGreaterThan(0)
    // A process's messages 1 and 3 come, 2 never does (its transaction rolled back, or it was lost).
    const from = randomUUID()
    for (const seq of [1, 3]) await sql`SELECT pg_notify('sessions_changed', ${JSON.stringify({ from, seq })})`.execute(a.platform.database.db)
    await waitUntil(() => b.sessions.cached() === 0)
    for (const u of users) expect((await me(b, u.token)).statusCode).toBe(200)
  })

  it('keeps serving the tokens it holds from memory', async () => {
    const users = await Promise.all(Array.from({ length: 5 }, () => newUser(a)))
    for (const u of users) expect((await me(b, u.token)).statusCode).toBe(200)
    expect(b.sessions.cached()).toBeGreaterThanOrEqual(5)
  })
})

describe('a sign-in under way when its account changes', () => {
  let t: TestApp
  beforeAll(async () => {
    // Slow hashing on one thread: a sign-in waits behind others while the account changes.
    t = await startTestApp({ BCRYPT_COST: '11', BCRYPT_CONCURRENCY: '1' })
  })
  afterAll(async () => t?.close())

  it('makes no session once a sign-out everywhere committed first', async () => {
    const [busy, u] = [await newUser(t.app), await newUser(t.app)]
    const attempt = (who: SignedIn) => t.app.inject({ method: 'POST', url: '/authorize', payload: { email: who.email, password: who.password } })
    // Three sign-ins ahead of it hold the hashing thread; this one has read the account by the
    // time the sign-out everywhere commits, and checks the password after.
    const ahead = Array.from({ length: 3 }, () => attempt(busy))
    const racing = attempt(u)
    await sleep(100)
    expect((await t.app.inject({ method: 'DELETE', url: '/sessions', headers: u.auth })).statusCode).toBe(204)
    const answer = await racing
    await Promise.all(ahead)
    if (answer.statusCode === 200) problem(await me(t.app, answer.json().access_token), 401)
    else expect(problem(answer, 401).code).toBe('invalid_credentials')
    // A sign-in after it makes a session as usual.
    expect((await t.app.inject({ url: '/sessions', headers: bearer(await signIn(t.app, u.email, u.password)) })).json().items).toHaveLength(1)
  })
})

describe('memory', () => {
  let t: TestApp
  const SIZE = 20
  beforeAll(async () => {
    t = await startTestApp({ SESSION_CACHE_SIZE: String(SIZE) })
  })
  afterAll(async () => t?.close())

  it('keeps at most SESSION_CACHE_SIZE authentications, and none of made-up tokens', async () => {
    const users = await Promise.all(Array.from({ length: SIZE + 10 }, () => newUser(t.app)))
    for (const u of users) expect((await me(t.app, u.token)).statusCode).toBe(200)
    expect(t.app.sessions.cached()).toBeLessThanOrEqual(SIZE)
    // Those that left the cache still work (read again).
    for (const u of users) expect((await me(t.app, u.token)).statusCode).toBe(200)
    const before = t.app.sessions.cached()
    for (let i = 0; i < 300; i++) problem(await me(t.app, `made-up-token-${i}-${'x'.repeat(30)}`), 401)
    expect(t.app.sessions.cached()).toBe(before)
  })
})

// The channel's connection goes silent (a network that drops packets): the process stops relying
// on what it keeps, then relies on it again once the channel is back. Needs a server to put a
// proxy in front of.
describe.runIf(TEST_DATABASE_URL)('when the invalidation channel is down', () => {
  let a: FastifyInstance
  let b: FastifyInstance
  let proxy: TcpProxy
  let listenVia: DatabaseHandle
  let platforms: Platform[] = []
  let drop: () => Promise<void>
  let wsB: string

  beforeAll(async () => {
    const scratch = await createScratchDatabase(TEST_DATABASE_URL!)
    drop = scratch.drop
    const config = testConfig({ DATABASE_URL: scratch.url })
    platforms = [await openTestPlatform(config), await openTestPlatform(config)]
    const url = new URL(scratch.url)
    proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) })
    listenVia = await openDatabase({ databaseUrl: proxy.through(scratch.url), dataDir: '', poolSize: 1 })
    a = await buildApp(config, platforms[0]!)
    // B hears the channel through the proxy; the rest of its database work goes straight.
    b = await buildApp(config, { ...platforms[1]!, database: { ...platforms[1]!.database, listen: listenVia.listen } })
    wsB = await listening(b)
  })
  afterAll(async () => {
    await a?.close()
    await b?.close()
    for (const platform of platforms) await platform.close()
    await listenVia?.close()
    await proxy?.close()
    await drop?.()
  })

  it('refuses a token signed out meanwhile within a second, and relies on its memory again once the channel is back', async () => {
    const [u, v, w] = [await newUser(a), await newUser(a), await newUser(a)]
    await waitUntil(async () => (await me(b, u.token)).statusCode === 200 && b.sessions.cached() > 0)
    const socket = await connect(wsB, u.token)
    proxy.stall()
    expect((await a.inject({ method: 'DELETE', url: '/authorize', headers: u.auth })).statusCode).toBe(204)
    const answeredAt = performance.now()
    problem(await aSecondAfter(answeredAt, () => me(b, u.token)), 401)
    expect(await socket.closed).toBe(4401)
    expect(socket.closedAt! - answeredAt).toBeLessThan(1000)
    // Meanwhile, B answers from the database.
    expect((await me(b, w.token)).statusCode).toBe(200)

    proxy.resume()
    await waitUntil(async () => (await me(b, v.token)).statusCode === 200 && b.sessions.cached() > 0)
    expect((await a.inject({ method: 'DELETE', url: '/authorize', headers: v.auth })).statusCode).toBe(204)
    problem(await aSecondAfter(performance.now(), () => me(b, v.token)), 401)
  })

  it('listens again when its connection is gone, and relies on its memory once that works', async () => {
    const [u, v] = [await newUser(a), await newUser(a)]
    await waitUntil(async () => (await me(b, u.token)).statusCode === 200 && b.sessions.cached() > 0)
    proxy.cut()
    expect((await a.inject({ method: 'DELETE', url: '/authorize', headers: u.auth })).statusCode).toBe(204)
    problem(await aSecondAfter(performance.now(), () => me(b, u.token)), 401)
    // A silence of 5 s: it listens again, on a new connection.
    await waitUntil(async () => (await me(b, v.token)).statusCode === 200 && b.sessions.cached() > 0)
    expect((await a.inject({ method: 'DELETE', url: '/authorize', headers: v.auth })).statusCode).toBe(204)
    problem(await aSecondAfter(performance.now(), () => me(b, v.token)), 401)
  })

  it('checks a location post made from memory again in the database once the channel fails', async () => {
    const worker = await newUser(a, { roles: ['WORKER'] })
    const client = await newUser(a)
    const at = { lat: 38.7223, lon: -9.1393 }
    const onMap = async () => (await a.inject({ url: '/search', headers: client.auth, query: { lat: String(at.lat), lon: String(at.lon), radius: '500' } })).json().items.length > 0
    // B holds the worker's session; it ends elsewhere, its news lost on the way (the channel then
    // stalls), after B stored a post it made from memory.
    await waitUntil(async () => (await me(b, worker.token)).statusCode === 200 && b.sessions.cached() > 0)
    const auth = (await b.sessions.authenticate(worker.token))!
    await sql`DELETE FROM sessions WHERE user_id = ${worker.id}`.execute(a.platform.database.db)
    await b.location.post(auth, at)
    expect(await onMap()).toBe(true)
    proxy.stall()
    try {
      await expect.poll(onMap, { timeout: 5000 }).toBe(false)
    } finally {
      proxy.resume()
    }
  })
})
