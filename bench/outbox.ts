// npm run bench:outbox — the task queue (transactional outbox and workers) beside raw `pg` doing
// the same work, in one run, on a scratch database of a PostgreSQL server.
//
// Each task is added in the transaction of a write (a row of bench_writes), and its handler records
// an effect (a row of bench_effects, with the time it ran) in one transaction with the task's
// completion. Two worker processes (bench/outbox-worker.ts) run the tasks:
//   raw:   the producer's transaction inserts into raw_outbox and NOTIFYs; each worker claims up to
//          20 rows (DELETE ... FOR UPDATE SKIP LOCKED ... RETURNING) and records their effects;
//   queue: the producer's transaction adds a pg-boss task (queue.add, which NOTIFYs too); each
//          worker runs a batch handler of up to 20 tasks, completing them in the effect's transaction.
// Raw and queue take turns BENCH_ROUNDS times. Then one more queue run SIGKILLs a worker mid-run and
// starts another, as a supervisor would, and counts what was lost (committed, never run) and what
// ran twice. Figures: tasks run a second, p50/p99 from commit to handler, the workers' peak RSS.
//
// Settings (environment): BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
// BENCH_DURATION (seconds a run, default 10), BENCH_ROUNDS (default 2), BENCH_CONCURRENCY
// (producers' transactions in flight, default 16).

import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import cliProgress from 'cli-progress'
import { sql } from 'kysely'
import pg from 'pg'
import { v7 as uuidv7 } from 'uuid'
import { createScratchDatabase } from '../test/support/backends.js'
import { openDatabase, type DatabaseHandle } from '../src/platform/db/index.js'
import { openQueue, type Queue } from '../src/platform/queue/index.js'
import { positiveSetting } from './support/settings.js'

const env = process.env
const DURATION = positiveSetting('BENCH_DURATION', 10)
const ROUNDS = positiveSetting('BENCH_ROUNDS', 2)
const CONCURRENCY = positiveSetting('BENCH_CONCURRENCY', 16)
const SERVER = env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const WORKERS = 2
const TASK = 'bench-outbox'

type Mode = 'raw' | 'queue'

interface Result {
  mode: Mode
  committed: number
  ran: number
  perSecond: number
  p50: number
  p99: number
  lost: number
  twice: number
  rssMb: number
}

function startWorker(mode: Mode, url: string): Promise<ChildProcess> {
  const child = fork(fileURLToPath(new URL('./outbox-worker.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    env: { PATH: env.PATH, HOME: env.HOME, DATABASE_URL: url, MODE: mode },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  })
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child))
    child.once('exit', (code) => reject(new Error(`a ${mode} worker exited with ${code} before it was ready`)))
  })
}

/** Peak resident memory of a process, in MB, from /proc. */
const peakRssMb = (pid: number | undefined) => {
  const match = pid ? /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8')) : null
  return match ? Number(match[1]) / 1024 : 0
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN

async function run(mode: Mode, database: DatabaseHandle, queue: Queue, rawPool: pg.Pool, url: string, label: string, killMidway = false): Promise<Result> {
  await sql`TRUNCATE bench_effects, bench_writes, raw_outbox`.execute(database.db)
  const workers = await Promise.all(Array.from({ length: WORKERS }, () => startWorker(mode, url)))
  const committedAt = new Map<string, number>()
  const bar = new cliProgress.SingleBar({ format: `${label.padEnd(34)} {bar} {value}/{total} s | {info}`, hideCursor: true }, cliProgress.Presets.shades_classic)
  bar.start(DURATION, 0, { info: '' })
  const started = Date.now()
  const until = started + DURATION * 1000
  let killed = false

  const produce = async () => {
    while (Date.now() < until) {
      const task = uuidv7()
      if (mode === 'raw') {
        const client = await rawPool.connect()
        try {
          await client.query('BEGIN')
          await client.query('INSERT INTO bench_writes (id, at) VALUES ($1, now())', [task])
          await client.query('INSERT INTO raw_outbox (task) VALUES ($1)', [task])
          await client.query(`SELECT pg_notify('raw_added', '')`)
          await client.query('COMMIT')
        } finally {
          client.release()
        }
      } else {
        await database.db.transaction().execute(async (trx) => {
          await sql`INSERT INTO bench_writes (id, at) VALUES (${task}, now())`.execute(trx)
          await queue.add(trx, TASK, { task })
        })
      }
      committedAt.set(task, Date.now())
      if (killMidway && !killed && Date.now() - started > (DURATION * 1000) / 2) {
        killed = true
        workers[0]!.kill('SIGKILL')
        workers[0] = await startWorker(mode, url)
      }
    }
  }
  const ticker = setInterval(() => bar.update(Math.min(DURATION, Math.round((Date.now() - started) / 1000)), { info: `${committedAt.size} committed` }), 500)
  await Promise.all(Array.from({ length: CONCURRENCY }, produce))
  clearInterval(ticker)
  bar.update(DURATION, { info: `${committedAt.size} committed; draining` })

  // Everything committed must run: wait for the last (a killed worker's tasks come back after 5 s).
  const drainUntil = Date.now() + 60_000
  let ran = 0
  while (Date.now() < drainUntil) {
    ran = Number((await sql<{ n: string }>`SELECT count(*) AS n FROM bench_effects`.execute(database.db)).rows[0]!.n)
    if (ran >= committedAt.size) break
    await new Promise((r) => setTimeout(r, 200))
  }
  bar.stop()
  const rssMb = Math.max(...workers.map((w) => peakRssMb(w.pid)))
  for (const worker of workers) worker.kill('SIGKILL')

  const effects = (await sql<{ task: string; ran_at_ms: string; runs: number }>`SELECT task, ran_at_ms, runs FROM bench_effects`.execute(database.db)).rows
  const latencies: number[] = []
  let inWindow = 0
  for (const effect of effects) {
    const ranAt = Number(effect.ran_at_ms)
    if (ranAt <= until) inWindow++
    const at = committedAt.get(effect.task)
    if (at !== undefined) latencies.push(Math.max(0, ranAt - at))
  }
  latencies.sort((a, b) => a - b)
  return {
    mode,
    committed: committedAt.size,
    ran: effects.length,
    perSecond: inWindow / DURATION,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    lost: committedAt.size - effects.filter((e) => committedAt.has(e.task)).length,
    twice: effects.filter((e) => e.runs > 1).length,
    rssMb,
  }
}

const print = (r: Result) =>
  console.log(
    `  ${r.mode.padEnd(5)}  ${r.perSecond.toFixed(0).padStart(6)} tasks/s   commit→handler p50 ${r.p50.toFixed(0).padStart(4)} ms  p99 ${r.p99.toFixed(0).padStart(5)} ms` +
      `   committed ${r.committed}, ran ${r.ran}, lost ${r.lost}, ran twice ${r.twice}, worker peak RSS ${r.rssMb.toFixed(0)} MB`,
  )

async function main() {
  console.log(`bench:outbox on ${SERVER.replace(/\/\/[^@]*@/, '//')}: ${WORKERS} worker processes, ${CONCURRENCY} producers, ${DURATION} s a run, ${ROUNDS} rounds`)
  const scratch = await createScratchDatabase(SERVER)
  const database = await openDatabase({ databaseUrl: scratch.url, dataDir: '', poolSize: CONCURRENCY })
  const rawPool = new pg.Pool({ connectionString: scratch.url, max: CONCURRENCY })
  let queue: Queue | undefined
  try {
    await sql`CREATE TABLE bench_writes (id uuid PRIMARY KEY, at timestamptz NOT NULL)`.execute(database.db)
    await sql`CREATE TABLE bench_effects (task text PRIMARY KEY, ran_at_ms bigint NOT NULL, runs int NOT NULL DEFAULT 1)`.execute(database.db)
    await sql`CREATE TABLE raw_outbox (id bigserial PRIMARY KEY, task text NOT NULL)`.execute(database.db)
    // The producers' queue adds tasks only; the workers run them.
    queue = await openQueue(database, { pollIntervalMs: 500, maintenanceIntervalSeconds: 60, work: false })
    await queue.define(TASK, { batchSize: 20, expireInSeconds: 5, retryLimit: 5, retryDelaySeconds: 1 })

    const ratios: number[] = []
    for (let round = 1; round <= ROUNDS; round++) {
      console.log(`round ${round}`)
      const raw = await run('raw', database, queue, rawPool, scratch.url, `round ${round}: raw pg outbox`)
      print(raw)
      const ours = await run('queue', database, queue, rawPool, scratch.url, `round ${round}: task queue`)
      print(ours)
      ratios.push(ours.perSecond / raw.perSecond)
      console.log(`  queue / raw: ${(100 * ours.perSecond / raw.perSecond).toFixed(0)}%`)
    }
    console.log('a worker SIGKILLed midway and replaced')
    const chaos = await run('queue', database, queue, rawPool, scratch.url, 'task queue, one worker SIGKILLed', true)
    print(chaos)
    ratios.sort((a, b) => a - b)
    const middle = ratios.length / 2
    const median = ratios.length % 2 ? ratios[Math.floor(middle)]! : (ratios[middle - 1]! + ratios[middle]!) / 2
    console.log(`\nqueue / raw (median of ${ROUNDS}): ${(100 * median).toFixed(0)}% (target 50%)`)
    console.log(`with a worker SIGKILLed: lost ${chaos.lost}, ran twice ${chaos.twice} (target 0 and 0)`)
  } finally {
    await queue?.stop()
    await rawPool.end()
    await database.close()
    await scratch.drop()
  }
}

await main()
