import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, problem, startTestApp, uniqueEmail, type TestApp } from './support/app.js'
import { createScratchDatabase, TEST_DATABASE_URL } from './support/backends.js'
import { answeredWithin, errorLines } from './support/faults.js'
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js'
import { openDatabase } from '../src/platform/db/index.js'
import { openQueue } from '../src/platform/queue/index.js'

// The API whose way to PostgreSQL goes (the server stopped or restarting: connections cut, new
// ones refused): what needs the database answers 503 store_unavailable with Retry-After, as for
// Redis, never a 500, and nothing is logged as an error.

describe.runIf(TEST_DATABASE_URL)('when PostgreSQL goes away', () => {
  let database: Awaited<ReturnType<typeof createScratchDatabase>>
  let proxy: TcpProxy
  let t: TestApp

  beforeAll(async () => {
    database = await createScratchDatabase(TEST_DATABASE_URL!)
    proxy = await startTcpProxy({ host: new URL(database.url).hostname, port: Number(new URL(database.url).port || 5432) })
    t = await startTestApp({ DATABASE_URL: proxy.through(database.url), LOG_LEVEL: 'info' })
  })

  afterAll(async () => {
    await t?.close().catch(() => {})
    await database?.drop()
  })

  it('answers 503 store_unavailable with Retry-After where it needs the database, and 200 on /health', async () => {
    const client = await newUser(t.app, { roles: ['CLIENT'] })
    const worker = await newUser(t.app, { roles: ['WORKER'] })
    t.logs.length = 0
    await proxy.close()

    const asks = {
      signUp: t.app.inject({ method: 'POST', url: '/signup', payload: { email: uniqueEmail(), password: 'correct horse battery', first_name: 'A', last_name: 'B' } }),
      signIn: t.app.inject({ method: 'POST', url: '/authorize', payload: { email: client.email, password: client.password } }),
      send: t.app.inject({ method: 'POST', url: '/send', headers: client.auth, payload: { to: worker.id, text: 'hello' } }),
      jobs: t.app.inject({ url: '/jobs', headers: client.auth }),
      offer: t.app.inject({ method: 'POST', url: '/job', headers: client.auth, payload: { worker_id: worker.id, title: 'Fix the sink' } }),
    }
    for (const [name, ask] of Object.entries(asks)) {
      const res = await answeredWithin(10_000, ask)
      expect(problem(res, 503).code, `${name}: ${res.body}`).toBe('store_unavailable')
      expect(Number(res.headers['retry-after']), name).toBeGreaterThan(0)
    }
    expect((await t.app.inject({ url: '/health' })).statusCode).toBe(200)
    expect((await answeredWithin(10_000, t.app.inject({ url: '/ready' }))).statusCode).toBe(503)
    expect(errorLines(t.logs)).toEqual([])
  })

  it('keeps the process up when the database goes as a task finishes: the failed completion is reported, not thrown', async () => {
    const unhandled: unknown[] = []
    const record = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', record)
    const cut = await startTcpProxy({ host: new URL(database.url).hostname, port: Number(new URL(database.url).port || 5432) })
    const db = await openDatabase({ databaseUrl: cut.through(database.url), dataDir: '', poolSize: 3 })
    const queue = await openQueue(db, { work: true, pollIntervalMs: 500, maintenanceIntervalSeconds: 300 })
    const errors: unknown[] = []
    queue.onError((error) => errors.push(error))
    try {
      let finish!: () => void
      const running = new Promise<void>((started) => {
        void queue.handle('cut-short', () => {
          started()
          return new Promise<void>((r) => (finish = r))
        })
      })
      await queue.add(db.db, 'cut-short', {})
      await running
      await cut.close()
      finish()
      await new Promise((r) => setTimeout(r, 1500))
      expect(unhandled).toEqual([])
      expect(errors.length).toBeGreaterThan(0)
    } finally {
      process.off('unhandledRejection', record)
      await Promise.race([queue.stop().catch(() => {}), new Promise((r) => setTimeout(r, 3000))])
      await db.close().catch(() => {})
    }
  })
})
