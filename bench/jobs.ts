// npm run bench:jobs — what the job workflow costs through HTTP, beside raw SQL, in one run.
//
// On a scratch database on a PostgreSQL server, with the app in a child process (bench/app-server.ts):
//   1. raw `pg`: the same reads and writes as the workflow, in the same statements the app sends,
//      without HTTP or the app: an offer (read both users and the blocks between them; then the job, its log
//      entry, the worker's message and both users' thread in one statement) and three moves (read
//      the job with its users and log; then the new version, its log entry, the message and the
//      threads in one statement), `BENCH_CONCURRENCY` cycles in flight over a pool as large as the app's;
//   2. the app: the same cycles through HTTP — POST /job, then POST /job/{id}/status ACCEPTED,
//      STARTED, COMPLETED — signed in, with the same number of cycles in flight.
// Each request or transaction is one "move"; a cycle is four. The figures: moves per second,
// p50/p99 latency of one move, the server's peak RSS, and the ratio of the two rates.
//
// Settings (environment): BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres;
// a scratch database is made and dropped), BENCH_REDIS_URL (default redis://127.0.0.1:6379),
// BENCH_LIVE (redis | postgres: the app's live store, default redis), BENCH_DURATION (seconds a
// measurement, default 5), BENCH_ROUNDS (raw and HTTP take turns this many times, so that both see
// the same noise from other work on the machine; default 3), BENCH_CONCURRENCY (cycles in flight, default 32), BENCH_PAIRS (clients
// and workers, default 32), DB_POOL_SIZE (both pools, default 10), LOG_LEVEL (the app's, default
// info, to /dev/null); BENCH_CPU_PROF=<dir> writes the app's CPU profiles there.

import cliProgress from 'cli-progress'
import os from 'node:os'
import pg from 'pg'
import sharp from 'sharp'
import { v7 as uuidv7 } from 'uuid'
import { createScratchDatabase, deleteRedisKeys } from '../test/support/backends.js'
import { BenchServer, cpuProfileArgs } from './support/server.js'
import { benchHttp, type BenchUser } from './support/http.js'
import { LOAD_SETTINGS } from './support/marketplace.js'
import { positiveSetting } from './support/settings.js'

const env = process.env
const DURATION = positiveSetting('BENCH_DURATION', 5)
const ROUNDS = positiveSetting('BENCH_ROUNDS', 3)
const WARMUP = 5
const CONCURRENCY = positiveSetting('BENCH_CONCURRENCY', 32)
const PAIRS = positiveSetting('BENCH_PAIRS', 32)
const POOL = positiveSetting('DB_POOL_SIZE', 10)
const DATABASE_SERVER = env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const REDIS_URL = env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379'
const LIVE = env.BENCH_LIVE || 'redis'
if (LIVE !== 'redis' && LIVE !== 'postgres') throw new Error('BENCH_LIVE must be redis or postgres')
const PASSWORD = 'correct horse battery'

// ---------------------------------------------------------------------------------------------
// The server process

const startServer = (settings: Record<string, string>) =>
  BenchServer.start(new URL('./app-server.ts', import.meta.url), {
    name: 'jobs',
    env: settings,
    execArgv: cpuProfileArgs(),
  })

// ---------------------------------------------------------------------------------------------
// HTTP, keep-alive, one socket per cycle in flight

const { call, signUp, close: closeHttp } = benchHttp(CONCURRENCY * 2, PASSWORD)

// ---------------------------------------------------------------------------------------------
// Measuring

interface Measured {
  name: string
  moves: number
  elapsedMs: number
  latencies: number[]
  errors: number
  rssMb?: number
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN

const bars = new cliProgress.MultiBar(
  { format: '  {label} |{bar}| {value}/{total} s  {rate}', barsize: 24, hideCursor: true, clearOnComplete: false, noTTYOutput: true, notTTYSchedule: 2_000 },
  cliProgress.Presets.shades_classic,
)

/** Runs `cycle` in `CONCURRENCY` loops for `durationS`; each cycle answers the latencies of its moves. */
async function run(label: string, durationS: number, cycle: (loop: number) => Promise<number[]>, show = true): Promise<Measured> {
  const latencies: number[] = []
  let errors = 0
  const started = performance.now()
  const deadline = started + durationS * 1000
  const bar = show ? bars.create(Math.round(durationS), 0, { label: label.padEnd(40), rate: '' }) : undefined
  const timer = setInterval(() => {
    const elapsed = (performance.now() - started) / 1000
    bar?.update(Math.min(Math.round(elapsed), Math.round(durationS)), { rate: `${Math.round(latencies.length / Math.max(elapsed, 0.001))} moves/s` })
  }, 500)
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, loop) => {
      while (performance.now() < deadline) {
        try {
          latencies.push(...(await cycle(loop)))
        } catch (error) {
          errors++
          if (errors <= 3) console.error(`  ${label}: ${(error as Error).message}`)
        }
      }
    }),
  )
  clearInterval(timer)
  const elapsedMs = performance.now() - started
  bar?.update(Math.round(durationS), { rate: `${Math.round(latencies.length / (elapsedMs / 1000))} moves/s` })
  bar?.stop()
  return { name: label, moves: latencies.length, elapsedMs, latencies, errors }
}

const timed = async <T>(work: () => Promise<T>, into: number[]): Promise<T> => {
  const t0 = performance.now()
  const result = await work()
  into.push(performance.now() - t0)
  return result
}

// ---------------------------------------------------------------------------------------------
// The two ways of doing a cycle

function httpCycle(base: string, clients: BenchUser[], workers: BenchUser[]) {
  return async (loop: number) => {
    const client = clients[loop % clients.length]!
    const worker = workers[loop % workers.length]!
    const lat: number[] = []
    const offer = await timed(() => call(base, 'POST', '/job', client.token, { worker_id: worker.id, title: 'Fix the kitchen tap', description: 'It drips.' }), lat)
    if (offer.status !== 201) throw new Error(`POST /job answered ${offer.status}: ${JSON.stringify(offer.json)}`)
    for (const status of ['ACCEPTED', 'STARTED', 'COMPLETED']) {
      // An accept names the version of the offer it accepts (the offer as made: 1).
      const headers: Record<string, string> = status === 'ACCEPTED' ? { 'if-match': `"${offer.json.version}"` } : {}
      const res = await timed(() => call(base, 'POST', `/job/${offer.json.id}/status`, worker.token, { status }, 'application/json', headers), lat)
      if (res.status !== 200) throw new Error(`${status} answered ${res.status}: ${JSON.stringify(res.json)}`)
    }
    return lat
  }
}

// The statements the app sends, as text: an offer reads both users and the blocks between them, then writes the
// job, its log entry, the message and both users' thread in one statement; a move reads the job
// with its users and log, then writes the new version (if still at the one read), its log entry,
// the message and the threads in one statement.
const CONTEXT = `select "id", "email", "first_name", "last_name", "roles", "picture_etag", "created_at", "updated_at", "deleted_at",
  (select "blocker_id" from "blocks" where (("blocker_id" = $1 and "blocked_id" = $2) or ("blocker_id" = $3 and "blocked_id" = $4)) limit $5) as "blocker_id"
  from "users" where "id" in ($6, $7)`
const MESSAGES = (guard: string, at: number) => `said AS (
      INSERT INTO messages SELECT r.* FROM json_populate_recordset(NULL::messages, $${at}::json) r WHERE EXISTS (SELECT 1 FROM ${guard})
    ),
    threads AS (
      INSERT INTO conversations (user_id, peer_id, last_message_id)
      SELECT t.user_id, t.peer_id, t.last_message_id FROM json_populate_recordset(NULL::conversations, $${at + 1}::json) t WHERE EXISTS (SELECT 1 FROM ${guard})
      ON CONFLICT (user_id, peer_id) DO UPDATE SET last_message_id = greatest(conversations.last_message_id, excluded.last_message_id)
    )`
const CREATE = `WITH created AS (insert into "jobs" ("id", "client_id", "worker_id", "title", "description", "status", "price_amount", "price_currency", "scheduled_at", "location_lat", "location_lon", "location_address", "expires_at", "remind_at", "completed_at", "due_at", "version", "created_at", "updated_at")
    values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) returning *),
  logged AS (insert into "job_status_log" ("job_id", "status", "by", "at", "reason") values ($20, $21, $22, $23, $24)),
  ${MESSAGES('created', 25)} SELECT * FROM created`
const READ = `select "jobs".*, "c"."id" as "c_id", "c"."first_name" as "c_first_name", "c"."last_name" as "c_last_name", "c"."picture_etag" as "c_picture_etag", "c"."deleted_at" as "c_deleted_at",
  "w"."id" as "w_id", "w"."first_name" as "w_first_name", "w"."last_name" as "w_last_name", "w"."picture_etag" as "w_picture_etag", "w"."deleted_at" as "w_deleted_at",
  (select coalesce(json_agg(agg), '[]') from (select "l"."job_id", "l"."status", "l"."by", "l"."at", "l"."reason" from "job_status_log" as "l" where "l"."job_id" = "jobs"."id" order by "l"."id") as agg) as "status_log"
  from "jobs" inner join "users" as "c" on "c"."id" = "jobs"."client_id" inner join "users" as "w" on "w"."id" = "jobs"."worker_id" where "jobs"."id" = $1`
const MOVE = `WITH changed AS (update "jobs" set "status" = $1, "updated_at" = $2, "due_at" = $3, "remind_at" = $4, "version" = version + 1 where "id" = $5 and "version" = $6 returning *),
  logged AS (INSERT INTO job_status_log (job_id, status, "by", at, reason) SELECT id, $7::text, $8::uuid, $9::timestamptz, $10::text FROM changed),
  ${MESSAGES('changed', 11)} SELECT * FROM changed`

function rawCycle(pool: pg.Pool, clients: BenchUser[], workers: BenchUser[]) {
  // Prepared once per connection, as the app prepares its statements.
  const run = (name: string, text: string, values: unknown[]) => pool.query({ name, text, values })
  const said = (jobId: string, from: string, to: string, text: string) => {
    const id = uuidv7()
    const [a, b] = from < to ? [from, to] : [to, from]
    return [
      JSON.stringify([{ id, sender_id: from, recipient_id: to, text, kind: 'system', job_id: jobId, created_at: new Date(), read_at: null }]),
      JSON.stringify([{ user_id: a, peer_id: b, last_message_id: id }, { user_id: b, peer_id: a, last_message_id: id }]),
    ]
  }
  return async (loop: number) => {
    const client = clients[loop % clients.length]!
    const worker = workers[loop % workers.length]!
    const lat: number[] = []
    const jobId = uuidv7()
    await timed(async () => {
      const now = new Date()
      const users = await run('context', CONTEXT, [client.id, worker.id, worker.id, client.id, 1, client.id, worker.id])
      if (users.rows.length !== 2 || users.rows[0].blocker_id !== null) throw new Error('no users, or blocked')
      const expires = new Date(now.getTime() + 72 * 3_600_000)
      const remind = new Date(now.getTime() + 48 * 3_600_000)
      await run('create', CREATE, [
        jobId, client.id, worker.id, 'Fix the kitchen tap', 'It drips.', 'REQUESTED', null, null, null, null, null, null, expires, remind, null, remind, 1, now, now,
        jobId, 'REQUESTED', client.id, now, null,
        ...said(jobId, client.id, worker.id, 'Bench Client offers you a job: "Fix the kitchen tap" for €25.00.'),
      ])
    }, lat)
    for (const status of ['ACCEPTED', 'STARTED', 'COMPLETED']) {
      await timed(async () => {
        const now = new Date()
        const { rows } = await run('read', READ, [jobId])
        if (rows.length !== 1) throw new Error('no job')
        const moved = await run('move', MOVE, [
          status, now, null, null, jobId, rows[0].version,
          status, worker.id, now, null,
          ...said(jobId, worker.id, client.id, `Bench Worker moved "Fix the kitchen tap" to ${status}.`),
        ])
        if (moved.rows.length !== 1) throw new Error('the job changed')
      }, lat)
    }
    return lat
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const cpus = os.cpus()
  console.log(`bench:jobs — ${cpus.length} × ${cpus[0]?.model.trim()}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, Node ${process.version}`)
  console.log(`${CONCURRENCY} cycles in flight, ${PAIRS} client/worker pairs, ${ROUNDS} rounds of ${DURATION} s each way after ${WARMUP} s warm-up, pools of ${POOL}; ` +
    `app live store: ${LIVE}; server in a child process, logs at ${env.LOG_LEVEL ?? 'info'} to /dev/null; database: a scratch database on ${new URL(DATABASE_SERVER).host}`)
  const scratch = await createScratchDatabase(DATABASE_SERVER)
  const redisPrefix = `bench-jobs-${Date.now().toString(36)}:`
  let server: BenchServer
  try {
    server = await startServer({
      DATABASE_URL: scratch.url,
      ...(LIVE === 'redis' ? { REDIS_URL, REDIS_PREFIX: redisPrefix } : {}),
      DB_POOL_SIZE: String(POOL),
      // The workflow is measured, not limits or mail confirmation; offers are unpriced, so no
      // money moves (bench:payments measures that).
      ...LOAD_SETTINGS,
      LOG_LEVEL: env.LOG_LEVEL ?? 'info',
      PORT: '0',
    })
  } catch (error) {
    await scratch.drop()
    throw error
  }
  const pool = new pg.Pool({ connectionString: scratch.url, max: POOL })
  const results: Measured[] = []
  try {
    const base = server.url
    const picture = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 30, g: 120, b: 200 } } }).jpeg().toBuffer()
    const clients = await Promise.all(Array.from({ length: PAIRS }, (_, i) => signUp(base, 'client', i, ['CLIENT'])))
    const workers = await Promise.all(Array.from({ length: PAIRS }, async (_, i) => {
      const w = await signUp(base, 'worker', i, ['WORKER'])
      const res = await call(base, 'PUT', '/user/picture', w.token, picture, 'image/jpeg')
      if (res.status !== 200) throw new Error(`picture upload failed: ${JSON.stringify(res.json)}`)
      return w
    }))

    const raw = rawCycle(pool, clients, workers)
    const viaHttp = httpCycle(base, clients, workers)
    await run('', WARMUP, raw, false)
    await run('', WARMUP, viaHttp, false)
    server.takePeakRss()
    const rawRuns: Measured[] = []
    const httpRuns: Measured[] = []
    for (let round = 1; round <= ROUNDS; round++) {
      rawRuns.push(await run(`raw pg, round ${round}/${ROUNDS}`, DURATION, raw))
      httpRuns.push(await run(`HTTP, round ${round}/${ROUNDS}`, DURATION, viaHttp))
    }
    const merge = (name: string, runs: Measured[]): Measured => ({
      name,
      moves: runs.reduce((n, r) => n + r.moves, 0),
      elapsedMs: runs.reduce((n, r) => n + r.elapsedMs, 0),
      latencies: runs.flatMap((r) => r.latencies),
      errors: runs.reduce((n, r) => n + r.errors, 0),
    })
    results.push(merge('raw pg (same inserts and updates)', rawRuns))
    results.push({ ...merge('HTTP: POST /job + 3 moves', httpRuns), rssMb: Math.round(server.takePeakRss() / 1024 / 1024) })
  } finally {
    bars.stop()
    await pool.end()
    await server.stop()
    closeHttp()
    await scratch.drop()
    if (LIVE === 'redis') await deleteRedisKeys(REDIS_URL, redisPrefix)
  }

  console.log(`\n  ${'measurement'.padEnd(36)} ${'moves/s'.padStart(9)} ${'cycles/s'.padStart(9)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'RSS MB'.padStart(7)} ${'errors'.padStart(7)}`)
  for (const r of results) {
    const sorted = r.latencies.slice().sort((a, b) => a - b)
    const rate = r.moves / (r.elapsedMs / 1000)
    console.log(
      `  ${r.name.padEnd(36)} ${rate.toFixed(0).padStart(9)} ${(rate / 4).toFixed(0).padStart(9)} ${percentile(sorted, 50).toFixed(1).padStart(7)} ${percentile(sorted, 99).toFixed(1).padStart(7)} ${(r.rssMb === undefined ? '-' : String(r.rssMb)).padStart(7)} ${String(r.errors).padStart(7)}`,
    )
  }
  const [rawResult, httpResult] = results as [Measured, Measured]
  const ratio = httpResult.moves / (httpResult.elapsedMs / 1000) / (rawResult.moves / (rawResult.elapsedMs / 1000))
  console.log(`\n  HTTP / raw pg: ${Math.round(ratio * 100)}% (target 40%: ${ratio >= 0.4 ? 'met' : 'MISSED'})`)
  console.log(`  load generator RSS: ${Math.round(process.memoryUsage.rss() / 1024 / 1024)} MB`)
}

main().catch((error) => {
  bars.stop()
  console.error(error)
  process.exit(1)
})
