// npm run bench:auth — what authentication costs, on both live stores, in one run.
//
// For each live store (Redis, and PostgreSQL), with the database on a scratch PostgreSQL database:
//   1. a bare Fastify route: the baseline for one request on this machine;
//   2. authenticated GET /user through the whole stack (helmet, CORS, rate limit on the live
//      store, session lookup and renewal, validation, the user from the database, access log);
//   3. raw bcrypt.compare at BCRYPT_COST, with as many compares in flight as there are login clients;
//   4. POST /authorize sign-ins a second at the same cost and the same concurrency;
//   5. GET /user again while a flood of sign-ins runs beside it.
// The server runs in a child process (bench/auth-server.ts), the load generator (autocannon) here,
// so the two do not share an event loop. Logs go to /dev/null at level info, as a server's would
// go to its log collector.
//
// Settings (environment): BENCH_DATABASE_URL (a PostgreSQL server; a scratch database is made and
// dropped), BENCH_REDIS_URL, BENCH_DURATION (seconds a measurement, default 10),
// BENCH_CONNECTIONS (GET clients, default 32), BENCH_LOGIN_CONNECTIONS (default 8),
// BENCH_FLOOD_CONNECTIONS (sign-in clients in the flood, default 64), BENCH_BACKENDS
// (redis,postgres), and any app setting (BCRYPT_CONCURRENCY, UV_THREADPOOL_SIZE...) passed on.

import autocannon from 'autocannon'
import cliProgress from 'cli-progress'
import os from 'node:os'
import { createScratchDatabase, deleteRedisKeys } from '../test/support/backends.js'
import type { BcryptRequest, BcryptResult } from './auth-server.js'
import { BenchServer } from './support/server.js'

const env = process.env
const seconds = (name: string, fallback: number) => {
  const value = Number(env[name] ?? fallback)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`)
  return value
}
const DURATION = seconds('BENCH_DURATION', 10)
const WARMUP = Math.min(3, DURATION)
const CONNECTIONS = seconds('BENCH_CONNECTIONS', 32)
const LOGIN_CONNECTIONS = seconds('BENCH_LOGIN_CONNECTIONS', 8)
const FLOOD_CONNECTIONS = seconds('BENCH_FLOOD_CONNECTIONS', 64)
const BCRYPT_COST = 12
const DATABASE_SERVER = env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const REDIS_URL = env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379'
const BACKENDS = (env.BENCH_BACKENDS || 'redis,postgres').split(',').map((b) => b.trim())
const PASSWORD = 'correct horse battery'

/** App settings a caller may pass through to the server. */
const PASSED_ON = ['BCRYPT_CONCURRENCY', 'UV_THREADPOOL_SIZE', 'LOG_LEVEL', 'DB_POOL_SIZE', 'SESSIONS_PER_USER']

// ---------------------------------------------------------------------------------------------
// The server process

type Server = BenchServer<BcryptResult, BcryptRequest>

async function startServer(mode: 'app' | 'bare' | 'floor', settings: Record<string, string> = {}): Promise<Server> {
  const passed = Object.fromEntries(PASSED_ON.filter((n) => env[n] !== undefined).map((n) => [n, env[n]!]))
  return BenchServer.start<BcryptResult, BcryptRequest>(new URL('./auth-server.ts', import.meta.url), {
    name: mode,
    env: { BENCH_MODE: mode, ...passed, ...settings },
  })
}

/** Raw bcrypt.compare in the server process, with `concurrency` in flight for `durationMs`. */
const rawCompares = (server: Server, concurrency: number, durationMs: number) =>
  server.request<BcryptResult>({ type: 'bcrypt', cost: BCRYPT_COST, concurrency, durationMs }, 'bcrypt')

// ---------------------------------------------------------------------------------------------
// Load, with a progress bar

interface Measured {
  name: string
  rate: number
  p50?: number
  p99?: number
  rssMb: number
  errors: number
  /** Server CPU time (all threads) per successful answer, in microseconds. */
  cpuPerOk?: number
  note?: string
}

function progress(label: string, durationS: number, rate: () => string) {
  const bar = new cliProgress.SingleBar(
    {
      format: `  ${label.padEnd(48)} |{bar}| {value}/{total} s  {rate}`,
      barsize: 20,
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 2_000,
    },
    cliProgress.Presets.shades_classic,
  )
  const total = Math.round(durationS)
  bar.start(total, 0, { rate: '' })
  const started = Date.now()
  const timer = setInterval(() => bar.update(Math.min(Math.round((Date.now() - started) / 1000), total), { rate: rate() }), 500)
  return () => {
    clearInterval(timer)
    bar.update(total, { rate: rate() })
    bar.stop()
  }
}

/** Runs autocannon for `durationS`; answers the result and shows a live rate. */
async function load(label: string, options: autocannon.Options, durationS: number, show = true): Promise<autocannon.Result> {
  let ok = 0
  const started = Date.now()
  let instance!: autocannon.Instance
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon({ ...options, duration: durationS }, (error, result) => (error ? reject(error) : resolve(result)))
  })
  instance.on('response', (_client, status) => {
    if (status < 300) ok++
  })
  const done = show ? progress(label, durationS, () => `${Math.round(ok / Math.max((Date.now() - started) / 1000, 0.001))} ok/s`) : () => {}
  const result = await finished
  done()
  return result
}

const okRate = (r: autocannon.Result) => r['2xx'] / (r.duration || DURATION)
const errorsOf = (r: autocannon.Result) => r.non2xx + r.errors + r.timeouts

// ---------------------------------------------------------------------------------------------
// The measurements for one live store

interface BackendResult {
  backend: string
  rows: Measured[]
  userRatio: number
  floorRatio: number
  loginRatio: number
  floodRatio: number
}

async function json(url: string, init: RequestInit & { body?: string } = {}) {
  const res = await fetch(url, { ...init, headers: { 'content-type': 'application/json', ...(init.headers ?? {}) } })
  const body = res.status === 204 ? null : await res.json()
  return { status: res.status, body }
}

/** Signs `count` users up and in; answers their emails and tokens. */
async function users(base: string, tag: string, count: number) {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const email = `bench.${tag}.${i}.${Date.now().toString(36)}@example.com`
      const signup = await json(`${base}/signup`, { method: 'POST', body: JSON.stringify({ email, password: PASSWORD, first_name: 'Bench', last_name: `User ${i}`, roles: ['CLIENT'] }) })
      if (signup.status !== 201) throw new Error(`sign-up failed: ${JSON.stringify(signup.body)}`)
      const login = await json(`${base}/authorize`, { method: 'POST', body: JSON.stringify({ email, password: PASSWORD }) })
      if (login.status !== 200) throw new Error(`sign-in failed: ${JSON.stringify(login.body)}`)
      return { email, token: login.body.access_token as string }
    }),
  )
}

async function benchBackend(backend: 'redis' | 'postgres'): Promise<BackendResult> {
  const label = backend === 'redis' ? 'Redis live store' : 'PostgreSQL live store'
  console.log(`\n${label} (database: a scratch database on ${new URL(DATABASE_SERVER).host})`)
  const rows: Measured[] = []
  const mb = (bytes: number) => Math.round(bytes / 1024 / 1024)

  /** Warms up, then measures GET load on a server: rate, latency, peak RSS and CPU per answer. */
  const measureGet = async (server: Server, label: string, name: string, options: autocannon.Options) => {
    await load('', options, WARMUP, false)
    server.takePeakRss()
    const cpu = await server.cpuMicros()
    const result = await load(label, options, DURATION)
    const cpuPerOk = ((await server.cpuMicros()) - cpu) / Math.max(result['2xx'], 1)
    rows.push({ name, rate: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, rssMb: mb(server.takePeakRss()), errors: errorsOf(result), cpuPerOk })
    return result
  }

  // 1. The baseline: a bare Fastify route in a process of its own, measured the same way.
  const bare = await startServer('bare')
  const bareResult = await measureGet(bare, 'bare Fastify GET /bare', 'bare Fastify route', { url: `${bare.url}/bare`, connections: CONNECTIONS })
  await bare.stop()

  // 2. The whole app.
  const scratch = await createScratchDatabase(DATABASE_SERVER)
  const redisPrefix = `bench-auth-${Date.now().toString(36)}:`
  const settings = {
    DATABASE_URL: scratch.url,
    ...(backend === 'redis' ? { REDIS_URL, REDIS_PREFIX: redisPrefix } : {}),
    BCRYPT_COST: String(BCRYPT_COST),
    RATE_LIMIT_MAX: '10000000',
    AUTH_RATE_LIMIT_MAX: '10000000',
    LOG_LEVEL: env.LOG_LEVEL ?? 'info',
    PORT: '0',
  }
  const app = await startServer('app', settings)
  try {
    const readers = await users(app.url, 'reader', 8)
    const signers = await users(app.url, 'signer', LOGIN_CONNECTIONS)
    // Each GET client holds one of the readers' tokens; each sign-in client signs one user in.
    const withToken = (url: string): autocannon.Options => {
      let next = 0
      return { url, connections: CONNECTIONS, setupClient: (client) => client.setHeaders({ authorization: `Bearer ${readers[next++ % readers.length]!.token}` }) }
    }
    const getUser = withToken(`${app.url}/user`)
    const signIn = (connections: number): autocannon.Options => {
      let next = 0
      return {
        url: `${app.url}/authorize`,
        method: 'POST',
        connections,
        timeout: 60,
        setupClient: (client) => {
          const { email } = signers[next++ % signers.length]!
          client.setHeadersAndBody({ 'content-type': 'application/json' }, JSON.stringify({ email, password: PASSWORD }))
        },
      }
    }

    // The storage floor: bare Fastify doing only GET /user's storage work, on the same stores.
    const floor = await startServer('floor', settings)
    const floorResult = await measureGet(floor, 'storage floor GET /floor (session + user row)', 'storage floor (session + user row)', withToken(`${floor.url}/floor`))
    await floor.stop()

    const user = await measureGet(app, 'authenticated GET /user', 'GET /user (authenticated)', getUser)

    // 3 and 4. Raw bcrypt.compare in the server process with as many in flight as there are
    //    sign-in clients, and sign-ins through the whole stack at that concurrency: alternated in
    //    two rounds each, so that a change in the machine's load hits both alike.
    const rounds = 2
    const roundS = DURATION / rounds
    let compares = 0
    let compareMs = 0
    let signedIn = 0
    let loginCpu = 0
    const loginResults: autocannon.Result[] = []
    for (let round = 1; round <= rounds; round++) {
      const doneRaw = progress(`raw bcrypt.compare, ${LOGIN_CONNECTIONS} in flight (${round}/${rounds})`, roundS, () => '')
      const raw = await rawCompares(app, LOGIN_CONNECTIONS, roundS * 1000)
      doneRaw()
      compares += raw.compares
      compareMs += raw.elapsedMs
      const cpu = await app.cpuMicros()
      const result = await load(`POST /authorize, ${LOGIN_CONNECTIONS} clients (${round}/${rounds})`, signIn(LOGIN_CONNECTIONS), roundS)
      loginCpu += (await app.cpuMicros()) - cpu
      signedIn += result['2xx']
      loginResults.push(result)
    }
    const rawRate = compares / (compareMs / 1000)
    const loginRss = mb(app.takePeakRss()) // both alternate in one process: one peak for the two
    rows.push({ name: `raw bcrypt.compare (${LOGIN_CONNECTIONS} in flight)`, rate: rawRate, rssMb: loginRss, errors: 0 })
    const loginRate = signedIn / (rounds * roundS)
    const worst = (pick: (r: autocannon.Result) => number) => Math.max(...loginResults.map(pick))
    rows.push({
      name: `POST /authorize (${LOGIN_CONNECTIONS} clients)`,
      rate: loginRate,
      p50: worst((r) => r.latency.p50),
      p99: worst((r) => r.latency.p99),
      rssMb: loginRss,
      errors: loginResults.reduce((n, r) => n + errorsOf(r), 0),
      cpuPerOk: loginCpu / Math.max(signedIn, 1),
    })

    // 5. GET /user while sign-ins flood in, beside GET /user measured again just before (the
    //    machine's load drifts; the unloaded rate is the mean of the two runs).
    const again = await measureGet(app, 'authenticated GET /user, again', 'GET /user (again, before the flood)', getUser)
    const unloaded = (user.requests.average + again.requests.average) / 2
    const floodRun = load('', signIn(FLOOD_CONNECTIONS), DURATION + 2, false)
    await new Promise((r) => setTimeout(r, 1000)) // let the flood fill the line first
    const during = await load(`GET /user during a flood of ${FLOOD_CONNECTIONS} sign-in clients`, getUser, DURATION)
    const flood = await floodRun
    rows.push({
      name: 'GET /user during sign-in flood',
      rate: during.requests.average,
      p50: during.latency.p50,
      p99: during.latency.p99,
      rssMb: mb(app.takePeakRss()),
      errors: errorsOf(during),
      note: `flood: ${okRate(flood).toFixed(1)} sign-ins/s, ${flood.non2xx} answered 429/503`,
    })

    return {
      backend: label,
      rows,
      userRatio: user.requests.average / bareResult.requests.average,
      floorRatio: floorResult.requests.average / bareResult.requests.average,
      loginRatio: loginRate / rawRate,
      floodRatio: during.requests.average / unloaded,
    }
  } finally {
    await app.stop()
    await scratch.drop()
    if (backend === 'redis') await deleteRedisKeys(REDIS_URL, redisPrefix)
  }
}

// ---------------------------------------------------------------------------------------------

const pct = (ratio: number) => `${Math.round(ratio * 100)}%`
const mark = (ratio: number, target: number) => `${pct(ratio)} (target ${pct(target)}: ${ratio >= target ? 'met' : 'MISSED'})`

async function main() {
  const cpus = os.cpus()
  console.log(`bench:auth — ${cpus.length} × ${cpus[0]?.model.trim()}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}, Node ${process.version}`)
  console.log(
    `BCRYPT_COST=${BCRYPT_COST}, BCRYPT_CONCURRENCY=${env.BCRYPT_CONCURRENCY ?? `${os.availableParallelism()} (default: one a core)`}, ${DURATION} s a measurement after ${WARMUP} s warm-up, ` +
      `${CONNECTIONS} GET clients, ${LOGIN_CONNECTIONS} sign-in clients, ${FLOOD_CONNECTIONS} in the flood; server in a child process, logs at info to /dev/null`,
  )
  console.log(`PostgreSQL server ${new URL(DATABASE_SERVER).host}, Redis ${new URL(REDIS_URL).host}; sign-in p50/p99 are the worse of two rounds`)
  const results: BackendResult[] = []
  for (const backend of BACKENDS) {
    if (backend !== 'redis' && backend !== 'postgres') throw new Error(`unknown backend ${backend}`)
    results.push(await benchBackend(backend))
  }

  const fmt = (n: number | undefined, digits = 0) => (n === undefined ? '' : n.toFixed(digits))
  for (const r of results) {
    console.log(`\n${r.backend}`)
    console.log(`  ${'measurement'.padEnd(36)} ${'ok/s'.padStart(9)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'RSS MB'.padStart(7)} ${'errors'.padStart(7)} ${'CPU µs/ok'.padStart(10)}`)
    for (const row of r.rows) {
      console.log(
        `  ${row.name.padEnd(36)} ${fmt(row.rate, row.rate < 100 ? 1 : 0).padStart(9)} ${fmt(row.p50).padStart(7)} ${fmt(row.p99).padStart(7)} ${String(row.rssMb).padStart(7)} ${String(row.errors).padStart(7)} ${fmt(row.cpuPerOk).padStart(10)}${row.note ? `  ${row.note}` : ''}`,
      )
    }
    console.log(`  GET /user / bare route:               ${r.backend.startsWith('Redis') ? mark(r.userRatio, 0.5) : `${pct(r.userRatio)} (the 50% target is for Redis)`}`)
    console.log(`  storage floor / bare route:           ${pct(r.floorRatio)} (the most GET /user could reach with its two storage reads)`)
    console.log(`  sign-ins / raw bcrypt.compare:        ${mark(r.loginRatio, 0.9)}`)
    console.log(`  GET /user in a flood / unloaded:      ${mark(r.floodRatio, 0.7)} (unloaded: the mean of the two runs)`)
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
