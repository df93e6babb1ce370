import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, problem, startTestApp, type TestApp } from './support/app.js'
import { CACHE_CHANGED, createSharedCache } from '../src/platform/live/shared-cache.js'
import { TEST_DATABASE_URL } from './support/backends.js'
import { answerWith, errorLines, expectCaughtUp, openSocket } from './support/faults.js'
import { waitUntil } from './support/wait.js'

// PostgreSQL's LISTEN connections (the live store's events, the task queue's wake-ups) dropped
// under a running API: each is made again, /ready says what is missing until it is, and what
// was notified meanwhile is caught up. The backend is terminated from another connection, as a
// restart of PostgreSQL would end it (the shared server itself is never restarted).

describe.runIf(TEST_DATABASE_URL)('when a LISTEN connection to PostgreSQL drops', () => {
  let t: TestApp

  beforeAll(async () => {
    t = await startTestApp({
      // The live store on PostgreSQL, whatever the run's Redis.
      REDIS_URL: undefined,
      // Made again after 2-4 s: long enough to see readiness fail and to act meanwhile.
      RECONNECT_MIN_DELAY: '4000',
      // Workers claim only when woken, so a lost wake-up shows.
      QUEUE_POLL_INTERVAL: '600000',
      LOG_LEVEL: 'info',
    })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
  })

  afterAll(async () => t?.close())

  const ready = () => t.app.inject({ url: '/ready' })

  /** Ends this database's backend that listens on `channel`, as a restart of the server would. */
  const dropListener = async (channel: string) => {
    const admin = new pg.Client({ connectionString: t.config.databaseUrl })
    await admin.connect()
    try {
      const { rowCount } = await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query = $1`,
        [`LISTEN ${pg.escapeIdentifier(channel)}`],
      )
      expect(rowCount).toBe(1)
    } finally {
      await admin.end()
    }
  }

  it('the live store listens again, /ready names its events until then, and sockets that missed events are told to reconnect with since', async () => {
    const [alice, bob] = [await newUser(t.app), await newUser(t.app)]
    const first = await t.app.inject({ method: 'POST', url: '/send', headers: alice.auth, payload: { to: bob.id, text: 'before' } })
    const socket = await openSocket(t.app, bob.token)

    await dropListener('live_events')
    expect(problem(await answerWith(503, ready), 503).detail).toBe('Not ready: the live store (its events connection (LISTEN) dropped and is being made again)')
    await expectCaughtUp(t, alice, bob, socket, first.json().id, ready)
  })

  it('the task queue listens again, /ready names it until then, and a task added meanwhile runs once it does', async () => {
    const { queue, database } = t.app.platform
    const ran: number[] = []
    const stop = await queue.handle<{ n: number }>('test.wake', async (task) => {
      ran.push(task.data.n)
    })
    try {
      await queue.add(database.db, 'test.wake', { n: 1 })
      await waitUntil(() => ran.includes(1))

      await dropListener('task_added')
      expect(problem(await answerWith(503, ready), 503).detail).toBe('Not ready: the task queue (its wake-ups (LISTEN) dropped and are being made again)')
      // Its wake-up goes by while nobody listens; the next poll is minutes away.
      await queue.add(database.db, 'test.wake', { n: 2 })

      await waitUntil(() => ran.includes(2))
      expect((await ready()).statusCode).toBe(200)
      expect(errorLines(t.logs)).toEqual([])
    } finally {
      await stop()
    }
  })

  it('a cache shared by the processes drops what it holds once its events are heard again, as changes may have gone by', async () => {
    const { events } = t.app.platform.live
    const cache = createSharedCache<string>({ events, name: 'test', max: 10, ttlMs: 3_600_000 })
    await cache.start()
    try {
      expect(await cache.get('k', async () => 'first')).toBe('first')
      await dropListener('live_events')
      await answerWith(503, ready)
      // Another process changes the entry and says so; this one does not hear it.
      await events.publish({ to: [], type: CACHE_CHANGED, data: { cache: 'test', keys: ['k'] } })
      expect(await cache.get('k', async () => 'second')).toBe('first')

      await answerWith(200, ready)
      expect(await cache.get('k', async () => 'second')).toBe('second')
    } finally {
      await cache.close()
    }
  })
})
