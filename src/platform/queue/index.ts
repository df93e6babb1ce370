import { createRequire } from 'node:module'
import type { EventEmitter } from 'node:events'
import PgBoss from 'pg-boss'
import { CompiledQuery, type Kysely, type Transaction } from 'kysely'
import { UnavailableError } from '../../errors.js'
import type { DatabaseHandle, Database } from '../db/index.js'

// Durable background work: a transactional outbox and its workers, on pg-boss. A task is a row
// written in the same transaction as the change that asks for it, so it exists exactly when the
// change commits; workers in any process claim tasks (SELECT ... FOR UPDATE SKIP LOCKED), run
// their handler, retry a failure with exponential backoff up to a cap, and leave a task that kept
// failing in the `failed` state (the dead letters), where an admin lists and retries it. Work due
// at a time (an offer's expiry, an auto-approval) is a task that starts after that time.

/** Where a task is written: the database, or the transaction of the change that asks for it. */
export type Executor = Kysely<Database> | Transaction<Database>

export interface TaskOptions {
  /** Not before this time (work due later: expiries, reminders, approvals). */
  runAt?: Date
  /** Not before this many seconds from now (by the database's clock). */
  delaySeconds?: number
  /**
   * The adder runs it itself with runNow right after its commit: workers take it only after the
   * queue's grace (`inlineGraceSeconds`), should that run fail or never happen (a crash).
   */
  runsNow?: boolean
  /** A stable id: adding a task whose id exists already adds nothing (the second add answers null). */
  id?: string
}

export interface Task<T> {
  id: string
  name: string
  data: T
  /** 0 on the first run, then 1, 2, ... on retries. */
  retry: number
  /**
   * Marks the task done inside the handler's own transaction, so its effect and its completion
   * commit together: a crash after that commit never runs it again. Handlers whose effect is not
   * in the database skip it; the task is then completed after the handler returns (at least once).
   */
  completeIn(trx: Transaction<Database>): Promise<void>
}

export type TaskHandler<T> = (task: Task<T>) => Promise<void>

/** A batch of tasks handled together; `completeIn` marks them all done in the handler's transaction. */
export type BatchHandler<T> = (tasks: Task<T>[], completeIn: (trx: Transaction<Database>) => Promise<void>) => Promise<void>

export interface TaskQueueOptions {
  /** Runs after a failure: 0 fails a task for good at its first error. */
  retryLimit?: number
  /** Seconds before the first retry; each next one waits about twice as long (with jitter). */
  retryDelaySeconds?: number
  /** Seconds a claimed task may run before it counts as failed (a worker that died holds it no longer). */
  expireInSeconds?: number
  /** Tasks one worker claims at once. */
  batchSize?: number
}

export type StopHandling = () => Promise<void>

export interface FailedTask {
  id: string
  name: string
  data: unknown
  retries: number
  error: string | null
  created_at: Date
  failed_at: Date | null
}

export interface Queue {
  /** Adds a task in `executor` (the caller's transaction: the outbox). Answers its id, or null when `options.id` existed. */
  add<T extends object>(executor: Executor, name: string, data: T, options?: TaskOptions): Promise<string | null>
  /** Declares a kind of task (its retries): once per name and process, at start, before adding it. */
  define(name: string, options?: TaskQueueOptions): Promise<void>
  /**
   * Runs `handler` for the tasks of `name` in this process, while the queue runs. Answers what
   * stops it: no more claims by this handler, and the tasks it has under way finished.
   */
  handle<T>(name: string, handler: TaskHandler<T>, options?: TaskQueueOptions): Promise<StopHandling>
  /** Runs `handler` for the tasks of `name` a claimed batch at a time: one failure fails (and retries) the batch. */
  handleBatch<T>(name: string, handler: BatchHandler<T>, options?: TaskQueueOptions): Promise<StopHandling>
  /** Claims at once the tasks this process's workers of `name` would claim at their next poll. */
  wake(name: string): void
  /**
   * Adds a task failed for good already: work given up elsewhere (a provider event after all its
   * attempts) joins the dead letters, where an admin sees it and retries it like any other. With
   * `options.id` taken, that task is marked failed instead, unless a worker is running it. Answers
   * the id, or null when nothing was marked.
   */
  addFailed<T extends object>(executor: Executor, name: string, data: T, options: { id: string; error: string; retries?: number }): Promise<string | null>
  /** Dead letters: tasks that failed for good, newest first. */
  failed(options: { limit: number; before?: { at: Date; id: string } }): Promise<FailedTask[]>
  /**
   * Puts a failed task back in line, with its retries counted afresh; false when there is no such
   * failed task. In `executor` (the caller's transaction, as the audit entry of the act), or alone.
   */
  retry(id: string, executor?: Executor): Promise<boolean>
  /** Where failures go (a task's handler, the queue's maintenance); to stderr until a listener is set. */
  onError(listener: (error: unknown) => void): void
  /**
   * Runs a task's effect at once, in this process, after the commit that added it (`runsNow`, so
   * that no worker takes it meanwhile): done, the task is removed; failed, the error goes to
   * onError and a worker runs the task after the grace. What must happen happens, and fast when
   * all is well.
   */
  runNow(name: string, id: string | null, effect: () => Promise<void>): Promise<void>
  /**
   * The outbox's round in one call: `write` in a transaction (given by `transaction`) that also
   * adds the task its result asks for (`taskOf` answers the task's data, or null for none), then
   * the task's `effect` at once after the commit (runNow). Answers what `write` answered.
   */
  writeThenRun<T, D extends object>(
    transaction: <R>(work: (trx: Transaction<Database>) => Promise<R>) => Promise<R>,
    name: string,
    write: (trx: Transaction<Database>) => Promise<T>,
    taskOf: (result: T) => D | null,
    effect: (data: D, result: T) => Promise<void>,
  ): Promise<T>
  /** Throws when this process's workers can't be woken by commits: their LISTEN connection dropped and is being made again. */
  ping(): Promise<void>
  /** Waits for handlers under way (up to `timeoutMs`) and stops claiming. */
  stop(timeoutMs?: number): Promise<void>
}

export interface QueueSettings {
  /** Milliseconds between a worker's polls when nothing woke it (500 at least). */
  pollIntervalMs: number
  /** Seconds between maintenance runs (expiring tasks of dead workers, archiving). */
  maintenanceIntervalSeconds: number
  /** Whether this process runs handlers (false: it only adds tasks, for a split of API and worker processes). */
  work: boolean
  /** Seconds that a task run at once after its commit (runsNow) is left to its adder before a worker takes it. */
  inlineGraceSeconds?: number
}

/** The channel on which an added task wakes the workers of its name, in every process. */
const WAKE_CHANNEL = 'task_added'

const DEFAULTS: Required<TaskQueueOptions> = { retryLimit: 8, retryDelaySeconds: 5, expireInSeconds: 300, batchSize: 20 }

/** pg-boss's SQL port, over a connection that may be a transaction. */
const sqlOf = (executor: Executor): PgBoss.Db => ({
  executeSql: async (text, values) => executor.executeQuery(CompiledQuery.raw(text, values ?? [])) as Promise<{ rows: any[] }>,
})

/**
 * pg-boss 10's workers call complete() and fail() after a batch without awaiting them (pg-boss 12
 * awaits them): with the database gone at that moment (a restart), the rejection would be
 * unhandled and end the process. Those calls (three arguments; ours always pass the fourth,
 * options) report to the queue's 'error' event instead; the tasks stay claimed and run again once
 * their time is out. Patched once, on the class, before any queue is made.
 */
function reportUnawaitedCalls() {
  const Manager = createRequire(import.meta.url)('pg-boss/src/manager.js') as { prototype: Record<string, (...args: unknown[]) => Promise<unknown>> }
  for (const method of ['complete', 'fail']) {
    const original = Manager.prototype[method]!
    // Named as the original: pg-boss publishes a manager's methods on the instance by their names.
    Manager.prototype[method] = {
      [method](this: EventEmitter, ...args: unknown[]) {
        const done = original.apply(this, args)
        return args.length >= 4 ? done : done.catch((error: unknown) => void this.emit('error', error))
      },
    }[method]!
  }
}
reportUnawaitedCalls()

export async function openQueue(database: DatabaseHandle, settings: QueueSettings): Promise<Queue> {
  const boss = new PgBoss({
    db: { executeSql: database.executeSql },
    schema: 'pgboss',
    // The database's own migrations don't know pg-boss's tables: it installs and migrates them.
    migrate: true,
    supervise: true,
    schedule: false,
    maintenanceIntervalSeconds: settings.maintenanceIntervalSeconds,
    // Failed tasks stay listed (and retryable) for a month; done ones go after a day.
    archiveCompletedAfterSeconds: 24 * 3600,
    archiveFailedAfterSeconds: 30 * 24 * 3600,
    deleteAfterDays: 7,
  })
  let errorListener: ((error: unknown) => void) | undefined
  const onError = (error: unknown) => (errorListener ? errorListener(error) : console.error(error))
  boss.on('error', onError)
  await boss.start()

  const defined = new Map<string, Promise<void>>()
  const workers = new Map<string, string[]>()

  const define = (name: string, options: TaskQueueOptions = {}): Promise<void> => {
    let done = defined.get(name)
    if (!done) {
      const o = { ...DEFAULTS, ...options }
      const queueOptions = { name, policy: 'standard' as const, retryLimit: o.retryLimit, retryDelay: o.retryDelaySeconds, retryBackoff: true, expireInSeconds: o.expireInSeconds }
      // Processes starting together may each find no queue and create it at once (PostgreSQL
      // then aborts all but one, as a duplicate or a deadlock): the others look again and update.
      const createOrUpdate = async (attempt = 1): Promise<void> => {
        if (await boss.getQueue(name)) return boss.updateQueue(name, queueOptions)
        try {
          await boss.createQueue(name, queueOptions)
        } catch (error) {
          if (attempt >= 5) throw error
          await new Promise((r) => setTimeout(r, 50 + Math.random() * 200))
          await createOrUpdate(attempt + 1)
        }
      }
      done = createOrUpdate()
      defined.set(name, done)
      done.catch(() => defined.delete(name))
    }
    return done
  }

  // pg-boss takes (name, id or ids, output, { db }) at run time; its types list fewer forms.
  const complete = (name: string, ids: string[], executor?: Executor) =>
    (boss.complete as unknown as (...args: unknown[]) => Promise<{ affected: number }>)(name, ids, null, executor ? { db: sqlOf(executor) } : {})

  /**
   * Completes tasks in the handler's transaction. A task that is no longer this worker's (its
   * time ran out and another may run it) throws, so that the effect rolls back with it.
   */
  const completeIn = async (name: string, ids: string[], trx: Transaction<Database>) => {
    const { affected } = await complete(name, ids, trx)
    if (affected < ids.length) throw new Error(`task ${name} ran past its time and is no longer this worker's; its effect is rolled back`)
  }

  const taskOf = <T>(name: string, job: PgBoss.JobWithMetadata<T>): Task<T> => ({
    id: job.id,
    name,
    data: job.data,
    retry: job.retryCount,
    completeIn: (trx) => completeIn(name, [job.id], trx),
  })

  /**
   * Runs a handler on claimed jobs; failed ones go back for a retry (or to the dead letters). Done
   * ones are completed by pg-boss once the whole batch's callback returns (a no-op for those a
   * handler completed in its own transaction, and for failed ones).
   */
  const run = async (name: string, ids: string[], handler: () => Promise<void>, retry: number) => {
    try {
      await handler()
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      // The fourth argument: a call of ours, whose failure is awaited (see reportUnawaitedCalls).
      await (boss.fail as unknown as (...args: unknown[]) => Promise<unknown>)(name, ids, { message }, {}).catch(onError)
      onError(Object.assign(error instanceof Error ? error : new Error(message), { task: { name, ids, retry } }))
    }
  }

  const work = async (name: string, options: TaskQueueOptions, onJobs: (jobs: PgBoss.JobWithMetadata<any>[]) => Promise<void>): Promise<StopHandling> => {
    await define(name, options)
    if (!settings.work) return async () => {}
    const batchSize = options.batchSize ?? DEFAULTS.batchSize
    const running = new Set<Promise<void>>()
    const id: string = await boss.work(name, { batchSize, includeMetadata: true, pollingIntervalSeconds: settings.pollIntervalMs / 1000 }, async (jobs: PgBoss.JobWithMetadata<any>[]) => {
      const batch = onJobs(jobs)
      running.add(batch)
      await batch.finally(() => running.delete(batch))
      // A full batch means more may be waiting: claim again at once instead of after a poll.
      if (jobs.length === batchSize) boss.notifyWorker(id)
    })
    workers.set(name, [...(workers.get(name) ?? []), id])
    return async () => {
      workers.set(name, (workers.get(name) ?? []).filter((w) => w !== id))
      await boss.offWork({ id })
      await Promise.all(running)
    }
  }

  const queue: Queue = {
    async add(executor, name, data, options = {}) {
      // Defined at start, not here: on PGlite, defining inside the caller's transaction would wait for its own connection.
      const known = defined.get(name)
      if (!known) throw new Error(`task ${name} is added before it is defined: define it (or handle it) at start`)
      await known
      const startAfter = options.runAt ?? (options.runsNow ? (settings.inlineGraceSeconds ?? 30) : options.delaySeconds)
      const id = await boss.send(name, data, { db: sqlOf(executor), ...(options.id ? { id: options.id } : {}), ...(startAfter !== undefined ? { startAfter } : {}) })
      // A notification sent in a transaction is delivered when it commits, to every process: their
      // workers claim the task then, instead of at their next poll.
      const later = (options.runAt && options.runAt.getTime() > Date.now()) || (typeof startAfter === 'number' && startAfter > 0)
      if (id && !later) await executor.executeQuery(CompiledQuery.raw(`SELECT pg_notify('${WAKE_CHANNEL}', $1)`, [name]))
      return id
    },

    define,

    async addFailed(executor, name, data, options) {
      const known = defined.get(name)
      if (!known) throw new Error(`task ${name} is added before it is defined: define it (or handle it) at start`)
      await known
      // Sent to start in a year, so no worker claims it before it is marked (outside a transaction too).
      await boss.send(name, data, { db: sqlOf(executor), id: options.id, startAfter: new Date(Date.now() + 365 * 24 * 3600_000) })
      const { rows } = await sqlOf(executor).executeSql(
        `UPDATE pgboss.job SET state = 'failed', completed_on = now(), retry_count = $3, output = jsonb_build_object('message', $4::text)
          WHERE name = $1 AND id = $2 AND state IN ('created', 'retry', 'failed') RETURNING id`,
        [name, options.id, options.retries ?? 0, options.error],
      )
      return (rows[0]?.id as string | undefined) ?? null
    },

    handle: (name, handler, options = {}) =>
      // Each task on its own: one that fails is retried alone, never with the rest of its batch.
      work(name, options, (jobs) => Promise.all(jobs.map((job) => run(name, [job.id], () => handler(taskOf(name, job)), job.retryCount))).then(() => {})),

    handleBatch: (name, handler, options = {}) =>
      work(name, options, (jobs) => {
        const ids = jobs.map((job) => job.id)
        return run(name, ids, () => handler(jobs.map((job) => taskOf(name, job)), (trx) => completeIn(name, ids, trx)), Math.max(...jobs.map((job) => job.retryCount)))
      }),

    onError(listener) {
      errorListener = listener
    },

    async runNow(name, id, effect) {
      if (!id) return
      try {
        await effect()
      } catch (error) {
        onError(Object.assign(error instanceof Error ? error : new Error(String(error)), { task: { name, ids: [id], inline: true } }))
        return
      }
      await boss.deleteJob(name, id).catch(onError)
    },

    async writeThenRun(transaction, name, write, taskOf, effect) {
      const { result, data, taskId } = await transaction(async (trx) => {
        const result = await write(trx)
        const data = taskOf(result)
        return { result, data, taskId: data ? await queue.add(trx, name, data, { runsNow: true }) : null }
      })
      if (data) await queue.runNow(name, taskId, () => effect(data, result))
      return result
    },

    wake(name) {
      for (const id of workers.get(name) ?? []) boss.notifyWorker(id)
    },

    async failed({ limit, before }) {
      const { rows } = await database.executeSql(
        `SELECT id, name, data, retry_count, output, created_on, date_trunc('milliseconds', completed_on) AS failed_ms FROM pgboss.job
          WHERE state = 'failed' AND ($2::timestamptz IS NULL OR (date_trunc('milliseconds', completed_on), id) < ($2::timestamptz, $3::uuid))
          UNION ALL
         SELECT id, name, data, retry_count, output, created_on, date_trunc('milliseconds', completed_on) AS failed_ms FROM pgboss.archive
          WHERE state = 'failed' AND ($2::timestamptz IS NULL OR (date_trunc('milliseconds', completed_on), id) < ($2::timestamptz, $3::uuid))
          -- Milliseconds, as a cursor holds them: rows of one millisecond are ordered by id alone.
          ORDER BY failed_ms DESC, id DESC LIMIT $1`,
        [limit, before?.at ?? null, before?.id ?? null],
      )
      return rows.map((r) => ({
        id: r.id,
        name: r.name,
        data: r.data,
        retries: Number(r.retry_count),
        // A handler's failure keeps its message; a time-out's comes wrapped by pg-boss.
        error: typeof r.output?.message === 'string' ? r.output.message : typeof r.output?.value?.message === 'string' ? r.output.value.message : null,
        created_at: new Date(r.created_on),
        failed_at: r.failed_ms ? new Date(r.failed_ms) : null,
      }))
    },

    async retry(id, executor) {
      const run = executor ? sqlOf(executor).executeSql : database.executeSql
      // An archived dead letter comes back to the live table first; then pg-boss retries it.
      const { rows } = await run(
        `WITH restored AS (
           DELETE FROM pgboss.archive WHERE id = $1 AND state = 'failed' RETURNING *
         ), moved AS (
           INSERT INTO pgboss.job (id, name, priority, data, state, retry_limit, retry_count, retry_delay, retry_backoff, start_after, started_on,
                                   singleton_key, singleton_on, expire_in, created_on, completed_on, keep_until, dead_letter, policy, output)
           SELECT id, name, priority, data, state, retry_limit, retry_count, retry_delay, retry_backoff, start_after, started_on,
                  singleton_key, singleton_on, expire_in, created_on, completed_on, now() + interval '14 days', dead_letter, policy, output
             FROM restored RETURNING name
         )
         SELECT name FROM moved UNION ALL SELECT name FROM pgboss.job WHERE id = $1 AND state = 'failed'`,
        [id],
      )
      const name = rows[0]?.name as string | undefined
      if (!name) return false
      // Back in line now, with its whole allowance of retries again.
      await run(
        `UPDATE pgboss.job SET state = 'created', retry_count = 0, start_after = now(), started_on = NULL, completed_on = NULL, keep_until = greatest(keep_until, now() + interval '14 days')
          WHERE name = $1 AND id = $2 AND state = 'failed'`,
        [name, id],
      )
      // In a transaction the wake-up goes with its commit, to every process (as an added task's does).
      if (executor) await executor.executeQuery(CompiledQuery.raw(`SELECT pg_notify('${WAKE_CHANNEL}', $1)`, [name]))
      else queue.wake(name)
      return true
    },

    async ping() {
      if (listener && !listener.listening) throw new UnavailableError('its wake-ups (LISTEN) dropped and are being made again')
    },

    async stop(timeoutMs = 10_000) {
      await listener?.stop()
      await boss.stop({ graceful: true, wait: true, close: false, timeout: timeoutMs })
    },
  }
  // After `queue` exists: a notification may arrive as soon as the LISTEN does. Wake-ups sent while
  // its connection was down are lost: once it listens again, every worker claims at once what
  // was added meanwhile, rather than at its next poll.
  const listener = settings.work
    ? await database.listen(WAKE_CHANNEL, {
        payload: (name) => queue.wake(name),
        resumed: () => {
          for (const name of workers.keys()) queue.wake(name)
        },
      })
    : undefined
  return queue
}
