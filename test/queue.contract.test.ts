import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDatabase, type DatabaseHandle } from '../src/platform/db/index.js'
import { openQueue, type Queue, type Task } from '../src/platform/queue/index.js'
import { createScratchDatabase, TEST_DATABASE_URL } from './support/backends.js'
import { waitUntil } from './support/wait.js'

// The task queue (outbox and workers) on every database the run reaches: PGlite, and PostgreSQL
// when TEST_DATABASE_URL names a server (there also with two processes' queues on one database).

const backends: { name: string; open(): Promise<{ database: DatabaseHandle; url?: string; close(): Promise<void> }> }[] = [
  {
    name: 'PGlite',
    async open() {
      const database = await openDatabase({ databaseUrl: undefined, dataDir: 'memory://', poolSize: 1 })
      return { database, close: () => database.close() }
    },
  },
]
if (TEST_DATABASE_URL) {
  backends.push({
    name: 'PostgreSQL',
    async open() {
      const scratch = await createScratchDatabase(TEST_DATABASE_URL!)
      const database = await openDatabase({ databaseUrl: scratch.url, dataDir: '', poolSize: 5 })
      return { database, url: scratch.url, close: async () => { await database.close(); await scratch.drop() } }
    },
  })
}

const settings = { pollIntervalMs: 500, maintenanceIntervalSeconds: 1, work: true, inlineGraceSeconds: 2 }

const open = async (database: DatabaseHandle, errors: unknown[], extra: Partial<typeof settings> = {}) => {
  const queue = await openQueue(database, { ...settings, ...extra })
  queue.onError((error) => errors.push(error))
  return queue
}

describe.each(backends)('the task queue on $name', (backend) => {
  let handle: Awaited<ReturnType<typeof backend.open>>
  let queue: Queue
  const errors: unknown[] = []

  beforeAll(async () => {
    handle = await backend.open()
    await sql`CREATE TABLE effects (task text PRIMARY KEY, runs int NOT NULL DEFAULT 1)`.execute(handle.database.db)
    queue = await open(handle.database, errors)
  })
  afterAll(async () => {
    await queue?.stop()
    await handle?.close()
  })

  const effects = async () =>
    (await sql<{ task: string; runs: number }>`SELECT task, runs FROM effects ORDER BY task`.execute(handle.database.db)).rows

  it('runs a task added by a transaction that commits at its commit, once, and never one whose transaction rolled back', async () => {
    // Workers that poll once a minute: only the commit's notification can bring them the task in time.
    const slow = await open(handle.database, errors, { pollIntervalMs: 60_000 })
    const seen: string[] = []
    await slow.handle<{ n: string }>('outbox-commit', async (task) => {
      seen.push(task.data.n)
    })
    await queue.define('outbox-commit')
    await handle.database.db.transaction().execute(async (trx) => {
      await queue.add(trx, 'outbox-commit', { n: 'kept' })
    })
    await handle.database.db
      .transaction()
      .execute(async (trx) => {
        await queue.add(trx, 'outbox-commit', { n: 'rolled back' })
        throw new Error('the change fails')
      })
      .catch(() => {})
    await waitUntil(() => seen.length > 0, 10_000)
    await new Promise((r) => setTimeout(r, 1200))
    await slow.stop()
    expect(seen).toEqual(['kept'])
  })

  it('adds a task with a given id once', async () => {
    const id = '0190f3c4-0000-7000-8000-0000000000aa'
    await queue.define('once-by-id')
    expect(await queue.add(handle.database.db, 'once-by-id', {}, { id })).toBe(id)
    expect(await queue.add(handle.database.db, 'once-by-id', {}, { id })).toBeNull()
  })

  it('does not run a task before its time', async () => {
    const ran: number[] = []
    await queue.handle('later', async () => {
      ran.push(Date.now())
    })
    const at = Date.now() + 2000
    await queue.add(handle.database.db, 'later', {}, { runAt: new Date(at) })
    await waitUntil(() => ran.length > 0)
    expect(ran[0]).toBeGreaterThanOrEqual(at - 50)
  })

  it('retries a failing task with growing delays, keeps it as a dead letter, and runs it again when an admin retries it', async () => {
    const attempts: { at: number; retry: number }[] = []
    let healthy = false
    await queue.handle(
      'flaky',
      async (task) => {
        attempts.push({ at: Date.now(), retry: task.retry })
        if (!healthy) throw new Error('the mail server is down')
      },
      { retryLimit: 2, retryDelaySeconds: 1 },
    )
    const id = await queue.add(handle.database.db, 'flaky', { to: 'ana@example.com' })
    await waitUntil(async () => (await queue.failed({ limit: 10 })).some((t) => t.id === id), 20_000)
    expect(attempts.map((a) => a.retry)).toEqual([0, 1, 2])
    // Exponential backoff: the second wait is longer than the first on average; each is at least the delay.
    expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(900)
    expect(attempts[2]!.at - attempts[1]!.at).toBeGreaterThanOrEqual(1900)

    const [dead] = (await queue.failed({ limit: 10 })).filter((t) => t.id === id)
    expect(dead).toMatchObject({ name: 'flaky', data: { to: 'ana@example.com' }, retries: 2, error: 'the mail server is down' })
    expect(errors.length).toBeGreaterThanOrEqual(3)

    healthy = true
    // A retry in a transaction that rolls back leaves the task where it was: failed, not run.
    await expect(handle.database.db.transaction().execute(async (trx) => {
      expect(await queue.retry(id!, trx)).toBe(true)
      throw new Error('rolled back')
    })).rejects.toThrow('rolled back')
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(attempts).toHaveLength(3)
    expect((await queue.failed({ limit: 10 })).some((t) => t.id === id)).toBe(true)
    // Committed, it runs at once (the wake-up goes with the commit).
    await handle.database.db.transaction().execute(async (trx) => {
      expect(await queue.retry(id!, trx)).toBe(true)
    })
    await waitUntil(() => attempts.length === 4)
    expect(attempts[3]!.retry).toBe(0)
    await waitUntil(async () => !(await queue.failed({ limit: 10 })).some((t) => t.id === id))
    expect(await queue.retry(id!)).toBe(false)
    expect(await queue.retry('0190f3c4-0000-7000-8000-0000000000ff')).toBe(false)
  })

  it('commits a task\'s effect and its completion together, so a failure after that commit does not run it again', async () => {
    let runs = 0
    await queue.handle<{ key: string }>('atomic', async (task) => {
      runs++
      await handle.database.db.transaction().execute(async (trx) => {
        await sql`INSERT INTO effects (task) VALUES (${task.data.key})`.execute(trx)
        await task.completeIn(trx)
      })
      throw new Error('the process fails after the commit')
    }, { retryLimit: 3, retryDelaySeconds: 1 })
    await queue.add(handle.database.db, 'atomic', { key: 'atomic-1' })
    await waitUntil(() => runs > 0)
    await new Promise((r) => setTimeout(r, 2500))
    expect(runs).toBe(1)
    expect((await effects()).filter((e) => e.task === 'atomic-1')).toEqual([{ task: 'atomic-1', runs: 1 }])
  })

  it('runs an effect at once after its commit and removes its task; when that fails, a worker runs the task at its time', async () => {
    const byWorker: string[] = []
    await queue.handle<{ key: string }>('inline', async (task) => {
      byWorker.push(task.data.key)
    })
    const add = (key: string) =>
      handle.database.db.transaction().execute((trx) => queue.add(trx, 'inline', { key }, { runsNow: true }))
    const inline: string[] = []
    await queue.runNow('inline', await add('fine'), async () => {
      inline.push('fine')
    })
    const failures = errors.length
    await queue.runNow('inline', await add('fails'), async () => {
      throw new Error('the live store is down')
    })
    expect(inline).toEqual(['fine'])
    expect(errors.length).toBe(failures + 1)
    await waitUntil(() => byWorker.length > 0)
    await new Promise((r) => setTimeout(r, 1000))
    expect(byWorker).toEqual(['fails'])
  })

  it('rolls back the effect of a task that ran past its time, and runs it again', async () => {
    let runs = 0
    await queue.handle<{ key: string }>('slow', async (task) => {
      const run = ++runs
      // The first run outlives its 1 s (slow work elsewhere): the queue's upkeep gives the task up meanwhile.
      if (run === 1) await new Promise((r) => setTimeout(r, 3000))
      await handle.database.db.transaction().execute(async (trx) => {
        await sql`INSERT INTO effects (task) VALUES (${task.data.key}) ON CONFLICT (task) DO UPDATE SET runs = effects.runs + 1`.execute(trx)
        await task.completeIn(trx)
      })
    }, { expireInSeconds: 1, retryLimit: 3, retryDelaySeconds: 1 })
    await queue.add(handle.database.db, 'slow', { key: 'slow-1' })
    await waitUntil(async () => (await effects()).some((e) => e.task === 'slow-1'), 20_000)
    // Whatever came first, the late first run's completion finds the task gone and rolls back.
    await new Promise((r) => setTimeout(r, 3500))
    // Run again at least once (a loaded machine may take a retry past 1 s too), applied once.
    expect(runs).toBeGreaterThanOrEqual(2)
    expect((await effects()).filter((e) => e.task === 'slow-1')).toEqual([{ task: 'slow-1', runs: 1 }])
  })

  it('lists every dead letter page by page, those that failed in one batch too', async () => {
    await queue.handleBatch('batch-fails', async () => {
      throw new Error('the whole batch fails')
    }, { retryLimit: 0, batchSize: 10 })
    const ids = await handle.database.db.transaction().execute(async (trx) => Promise.all([1, 2, 3, 4, 5].map((n) => queue.add(trx, 'batch-fails', { n }))))
    const mine = async () => (await queue.failed({ limit: 100 })).filter((t) => t.name === 'batch-fails')
    await waitUntil(async () => (await mine()).length === 5)
    const paged: string[] = []
    let before: { at: Date; id: string } | undefined
    for (;;) {
      const page = (await queue.failed({ limit: 2, before }))
      if (page.length === 0) break
      paged.push(...page.filter((t) => t.name === 'batch-fails').map((t) => t.id))
      const last = page.at(-1)!
      before = { at: last.failed_at!, id: last.id }
    }
    expect(paged.sort()).toEqual([...ids].sort())
  })

  // Processes side by side need a database server: an embedded PGlite is one process's alone.
  const acrossProcesses = backend.name === 'PostgreSQL' ? it : () => undefined

  acrossProcesses('lets processes that start together define the same kind of task', async () => {
    const others = await Promise.all([1, 2, 3].map(() => openDatabase({ databaseUrl: handle.url, dataDir: '', poolSize: 2 })))
    const queues = await Promise.all(others.map((db) => open(db, errors)))
    try {
      await Promise.all(queues.map((q) => q.define('started-together', { retryLimit: 1 })))
      expect(await Promise.all(queues.map((q) => q.add(handle.database.db, 'started-together', {})))).toHaveLength(3)
    } finally {
      for (const q of queues) await q.stop()
      for (const db of others) await db.close()
    }
  })

  acrossProcesses('shares tasks between processes: each runs exactly once', async () => {
    const second = await openDatabase({ databaseUrl: handle.url, dataDir: '', poolSize: 5 })
    const other = await open(second, errors)
    const byQueue = [0, 0]
    const run = (which: 0 | 1) => async (task: Task<{ key: string }>) => {
      byQueue[which]!++
      await handle.database.db.transaction().execute(async (trx) => {
        await sql`INSERT INTO effects (task) VALUES (${task.data.key}) ON CONFLICT (task) DO UPDATE SET runs = effects.runs + 1`.execute(trx)
        await task.completeIn(trx)
      })
    }
    await queue.handle('shared', run(0), { batchSize: 5 })
    await expect(queue.add(handle.database.db, 'never-defined', {})).rejects.toThrow('define it')
    await other.handle('shared', run(1), { batchSize: 5 })
    await handle.database.db.transaction().execute(async (trx) => {
      for (let i = 0; i < 300; i++) await queue.add(trx, 'shared', { key: `shared-${String(i).padStart(3, '0')}` })
    })
    await waitUntil(async () => (await effects()).filter((e) => e.task.startsWith('shared-')).length === 300, 30_000)
    await other.stop()
    await second.close()
    const shared = (await effects()).filter((e) => e.task.startsWith('shared-'))
    expect(shared.every((e) => e.runs === 1)).toBe(true)
    expect(byQueue[0]! + byQueue[1]!).toBe(300)
    expect(byQueue[0]).toBeGreaterThan(0)
    expect(byQueue[1]).toBeGreaterThan(0)
  })
})
