// npm run bench:scenario — a whole marketplace at once, on 1, 2 and 4 API processes.
//
// The API as deployed (dist/src/server.js with WORKERS=N) on a scratch database of a PostgreSQL
// server and a key prefix of a Redis server. PAIRS clients and as many workers sign up through the
// API (pictures, payouts), every one of them holds a socket (/ws) and every worker is on the map.
// Then a fixed mix of arrivals (Marketplace.oneRequest) goes out at a fixed rate, open model: a
// request leaves on schedule whatever the answers before it take, so slow answers don't slow the
// load. The mix, in percent of arrivals:
//   30 workers post their location (POST /location)
//   25 clients search near them (GET /search, 5 km, 20 workers)
//   20 messages, either way, delivered over the receiver's socket (POST /send)
//   10 inbox pages (GET /inbox)
//   15 job steps: a paid offer (POST /job with pm_card_visa), accept, start, complete, approve
//      (the worker is paid through the queue)
// For each process count the rate starts at --start and grows by --step for --duration seconds a
// step (after --warmup seconds not counted) while p99 stays under 100 ms with zero errors (any
// answer that is not 2xx, a timeout or a refused connection). It prints each step, then per
// process count the highest rate held and each route's req/s, p50, p99 and errors at that rate;
// the target is 2 processes holding 1.3 times or more the rate of 1.
//
// This machine's cores are shared by everything: the load generator (this process) is pinned to
// the last core with taskset (--generator-cpu); the API processes, PostgreSQL and Redis are not
// pinned (pinning the API to fewer cores than its processes would measure the pinning, not the
// processes). Each step prints the cores each part kept busy over its measured seconds (the API's
// processes, PostgreSQL's and Redis' from /proc, the generator, anything else) and those left idle,
// and the rate held its CPU an arrival: what another process can add is what is left idle. And
// PostgreSQL's commits a second in the scratch database, and the server's WAL flushes (each a
// wait on the disk for the commits it carries).
//
//   npm run bench:scenario -- [--processes 1,2,4] [--pairs 100] [--start 100] [--step 1.25]
//                             [--duration 10] [--warmup 5] [--generator-cpu N] [--api-log FILE] [--steps N]
// (--api-log appends the API's output, warnings and errors, to FILE; --steps stops each process
// count after N steps.)
// Settings (environment): BENCH_DATABASE_URL (a PostgreSQL server; a scratch database is made and
// dropped), BENCH_REDIS_URL, BENCH_CPU_PROF (a directory for the API processes' CPU profiles).

import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import os from 'node:os'
import { parseArgs } from 'node:util'
import cliProgress from 'cli-progress'
import pg from 'pg'
import { createScratchDatabase, deleteRedisKeys } from '../test/support/backends.js'
import { freePort } from '../test/support/processes.js'
import { commandMicros, machineMicros, processMicros } from './support/cpu.js'
import { cpuProfileArgs } from './support/server.js'
import { LOAD_SETTINGS, Marketplace, type Answer, type Mix } from './support/marketplace.js'

const { values: flags } = parseArgs({
  options: {
    processes: { type: 'string', default: '1,2,4' },
    pairs: { type: 'string', default: '100' },
    start: { type: 'string', default: '100' },
    step: { type: 'string', default: '1.25' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '5' },
    'generator-cpu': { type: 'string', default: String(os.availableParallelism() - 1) },
    'api-log': { type: 'string' },
    steps: { type: 'string', default: '1000' },
  },
})
const PROCESSES = flags.processes.split(',').map(Number)
const PAIRS = Number(flags.pairs)
const START = Number(flags.start)
const STEP = Number(flags.step)
const DURATION = Number(flags.duration) * 1000
const WARMUP = Number(flags.warmup) * 1000
const STEPS = Number(flags.steps)
const P99_BOUND = 100
const MIX: Mix = { signIn: 0, location: 30, search: 25, send: 20, inbox: 10 }
const DATABASE_SERVER = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const REDIS_URL = process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379'
const HOME = { lat: 48.8566, lon: 2.3522 }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : 0)

let apiPort = 0
let api: ChildProcess | undefined
let apiLog = ''

async function startApi(processes: number, database: string, prefix: string) {
  apiPort = await freePort()
  apiLog = ''
  api = spawn(process.execPath, [...cpuProfileArgs(), 'dist/src/server.js'], {
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      DATABASE_URL: database,
      REDIS_URL,
      REDIS_PREFIX: prefix,
      WORKERS: String(processes),
      PORT: String(apiPort),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      ...LOAD_SETTINGS,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const keep = (d: Buffer) => {
    apiLog += d
    if (flags['api-log']) appendFileSync(flags['api-log'], d)
  }
  api.stdout!.on('data', keep)
  api.stderr!.on('data', keep)
  for (let i = 0; i < 1200; i++) {
    const status = await fetch(`http://127.0.0.1:${apiPort}/ready`).then((r) => r.status, () => 0)
    if (status === 200) return
    if (api.exitCode !== null) break
    await sleep(100)
  }
  throw new Error(`the API did not get ready:\n${apiLog.slice(-2000)}`)
}

async function stopApi() {
  const child = api!
  if (child.exitCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  await exited
}

/** The API's processes: the primary and its workers. */
const apiPids = () => [api!.pid!, ...spawnSync('pgrep', ['-P', String(api!.pid)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number)]

/** Resident memory of the API's processes (the primary and its workers), in MB. */
function apiRssMb() {
  const kb = apiPids().reduce((sum, pid) => sum + Number(spawnSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim() || 0), 0)
  return Math.round(kb / 1024)
}

interface RouteFigures { op: string; rate: number; p50: number; p99: number; errors: number }
interface Step { rate: number; sent: number; p50: number; p99: number; errors: number; holds: boolean; routes: RouteFigures[]; cpu: CpuShares; commits: number; flushes: number; rssMb: number; delivered: number }

/** PostgreSQL's commits in the scratch database so far, and the server's WAL flushes (fsyncs, every database's). */
async function databaseCounts(client: pg.Client) {
  const { rows } = await client.query<{ commits: string; flushes: string }>(
    'SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits, (SELECT wal_sync FROM pg_stat_wal) AS flushes',
  )
  return { commits: Number(rows[0]!.commits), flushes: Number(rows[0]!.flushes) }
}

/** CPU so far of each part of the run, in microseconds (PostgreSQL and Redis when on this machine). */
function cpuParts() {
  const own = process.cpuUsage()
  return {
    api: apiPids().reduce((sum, pid) => sum + (processMicros(pid) ?? 0), 0),
    postgres: commandMicros('postgres'),
    redis: commandMicros('redis-server'),
    generator: own.user + own.system,
    ...machineMicros(),
  }
}
type CpuParts = ReturnType<typeof cpuParts>
/** Cores each part kept busy between two readings (the machine's idle ones too). */
type CpuShares = Record<Exclude<keyof CpuParts, 'cores'> | 'other', number>

function cpuShares(before: CpuParts, after: CpuParts): CpuShares {
  const wall = (after.busy + after.idle - before.busy - before.idle) / after.cores
  const cores = (key: Exclude<keyof CpuParts, 'cores'>) => (after[key] - before[key]) / wall
  const shares = { api: cores('api'), postgres: cores('postgres'), redis: cores('redis'), generator: cores('generator'), busy: cores('busy'), idle: cores('idle') }
  return { ...shares, other: Math.max(0, shares.busy - shares.api - shares.postgres - shares.redis - shares.generator) }
}

const databaseText = (s: Step) =>
  `PostgreSQL: ${Math.round(s.commits)} commits/s (${(s.commits / s.sent).toFixed(2)} an arrival), the server's WAL flushes ${Math.round(s.flushes)}/s`

const coresText = (c: CpuShares) =>
  `cores: API ${c.api.toFixed(2)}  PostgreSQL ${c.postgres.toFixed(2)}  Redis ${c.redis.toFixed(2)}  generator ${c.generator.toFixed(2)}  other ${c.other.toFixed(2)}  idle ${c.idle.toFixed(2)}`

function figures(answers: Answer[], seconds: number) {
  const isError = (a: Answer) => typeof a.status !== 'number' || a.status >= 300
  const summary = (list: Answer[]) => {
    const times = list.map((a) => a.end - a.start).sort((x, y) => x - y)
    return { rate: list.length / seconds, p50: percentile(times, 50), p99: percentile(times, 99), errors: list.filter(isError).length }
  }
  const ops = [...new Set(answers.map((a) => a.op))].sort()
  return { all: summary(answers), routes: ops.map((op) => ({ op, ...summary(answers.filter((a) => a.op === op)) })) }
}

async function step(market: Marketplace, rate: number, stats: pg.Client): Promise<Step> {
  let running = true
  const deliveredBefore = market.delivered
  const started = performance.now()
  const load = market.run(MIX, rate, () => running)
  const bar = new cliProgress.SingleBar({ format: `  ${String(Math.round(rate)).padStart(5)} arrivals/s |{bar}| {value}/{total} s`, hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic)
  bar.start(Math.round((WARMUP + DURATION) / 1000), 0)
  const ticker = setInterval(() => bar.update(Math.round((performance.now() - started) / 1000)), 500)
  await sleep(WARMUP)
  const cpuBefore = cpuParts()
  const countsBefore = await databaseCounts(stats)
  await sleep(DURATION)
  const cpu = cpuShares(cpuBefore, cpuParts())
  const counts = await databaseCounts(stats)
  running = false
  await load
  clearInterval(ticker)
  bar.stop()
  // What left in the measured window, once its answers are in.
  for (let i = 0; i < 300 && market.inFlight > 0; i++) await sleep(100)
  const from = started + WARMUP
  const to = from + DURATION
  const measured = market.answers.filter((a) => a.start >= from && a.start < to && a.op !== 'setup' && a.op !== 'check')
  const { all, routes } = figures(measured, DURATION / 1000)
  market.answers.length = 0
  return {
    rate,
    sent: all.rate,
    p50: all.p50,
    p99: all.p99,
    errors: all.errors + market.inFlight,
    holds: all.p99 < P99_BOUND && all.errors === 0 && market.inFlight === 0 && all.rate >= 0.95 * rate,
    routes,
    cpu,
    // Stats reach pg_stat_database when a backend's transaction ends or within a second: near enough over 10 s.
    commits: (counts.commits - countsBefore.commits) / (DURATION / 1000),
    flushes: (counts.flushes - countsBefore.flushes) / (DURATION / 1000),
    rssMb: apiRssMb(),
    delivered: market.delivered - deliveredBefore,
  }
}

async function main() {
  const cpu = flags['generator-cpu']
  console.log(`bench:scenario — ${os.availableParallelism()} × ${os.cpus()[0]?.model.trim()}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, Node ${process.version}`)
  if (spawnSync('taskset', ['-cp', cpu, String(process.pid)]).status !== 0) console.log(`(taskset is missing or refused: the load generator is not pinned)`)
  console.log(`${PAIRS} clients and ${PAIRS} workers, each on a socket; mix: ${MIX.location}% location, ${MIX.search}% search, ${MIX.send}% send, ${MIX.inbox}% inbox, ${100 - MIX.location - MIX.search - MIX.send - MIX.inbox}% job steps with payment`)
  console.log(`rates from ${START}/s ×${STEP} a step, ${DURATION / 1000} s measured after ${WARMUP / 1000} s; a rate holds with p99 < ${P99_BOUND} ms and no errors; load generator on CPU ${cpu}`)
  execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' })

  const scratch = await createScratchDatabase(DATABASE_SERVER)
  const stats = new pg.Client({ connectionString: scratch.url })
  await stats.connect()
  const prefix = `bench-scenario-${Date.now().toString(36)}:`
  const market = new Marketplace(() => apiPort, HOME)
  const results: { processes: number; steps: Step[] }[] = []
  try {
    for (const processes of PROCESSES) {
      console.log(`\n${processes} API process${processes > 1 ? 'es' : ''} (WORKERS=${processes})`)
      await startApi(processes, scratch.url, prefix)
      if (market.workers.length === 0) {
        const bar = new cliProgress.SingleBar({ format: '  signing up |{bar}| {value}/{total} pairs', hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic)
        bar.start(PAIRS, 0)
        await market.setUp(PAIRS, (done) => bar.update(done))
        bar.stop()
      }
      // Everyone on the map again (locations expire; a restart keeps them, but the first run has none).
      await Promise.all(market.workers.map((w) => market.call('setup', 'POST', '/location', w.token, { lat: HOME.lat + (Math.random() - 0.5) * 0.1, lon: HOME.lon + (Math.random() - 0.5) * 0.1, ttl: 3600 })))
      await market.connectSockets()
      market.answers.length = 0
      const steps: Step[] = []
      for (let rate = START; ; rate *= STEP) {
        const s = await step(market, rate, stats)
        steps.push(s)
        console.log(
          `  ${String(Math.round(rate)).padStart(5)}/s: sent ${s.sent.toFixed(0).padStart(5)}/s  p50 ${s.p50.toFixed(1).padStart(6)} ms  p99 ${s.p99.toFixed(1).padStart(7)} ms  errors ${String(s.errors).padStart(5)}  ` +
            `delivered ${String(s.delivered).padStart(6)}  API RSS ${s.rssMb} MB  ${s.holds ? 'holds' : 'does not hold'}\n           ${coresText(s.cpu)}\n           ${databaseText(s)}`,
        )
        if (!s.holds || steps.length >= STEPS) break
      }
      market.closeSockets()
      await stopApi()
      results.push({ processes, steps })
    }
    const loss = await (async () => {
      await startApi(1, scratch.url, prefix)
      try {
        return await market.lost()
      } finally {
        await stopApi()
      }
    })()

    console.log('\nthe highest rate held (p99 < 100 ms, no errors), and each route at that rate')
    const best = new Map<number, number>()
    for (const { processes, steps } of results) {
      const held = steps.filter((s) => s.holds).at(-1)
      best.set(processes, held?.rate ?? 0)
      console.log(`\n  ${processes} process${processes > 1 ? 'es' : ''}: ${held ? `${Math.round(held.rate)} arrivals/s (p99 ${held.p99.toFixed(1)} ms, API RSS ${held.rssMb} MB)` : `none held from ${START}/s`}`)
      if (!held) continue
      const perArrival = (cores: number) => `${Math.round((cores * 1e6) / held.sent)} µs`
      console.log(`    ${coresText(held.cpu)}`)
      console.log(`    ${databaseText(held)}`)
      console.log(`    CPU an arrival: API ${perArrival(held.cpu.api)}, PostgreSQL ${perArrival(held.cpu.postgres)}, Redis ${perArrival(held.cpu.redis)}, generator ${perArrival(held.cpu.generator)}, the machine ${perArrival(held.cpu.busy)}`)
      console.log(`    ${'route'.padEnd(14)} ${'req/s'.padStart(7)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'errors'.padStart(7)}`)
      for (const r of held.routes) console.log(`    ${r.op.padEnd(14)} ${r.rate.toFixed(1).padStart(7)} ${r.p50.toFixed(1).padStart(7)} ${r.p99.toFixed(1).padStart(7)} ${String(r.errors).padStart(7)}`)
    }
    const one = best.get(1)
    if (one) for (const [n, rate] of best) if (n > 1) console.log(`\n  ${n} processes / 1: ${(rate / one).toFixed(2)}×${n === 2 ? ` (target 1.3×: ${rate / one >= 1.3 ? 'met' : 'MISSED'})` : ''}`)
    console.log(`\n  committed and read back: ${loss.messages} messages (lost ${loss.lostMessages}), ${loss.moves} job moves (lost ${loss.lostMoves}), ${loss.paid} approvals paid (unpaid ${loss.lostPayments})`)
  } finally {
    if (api && api.exitCode === null) await stopApi()
    await stats.end()
    await scratch.drop()
    await deleteRedisKeys(REDIS_URL, prefix)
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
