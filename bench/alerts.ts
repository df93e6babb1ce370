// npm run bench:alerts — open requests matched against many saved alerts, beside the raw match query.
//
// On a scratch database on a PostgreSQL server, with the app in a child process (bench/app-server.ts):
//   - seeds BENCH_ALERTS (100,000) saved alerts in one metro area (Paris, about 33 × 30 km), for
//     workers of 20 alerts each, with radii of 300 m to 2 km and one or two of 40 subcategories
//     (8 categories of 5), written straight to the tables with their grid cells per category, as POST /alerts files them;
//   - signs up BENCH_PROBES (20) workers with a WebSocket open each and a saved alert of their own (through
//     POST /alerts), and a few clients;
//   - then, in alternating rounds so both see the same noise:
//       raw: the match query the app sends (the place's cells in the categories by the index, then distance), through `pg`,
//            at random points of the area, BENCH_CONCURRENCY in flight;
//       HTTP: POST /job open requests (no worker_id), each at a probe's alert place in its category,
//            BENCH_CONCURRENCY in flight; the time from the post to the probe's `job.alert` event is measured;
//   - and once, a few runs of the same query without the grid (every alert measured), to show what the index spares.
// Each open request also alerts the seeded workers whose alerts hold its place (about 20 here): their
// system messages, alerts and notifications are part of its cost.
//
// Settings (environment): BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
// BENCH_REDIS_URL (default redis://127.0.0.1:6379), BENCH_LIVE (redis | postgres, default redis),
// BENCH_ALERTS (100000), BENCH_PROBES (20), BENCH_DURATION (seconds a round each way, 5), BENCH_ROUNDS (2),
// BENCH_CONCURRENCY (8), DB_POOL_SIZE (10), LOG_LEVEL (the app's, info, to /dev/null).

import cliProgress from 'cli-progress'
import os from 'node:os'
import pg from 'pg'
import { v7 as uuidv7 } from 'uuid'
import { WebSocket } from 'ws'
import { cellsOfCircle, cellsOfPoint } from '../src/features/alerts/grid.js'
import { createScratchDatabase, deleteRedisKeys } from '../test/support/backends.js'
import { BenchServer, cpuProfileArgs } from './support/server.js'
import { benchHttp, type BenchUser } from './support/http.js'
import { LOAD_SETTINGS } from './support/marketplace.js'
import { positiveSetting } from './support/settings.js'

const env = process.env
const ALERTS = positiveSetting('BENCH_ALERTS', 100_000)
const PROBES = positiveSetting('BENCH_PROBES', 20)
const DURATION = positiveSetting('BENCH_DURATION', 5)
const ROUNDS = positiveSetting('BENCH_ROUNDS', 2)
const CONCURRENCY = positiveSetting('BENCH_CONCURRENCY', 8)
const POOL = positiveSetting('DB_POOL_SIZE', 10)
const DATABASE_SERVER = env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const REDIS_URL = env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379'
const LIVE = env.BENCH_LIVE || 'redis'
if (LIVE !== 'redis' && LIVE !== 'postgres') throw new Error('BENCH_LIVE must be redis or postgres')
const PASSWORD = 'correct horse battery'
const ALERTS_PER_WORKER = 20
const WARMUP = 2

// The metro area: Paris and around.
const AREA = { lat: 48.8566, lon: 2.3522, dLat: 0.15, dLon: 0.2 }
const randomPoint = () => ({ lat: AREA.lat + (Math.random() * 2 - 1) * AREA.dLat, lon: AREA.lon + (Math.random() * 2 - 1) * AREA.dLon })

// ---------------------------------------------------------------------------------------------
// HTTP and sockets

const { call, signUp, close: closeHttp } = benchHttp(CONCURRENCY * 2, PASSWORD)

// ---------------------------------------------------------------------------------------------
// Measuring

interface Measured { name: string; count: number; elapsedMs: number; latencies: number[]; eventLatencies: number[]; errors: number }

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN

const bars = new cliProgress.MultiBar(
  { format: '  {label} |{bar}| {value}/{total} {unit}  {rate}', barsize: 24, hideCursor: true, clearOnComplete: false, noTTYOutput: true, notTTYSchedule: 2_000 },
  cliProgress.Presets.shades_classic,
)

/** Runs `once` in CONCURRENCY loops for `durationS`; each answers its latency (and maybe its event's). */
async function run(label: string, durationS: number, once: () => Promise<{ ms: number; eventMs?: number }>, show = true): Promise<Measured> {
  const latencies: number[] = []
  const eventLatencies: number[] = []
  let errors = 0
  const started = performance.now()
  const deadline = started + durationS * 1000
  const bar = show ? bars.create(Math.round(durationS), 0, { label: label.padEnd(34), unit: 's', rate: '' }) : undefined
  const timer = setInterval(() => {
    const elapsed = (performance.now() - started) / 1000
    bar?.update(Math.min(Math.round(elapsed), Math.round(durationS)), { rate: `${Math.round(latencies.length / Math.max(elapsed, 0.001))}/s` })
  }, 500)
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < deadline) {
      try {
        const r = await once()
        latencies.push(r.ms)
        if (r.eventMs !== undefined) eventLatencies.push(r.eventMs)
      } catch (error) {
        errors++
        if (errors <= 3) console.error(`  ${label}: ${(error as Error).message}`)
      }
    }
  }))
  clearInterval(timer)
  const elapsedMs = performance.now() - started
  bar?.update(Math.round(durationS), { rate: `${Math.round(latencies.length / (elapsedMs / 1000))}/s` })
  bar?.stop()
  return { name: label, count: latencies.length, elapsedMs, latencies, eventLatencies, errors }
}

// ---------------------------------------------------------------------------------------------
// The match query as the app sends it (src/features/alerts/store.ts), and the same without the grid.

const MATCH = `WITH filed AS MATERIALIZED (
    SELECT DISTINCT c.alert_id FROM saved_alert_cells c WHERE c.cell = ANY ($3::bigint[]) AND c.category_id = ANY ($4::uuid[])
  ), near AS MATERIALIZED (
    SELECT a.worker_id, earth_distance(ll_to_earth(a.lat, a.lon), ll_to_earth($1::float8, $2::float8)) AS distance_m
      FROM filed f JOIN saved_alerts a ON a.id = f.alert_id
     WHERE earth_distance(ll_to_earth(a.lat, a.lon), ll_to_earth($1::float8, $2::float8)) <= a.radius_m AND a.worker_id <> $5
  )
  SELECT n.worker_id, min(n.distance_m) AS distance_m
    FROM near n
    JOIN users u ON u.id = n.worker_id AND u.deleted_at IS NULL AND u.suspended_at IS NULL AND 'WORKER' = ANY (u.roles)
   WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = $5 AND b.blocked_id = n.worker_id) OR (b.blocker_id = n.worker_id AND b.blocked_id = $5))
   GROUP BY n.worker_id ORDER BY 2, 1 LIMIT 500`
const SCAN = `SELECT a.worker_id, min(earth_distance(ll_to_earth(a.lat, a.lon), ll_to_earth($1::float8, $2::float8))) AS distance_m
  FROM saved_alerts a
  JOIN users u ON u.id = a.worker_id AND u.deleted_at IS NULL AND u.suspended_at IS NULL AND 'WORKER' = ANY (u.roles)
 WHERE a.category_ids && $3::uuid[]
   AND earth_distance(ll_to_earth(a.lat, a.lon), ll_to_earth($1::float8, $2::float8)) <= a.radius_m
   AND a.worker_id <> $4
   AND NOT EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = $4 AND b.blocked_id = a.worker_id) OR (b.blocker_id = a.worker_id AND b.blocked_id = $4))
 GROUP BY a.worker_id ORDER BY 2, 1 LIMIT 500`

// ---------------------------------------------------------------------------------------------

async function seedAlerts(pool: pg.Pool, categories: { id: string; parent: string }[]) {
  const workers = Math.ceil(ALERTS / ALERTS_PER_WORKER)
  const bar = bars.create(ALERTS, 0, { label: 'seeding saved alerts'.padEnd(34), unit: 'alerts', rate: '' })
  const started = performance.now()
  const BATCH = 2000
  let done = 0
  for (let w0 = 0; w0 < workers; w0 += BATCH / ALERTS_PER_WORKER) {
    const ids: string[] = []
    const alertRows: { id: string; worker: string; lat: number; lon: number; r: number; cats: string[] }[] = []
    for (let w = w0; w < Math.min(workers, w0 + BATCH / ALERTS_PER_WORKER); w++) {
      const worker = uuidv7()
      ids.push(worker)
      for (let k = 0; k < ALERTS_PER_WORKER && done + alertRows.length < ALERTS; k++) {
        const p = randomPoint()
        const first = categories[Math.floor(Math.random() * categories.length)]!.id
        const cats = Math.random() < 0.5 ? [first] : [first, categories[Math.floor(Math.random() * categories.length)]!.id]
        alertRows.push({ id: uuidv7(), worker, lat: p.lat, lon: p.lon, r: Math.round(300 + Math.random() * 1700), cats: [...new Set(cats)] })
      }
    }
    await pool.query(`INSERT INTO users (id, email, first_name, last_name, roles) SELECT id, 'seed-' || id || '@bench.example', 'Seed', 'Worker', ARRAY['WORKER'] FROM unnest($1::uuid[]) AS id`, [ids])
    await pool.query(
      `INSERT INTO saved_alerts (id, worker_id, lat, lon, radius_m, category_ids, created_at)
       SELECT a.id, a.worker_id, a.lat, a.lon, a.radius_m, a.category_ids, now() FROM json_populate_recordset(NULL::saved_alerts, $1::json) a`,
      [JSON.stringify(alertRows.map((a) => ({ id: a.id, worker_id: a.worker, lat: a.lat, lon: a.lon, radius_m: a.r, category_ids: `{${a.cats.join(',')}}` })))],
    )
    const cells: string[] = []
    const cats: string[] = []
    const of: string[] = []
    for (const a of alertRows) for (const cell of cellsOfCircle(a.lat, a.lon, a.r)) for (const c of a.cats) {
      cells.push(String(cell))
      cats.push(c)
      of.push(a.id)
    }
    await pool.query('INSERT INTO saved_alert_cells (cell, category_id, alert_id) SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::uuid[])', [cells, cats, of])
    done += alertRows.length
    bar.update(done, { rate: `${Math.round(done / ((performance.now() - started) / 1000))}/s` })
    if (done >= ALERTS) break
  }
  bar.stop()
  await pool.query('ANALYZE users; ANALYZE saved_alerts; ANALYZE saved_alert_cells')
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM saved_alert_cells')
  return { workers, cells: Number(rows[0]!.n) }
}

async function main() {
  const cpus = os.cpus()
  console.log(`bench:alerts — ${cpus.length} × ${cpus[0]?.model.trim()}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, Node ${process.version}`)
  console.log(`${ALERTS} saved alerts in one metro area, ${PROBES} probe workers on sockets, ${CONCURRENCY} in flight, ${ROUNDS} rounds of ${DURATION} s each way; app live store: ${LIVE}; ` +
    `server in a child process; database: a scratch database on ${new URL(DATABASE_SERVER).host}`)
  const scratch = await createScratchDatabase(DATABASE_SERVER)
  const redisPrefix = `bench-alerts-${Date.now().toString(36)}:`
  let server: BenchServer
  try {
    server = await BenchServer.start(new URL('./app-server.ts', import.meta.url), {
      name: 'alerts',
      env: {
        DATABASE_URL: scratch.url,
        ...(LIVE === 'redis' ? { REDIS_URL, REDIS_PREFIX: redisPrefix } : {}),
        DB_POOL_SIZE: String(POOL),
        ...LOAD_SETTINGS,
        LOG_LEVEL: env.LOG_LEVEL ?? 'info',
        PORT: '0',
      },
      execArgv: cpuProfileArgs(),
    })
  } catch (error) {
    await scratch.drop()
    throw error
  }
  const pool = new pg.Pool({ connectionString: scratch.url, max: POOL })
  const sockets: WebSocket[] = []
  const results: Measured[] = []
  let scanMs: number[] = []
  let indexedMs: number[] = []
  let matchesPerRequest = 0
  let seeded = { workers: 0, cells: 0 }
  try {
    const base = server.url
    // Categories straight into the table before the app first reads them: 8 of 5 subcategories.
    const categories: { id: string; parent: string }[] = []
    for (let p = 0; p < 8; p++) {
      const parent = uuidv7()
      await pool.query('INSERT INTO categories (id, parent_id, name, position) VALUES ($1, NULL, $2, $3)', [parent, `Trade ${p}`, p])
      for (let s = 0; s < 5; s++) {
        const id = uuidv7()
        await pool.query('INSERT INTO categories (id, parent_id, name, position) VALUES ($1, $2, $3, $4)', [id, parent, `Trade ${p}.${s}`, s])
        categories.push({ id, parent })
      }
    }
    seeded = await seedAlerts(pool, categories)

    const clients = await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => signUp(base, 'client', i, ['CLIENT'])))
    // Probes: a socket each, and an alert each (through the API), at a place and in a category of their own.
    const waiting = new Map<string, (at: number) => void>()
    const early = new Map<string, number>()
    const probes = await Promise.all(Array.from({ length: PROBES }, async (_, i) => {
      const user = await signUp(base, 'probe', i, ['WORKER'])
      const place = randomPoint()
      const category = categories[i % categories.length]!
      const res = await call(base, 'POST', '/alerts', user.token, { ...place, radius: 500, category_ids: [category.id] })
      if (res.status !== 201) throw new Error(`POST /alerts answered ${res.status}: ${JSON.stringify(res.json)}`)
      const ws = new WebSocket(`${base.replace('http', 'ws')}/ws`, { headers: { authorization: `Bearer ${user.token}` }, perMessageDeflate: false })
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve())
        ws.once('error', reject)
      })
      ws.on('message', (raw) => {
        const at = performance.now()
        const event = JSON.parse(String(raw)) as { type: string; data: { id?: string } }
        if (event.type !== 'job.alert' || !event.data.id) return
        const key = `${user.id}:${event.data.id}`
        const resolve = waiting.get(key)
        if (resolve) resolve(at)
        else early.set(key, at)
      })
      sockets.push(ws)
      return { user, place, category }
    }))

    let next = 0
    const viaHttp = async () => {
      const i = next++
      const probe = probes[i % probes.length]!
      const client = clients[i % clients.length]!
      const t0 = performance.now()
      const res = await call(base, 'POST', '/job', client.token, { title: 'Fix a leaking tap', category_id: probe.category.id, location: probe.place, expires_in: 3600 })
      const ms = performance.now() - t0
      if (res.status !== 201) throw new Error(`POST /job answered ${res.status}: ${JSON.stringify(res.json)}`)
      const key = `${probe.user.id}:${res.json.id}`
      const seen = early.get(key)
      early.delete(key)
      const at = seen ?? (await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(key)
          reject(new Error('no job.alert within 10 s'))
        }, 10_000)
        waiting.set(key, (t) => {
          clearTimeout(timer)
          waiting.delete(key)
          resolve(t)
        })
      }))
      return { ms, eventMs: at - t0 }
    }
    const clientId = clients[0]!.id
    let matched = 0
    let queries = 0
    const raw = async () => {
      const p = randomPoint()
      const c = categories[Math.floor(Math.random() * categories.length)]!
      const t0 = performance.now()
      const { rows } = await pool.query({ name: 'match', text: MATCH, values: [p.lat, p.lon, cellsOfPoint(p.lat, p.lon).map(String), [c.id, c.parent], clientId] })
      matched += rows.length
      queries++
      return { ms: performance.now() - t0 }
    }

    if (env.BENCH_EXPLAIN) {
      // The plan of one match (and of a request's whole cost is HTTP and writes on top).
      const p = randomPoint()
      const c = categories[0]!
      const explained = await pool.query(`EXPLAIN (ANALYZE, BUFFERS) ${MATCH}`, [p.lat, p.lon, cellsOfPoint(p.lat, p.lon).map(String), [c.id, c.parent], clientId])
      console.log(explained.rows.map((r: Record<string, string>) => `    ${r['QUERY PLAN']}`).join('\n'))
    }
    await run('', WARMUP, raw, false)
    await run('', WARMUP, viaHttp, false)
    server.takePeakRss()
    const rawRuns: Measured[] = []
    const httpRuns: Measured[] = []
    for (let round = 1; round <= ROUNDS; round++) {
      rawRuns.push(await run(`raw match query, round ${round}/${ROUNDS}`, DURATION, raw))
      httpRuns.push(await run(`POST /job open, round ${round}/${ROUNDS}`, DURATION, viaHttp))
    }
    matchesPerRequest = matched / Math.max(1, queries)
    // The same query without the grid, a few times, one at a time, beside the indexed one at the
    // same points: what the index spares.
    for (let i = 0; i < 7; i++) {
      const p = randomPoint()
      const c = categories[i % categories.length]!
      let t0 = performance.now()
      await pool.query(SCAN, [p.lat, p.lon, [c.id, c.parent], clientId])
      scanMs.push(performance.now() - t0)
      t0 = performance.now()
      await pool.query({ name: 'match', text: MATCH, values: [p.lat, p.lon, cellsOfPoint(p.lat, p.lon).map(String), [c.id, c.parent], clientId] })
      indexedMs.push(performance.now() - t0)
    }
    scanMs = scanMs.sort((a, b) => a - b)
    indexedMs = indexedMs.sort((a, b) => a - b)
    const merge = (name: string, runs: Measured[]): Measured => ({
      name,
      count: runs.reduce((n, r) => n + r.count, 0),
      elapsedMs: runs.reduce((n, r) => n + r.elapsedMs, 0),
      latencies: runs.flatMap((r) => r.latencies),
      eventLatencies: runs.flatMap((r) => r.eventLatencies),
      errors: runs.reduce((n, r) => n + r.errors, 0),
    })
    results.push(merge('raw match query (pg, indexed cell)', rawRuns))
    results.push(merge('POST /job open request', httpRuns))
    console.log(`\n  server peak RSS: ${Math.round(server.takePeakRss() / 1024 / 1024)} MB`)
  } finally {
    bars.stop()
    for (const ws of sockets) ws.terminate()
    await pool.end()
    await server.stop()
    closeHttp()
    await scratch.drop()
    if (LIVE === 'redis') await deleteRedisKeys(REDIS_URL, redisPrefix)
  }

  console.log(`  seeded: ${ALERTS} alerts of ${seeded.workers} workers, filed under ${seeded.cells} (cell, category) rows (${(seeded.cells / ALERTS).toFixed(1)} an alert); the raw query found ${matchesPerRequest.toFixed(1)} workers a request`)
  console.log(`\n  ${'measurement'.padEnd(36)} ${'per s'.padStart(8)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'event p50'.padStart(10)} ${'event p99'.padStart(10)} ${'errors'.padStart(7)}`)
  for (const r of results) {
    const sorted = r.latencies.slice().sort((a, b) => a - b)
    const events = r.eventLatencies.slice().sort((a, b) => a - b)
    const rate = r.count / (r.elapsedMs / 1000)
    const ev = (p: number) => (events.length > 0 ? percentile(events, p).toFixed(1) : '-')
    console.log(`  ${r.name.padEnd(36)} ${rate.toFixed(0).padStart(8)} ${percentile(sorted, 50).toFixed(1).padStart(7)} ${percentile(sorted, 99).toFixed(1).padStart(7)} ${ev(50).padStart(10)} ${ev(99).padStart(10)} ${String(r.errors).padStart(7)}`)
  }
  const [rawResult, httpResult] = results as [Measured, Measured]
  const ratio = httpResult.count / httpResult.elapsedMs / (rawResult.count / rawResult.elapsedMs)
  console.log(`\n  open requests / raw match queries a second: ${(ratio * 100).toFixed(1)}%`)
  console.log(`  one at a time at the same points: the match query ${percentile(indexedMs, 50).toFixed(1)} ms (median of ${indexedMs.length}), ` +
    `the same without the grid (every alert measured) ${percentile(scanMs, 50).toFixed(1)} ms: ${(percentile(scanMs, 50) / percentile(indexedMs, 50)).toFixed(1)}×`)
  console.log(`  load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  console.log(`  load generator RSS: ${Math.round(process.memoryUsage.rss() / 1024 / 1024)} MB`)
}

main().catch((error) => {
  bars.stop()
  console.error(error)
  process.exit(1)
})
