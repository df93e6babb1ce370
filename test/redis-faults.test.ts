import http from 'node:http'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { newUser, problem, signIn, startTestApp, uniqueEmail, type TestApp } from './support/app.js'
import { TEST_REDIS_URL } from './support/backends.js'
import { answeredWithin, answerWith, errorLines, expectCaughtUp, openSocket } from './support/faults.js'
import { startRedisServer, type RedisServer } from './support/redis-server.js'
import { waitUntil } from './support/wait.js'

// The API on a redis-server of the test's own, which the tests stop, pause and start again: what
// needs Redis answers 503 store_unavailable at once, the rest goes on, /ready says so, and all
// comes back by itself without an error.

/** Loose: answers come within the command timeout (1 s here), where they once waited for Redis. */
const SOON_MS = 3_000

describe.runIf(TEST_REDIS_URL)('when Redis goes away', () => {
  let redis: RedisServer
  let t: TestApp
  let port: number

  beforeAll(async () => {
    redis = await startRedisServer()
    // A dropped connection is made again after 1-2 s: long enough to see readiness fail and to
    // act meanwhile. Commands and readiness checks wait 1 s at most (500 ms by default), which
    // leaves room on a busy machine.
    t = await startTestApp({ REDIS_URL: redis.url, RECONNECT_MIN_DELAY: '2000', REDIS_COMMAND_TIMEOUT: '1000', READY_TIMEOUT: '1000', LOG_LEVEL: 'info' })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    port = (t.app.server.address() as { port: number }).port
  })

  afterEach(async () => {
    // Each test leaves Redis running, and the app ready, for the next (and for closing).
    redis.resume()
    await redis.start().catch(() => {})
    await waitUntil(async () => (await t.app.inject({ url: '/ready' })).statusCode === 200)
    t.logs.length = 0
  })

  afterAll(async () => {
    await t?.close()
    await redis?.stop()
  })

  const ready = () => t.app.inject({ url: '/ready' })

  /** What answers without Redis: liveness, and routes that read the database only (the caller's session among them). */
  const servedWithoutRedis = async (userId: string, auth: { authorization: string }) => {
    expect((await answeredWithin(SOON_MS, t.app.inject({ url: '/health' }))).statusCode).toBe(200)
    expect((await answeredWithin(SOON_MS, t.app.inject({ url: '/user', headers: auth }))).statusCode).toBe(200)
    expect(problem(await answeredWithin(SOON_MS, t.app.inject({ url: `/users/${userId}/picture` })), 404).code).not.toBe('store_unavailable')
    const signup = await answeredWithin(SOON_MS, t.app.inject({ method: 'POST', url: '/signup', payload: { email: uniqueEmail(), password: 'correct horse battery', first_name: 'A', last_name: 'B' } }))
    expect(signup.statusCode, signup.body).toBe(201)
  }

  const unavailable = async (res: Awaited<ReturnType<typeof ready>>) => {
    const body = problem(res, 503)
    expect(body.code).toBe('store_unavailable')
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0)
  }

  it('stopped: what needs Redis answers 503 store_unavailable with Retry-After at once, the rest is served, /ready fails, and it all comes back when Redis starts again', async () => {
    const user = await newUser(t.app)
    await redis.kill()

    // The map lives in Redis.
    await unavailable(await answeredWithin(SOON_MS, t.app.inject({ method: 'POST', url: '/location', headers: user.auth, payload: { lat: 48.85, lon: 2.35 } })))
    await unavailable(await answeredWithin(SOON_MS, t.app.inject({ method: 'POST', url: '/authorize', payload: { email: user.email, password: user.password } })))
    await servedWithoutRedis(user.id, user.auth)
    const notReady = problem(await answeredWithin(SOON_MS, ready()), 503)
    expect(notReady.code).toBe('not_ready')
    expect(notReady.detail).toBe('Not ready: the live store (Redis does not answer)')

    // An empty Redis comes back: sessions live in the database, so the token still works, and
    // the map takes posts again.
    await redis.start()
    await waitUntil(async () => (await ready()).statusCode === 200)
    expect((await t.app.inject({ url: '/user', headers: user.auth })).statusCode).toBe(200)
    expect((await t.app.inject({ method: 'POST', url: '/location', headers: user.auth, payload: { lat: 48.85, lon: 2.35 } })).statusCode).toBe(200)
    await signIn(t.app, user.email, user.password)
    expect(errorLines(t.logs)).toEqual([])
  })

  it('paused: requests and /ready answer within the command timeout instead of hanging, and all goes on after it resumes', async () => {
    const user = await newUser(t.app)
    redis.pause()

    await unavailable(await answeredWithin(SOON_MS, t.app.inject({ method: 'POST', url: '/location', headers: user.auth, payload: { lat: 48.85, lon: 2.35 } })))
    await servedWithoutRedis(user.id, user.auth)
    const notReady = problem(await answeredWithin(SOON_MS, ready()), 503)
    expect(notReady.detail).toMatch(/live store \((Redis does not answer|no answer within \d+ ms)\)/)

    redis.resume()
    await waitUntil(async () => (await ready()).statusCode === 200)
    expect((await t.app.inject({ url: '/user', headers: user.auth })).statusCode).toBe(200)
    expect(errorLines(t.logs)).toEqual([])
  })

  it('costs no error when a client leaves while its request waits on Redis', async () => {
    const user = await newUser(t.app)
    const admin = new Redis(redis.url, { lazyConnect: true })
    await admin.connect()
    try {
      // Redis holds every command for 300 ms (well within the command timeout): the request signs
      // in slowly, and its client has left before the rate limit reads the client's address.
      await admin.call('CLIENT', 'PAUSE', '300', 'ALL')
      const arrived = new Promise((resolve) => t.app.server.once('request', resolve))
      const request = http.get({ port, host: '127.0.0.1', path: '/user', headers: user.auth })
      request.on('error', () => {})
      await arrived
      // Gone as a proxy that gave up goes: the connection reset.
      request.socket!.resetAndDestroy()
      // Its command was sent first, so once this one is answered that request is past its limits.
      expect((await t.app.inject({ url: '/user', headers: user.auth })).statusCode).toBe(200)
      expect(errorLines(t.logs)).toEqual([])
    } finally {
      admin.disconnect()
    }
  })

  it('tells sockets that missed events while the connection to Redis was down to reconnect with since, which replays them', async () => {
    const [alice, bob] = [await newUser(t.app), await newUser(t.app)]
    const first = await t.app.inject({ method: 'POST', url: '/send', headers: alice.auth, payload: { to: bob.id, text: 'before' } })
    const socket = await openSocket(t.app, bob.token)
    const admin = new Redis(redis.url, { lazyConnect: true })
    await admin.connect()
    try {
      // The process's subscriber connection drops, and nothing else.
      await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    } finally {
      admin.disconnect()
    }
    expect(problem(await answerWith(503, ready), 503).detail).toBe('Not ready: the live store (its events connection dropped and is being made again)')
    await expectCaughtUp(t, alice, bob, socket, first.json().id, ready)
  })
})
