// npm run bench:auth — what authentication costs, on both live stores, in one run.
//
// For each live store (Redis, and PostgreSQL), with the database on a scratch PostgreSQL database
// holding BENCH_USERS signed-in users (made straight in the database, not through bcrypt):
//   1. a bare Fastify route: the baseline for one request on this machine;
//   2. the stack floor: GET /auth/providers, open and reading nothing, through the whole app;
//      what any route costs before authentication;
//   2b. the storage floor: a bare route that reads the session and its user (one query), which is
//      what every request cost before each process kept what it authenticates;
//   3. authenticated GET /user through the whole stack (helmet, CORS, rate limit on the live
//      store, authentication, validation, the user, access log), each request with the token of
//      the next of the BENCH_USERS users, so that no cache is flattered by one token;
//   4. raw bcrypt.compare at BCRYPT_COST, with as many compares in flight as there are login clients;
//   5. POST /authorize sign-ins a second at the same cost and the same concurrency;
//   6. GET /user again while a flood of sign-ins runs beside it;
//   7. the memory a second app process takes to keep BENCH_CACHE_SESSIONS sessions (heap after a
//      full GC, before and after each has been used once);
//   8. revocation across the two processes: from the answer to a sign-out through one, until the
//      other refuses the token (BENCH_REVOCATIONS sign-outs, the token used on the other first).
// The servers run in child processes (bench/auth-server.ts), the load generator (autocannon) here,
// so they do not share an event loop. Logs go to /dev/null at level info, as a server's would
// go to its log collector.
//
// Settings (environment): BENCH_DATABASE_URL (a PostgreSQL server; a scratch database is made and
// dropped), BENCH_REDIS_URL, BENCH_DURATION (seconds a measurement, default 10),
// BENCH_CONNECTIONS (GET clients, default 32), BENCH_USERS (signed-in users the GET requests
// spread over, default 10000), BENCH_CACHE_SESSIONS (default 100000), BENCH_REVOCATIONS
// (default 300), BENCH_LOGIN_CONNECTIONS (default 8), BENCH_FLOOD_CONNECTIONS (sign-in clients in
// the flood, default 64), BENCH_BACKENDS (redis,postgres), and any app setting
// (BCRYPT_CONCURRENCY, UV_THREADPOOL_SIZE...) passed on.

import autocannon from 'autocannon'
import bcrypt from 'bcrypt'
import cliProgress from 'cli-progress'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import { v7 as uuidv7 } from 'uuid'
import { hashToken } from '../src/features/sessions/index.js'
import { openDatabase } from '../src/platform/db/index.js'
import { createScratchDatabase, deleteRedisKeys } from '../test/support/backends.js'
import type { BcryptRequest, BcryptResult } from './auth-server.js'
import { BenchServer, cpuProfileArgs } from './support/server.js'
import { positiveSetting } from './support/settings.js'

const env = process.env
const DURATION = positiveSetting('BENCH_DURATION', 10)
const WARMUP = Math.min(3, DURATION)
const CONNECTIONS = positiveSetting('BENCH_CONNECTIONS', 32)
const LOGIN_CONNECTIONS = positiveSetting('BENCH_LOGIN_CONNECTIONS', 8)
const FLOOD_CONNECTIONS = positiveSetting('BENCH_FLOOD_CONNECTIONS', 64)
const USERS = positiveSetting('BENCH_USERS', 10_000)
const CACHE_SESSIONS = positiveSetting('BENCH_CACHE_SESSIONS', 100_000)
const REVOCATIONS = positiveSetting('BENCH_REVOCATIONS', 300)
const BCRYPT_COST = 12
const DATABASE_SERVER = env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const REDIS_URL = env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379'
const BACKENDS = (env.BENCH_BACKENDS || 'redis,postgres').split(',').map((b) => b.trim())
const PASSWORD = 'correct horse battery'

/** App settings a caller may pass through to the server. */
const PASSED_ON = ['BCRYPT_CONCURRENCY', 'UV_THREADPOOL_SIZE', 'LOG_LEVEL', 'DB_POOL_SIZE', 'SESSIONS_PER_USER', 'SESSION_CACHE_SIZE']

// ---------------------------------------------------------------------------------------------
// The server process

type Server = BenchServer<BcryptResult, BcryptRequest>

async function startServer(mode: 'app' | 'bare' | 'floor', settings: Record<string, string> = {}): Promise<Server> {
  const passed = Object.fromEntries(PASSED_ON.filter((n) => env[n] !== undefined).map((n) => [n, env[n]!]))
  return BenchServer.start<BcryptResult, BcryptRequest>(new URL('./auth-server.ts', import.meta.url), {
    name: mode,
    env: { BENCH_MODE: mode, ...passed, ...settings },
    // So that memory is read after a full GC.
    execArgv: ['--expose-gc', ...cpuProfileArgs()],
  })
}

/** Raw bcrypt.compare in the server process, with `concurrency` in flight for `durationMs`. */
const rawCompares = (server: Server, concurrency: number, durationMs: number) =>
  server.request<Extract<BcryptResult, { type: 'bcrypt' }>>({ type: 'bcrypt', cost: BCRYPT_COST, concurrency, durationMs }, 'bcrypt')

/** How many authentications an app server keeps in memory. */
const cachedSessions = async (server: Server) => (await server.request<Extract<BcryptResult, { type: 'cached' }>>({ type: 'cached' }, 'cached')).size

// ---------------------------------------------------------------------------------------------
// Users, signed in straight in the database (as POST /authorize would leave them)

interface Seeded {
  /** One token a user: what the GET measurements spread over. */
  tokens: string[]
  /** Every token, `perUser` a user: what the cache's memory is measured with. */
  all: string[]
  /** Users without sessions, for the sign-in measurements. */
  signers: string[]
}

async function seedUsers(databaseUrl: string, users: number, perUser: number, signers: number): Promise<Seeded> {
  const database = await openDatabase({ databaseUrl, dataDir: '', poolSize: 4 })
  const hash = await bcrypt.hash(PASSWORD, BCRYPT_COST)
  const tag = Date.now().toString(36)
  const seeded: Seeded = { tokens: [], all: [], signers: [] }
  const bar = new cliProgress.SingleBar({ format: `  ${'signed-in users'.padEnd(48)} |{bar}| {value}/{total}`, barsize: 20, noTTYOutput: true, notTTYSchedule: 2_000 }, cliProgress.Presets.shades_classic)
  bar.start(users + signers, 0)
  try {
    const at = new Date()
    const expires = new Date(at.getTime() + 30 * 24 * 3600 * 1000)
    for (let i = 0; i < users + signers; i += 1000) {
      const rows = Array.from({ length: Math.min(1000, users + signers - i) }, (_, j) => ({
        id: uuidv7(),
        email: `bench.${tag}.${i + j}@example.com`,
        first_name: 'Bench',
        last_name: `User ${i + j}`,
        password_hash: hash,
        roles: ['CLIENT' as const],
      }))
      await database.db.insertInto('users').values(rows).execute()
      const sessions = rows.flatMap((user, j) => {
        if (i + j >= users) {
          seeded.signers.push(user.email)
          return []
        }
        return Array.from({ length: perUser }, (_, k) => {
          const token = randomBytes(32).toString('base64url')
          if (k === 0) seeded.tokens.push(token)
          seeded.all.push(token)
          return { token_hash: hashToken(token), id: uuidv7(), user_id: user.id, user_agent: 'bench', created_at: at, last_used_at: at, expires_at: expires, max_expires_at: expires, sessions_version: 0 }
        })
      })
      for (let k = 0; k < sessions.length; k += 5000) await database.db.insertInto('sessions').values(sessions.slice(k, k + 5000)).execute()
      bar.update(i + rows.length)
    }
  } finally {
    bar.stop()
    await database.close()
  }
  return seeded
}

/** Load options whose every request carries the next token of `tokens`, round and round. */
function spread(url: string, tokens: string[], extra: Partial<autocannon.Options> = {}): autocannon.Options {
  let next = 0
  return {
    url,
    connections: CONNECTIONS,
    ...extra,
    requests: [{ setupRequest: (request) => ({ ...request, headers: { ...request.headers, authorization: `Bearer ${tokens[next++ % tokens.length]}` } }) }],
  }
}

/** Sign-outs through `a`, each timed from its answer until `b` refuses the token (which `b` served just before). */
async function revocations(a: string, b: string, tokens: string[], concurrency = 8): Promise<number[]> {
  const times: number[] = []
  let next = 0
  const started = performance.now()
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < tokens.length) {
          const headers = { authorization: `Bearer ${tokens[next++]}` }
          const warm = await fetch(`${b}/user`, { headers })
          await warm.arrayBuffer()
          if (warm.status !== 200) throw new Error(`GET /user answered ${warm.status} before the sign-out`)
          const out = await fetch(`${a}/authorize`, { method: 'DELETE', headers })
          await out.arrayBuffer()
          if (out.status !== 204) throw new Error(`DELETE /authorize answered ${out.status}`)
          const answered = performance.now()
          for (;;) {
            const res = await fetch(`${b}/user`, { headers })
            await res.arrayBuffer()
            if (res.status === 401) break
            if (performance.now() - answered > 10_000) throw new Error('the other process still accepts a token signed out 10 s ago')
          }
          times.push(performance.now() - answered)
        }
      }),
    )
  } finally {
    console.log(`  ${`revocation across 2 processes, ${tokens.length} sign-outs`.padEnd(48)} ${times.length} timed in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  }
  return times
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}

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
  userP99: number
  floorRatio: number
  stackRatio: number
  userOfStack: number
  loginRatio: number
  floodRatio: number
  revocationP50: number
  revocationP99: number
  cacheMb: number
  cachedSessions: number
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

  // The users, in a scratch database of this run.
  const scratch = await createScratchDatabase(DATABASE_SERVER)
  const perUser = Math.max(1, Math.ceil(CACHE_SESSIONS / USERS))
  const seeded = await seedUsers(scratch.url, USERS, perUser, LOGIN_CONNECTIONS)

  // 1. The baseline: a bare Fastify route in a process of its own, measured the same way (its
  //    requests carry the tokens too, so the load generator does the same work).
  const bare = await startServer('bare')
  const bareResult = await measureGet(bare, 'bare Fastify GET /bare', 'bare Fastify route', spread(`${bare.url}/bare`, seeded.tokens))
  await bare.stop()

  // 2. The whole app.
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
  let other: Server | undefined
  try {
    const getUser = spread(`${app.url}/user`, seeded.tokens)
    const signIn = (connections: number): autocannon.Options => {
      let next = 0
      return {
        url: `${app.url}/authorize`,
        method: 'POST',
        connections,
        timeout: 60,
        setupClient: (client) => {
          const email = seeded.signers[next++ % seeded.signers.length]!
          client.setHeadersAndBody({ 'content-type': 'application/json' }, JSON.stringify({ email, password: PASSWORD }))
        },
      }
    }

    // The storage floor: bare Fastify doing only the storage read a request made before, on the same stores.
    const floor = await startServer('floor', settings)
    const floorResult = await measureGet(floor, 'storage floor GET /floor (session + user row)', 'storage floor (session + user row)', spread(`${floor.url}/floor`, seeded.tokens))
    await floor.stop()

    // The stack floor: a route open to anyone that reads nothing (GET /auth/providers answers the
    // configured providers from memory) through the same stack (security headers, CORS, the rate
    // limit, validation, the access log): what any answer of the app costs before authentication.
    const stackFloor = await measureGet(app, 'stack floor GET /auth/providers (no auth)', 'stack floor (open route, no storage)', spread(`${app.url}/auth/providers`, seeded.tokens))
    const user = await measureGet(app, `authenticated GET /user, ${seeded.tokens.length} users`, 'GET /user (authenticated)', getUser)

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

    // 7. A second app process: what keeping CACHE_SESSIONS sessions costs it.
    other = await startServer('app', settings)
    // Warmed up first with made-up tokens (answered 401, never kept), so that what the process
    // compiles and allocates for any request is there before the first measure.
    await load('', spread(`${other.url}/user`, Array.from({ length: 1000 }, () => randomBytes(32).toString('base64url')), { amount: 5000 }), 0, false)
    const before = await other.memory()
    const filling = await load(`GET /user once with each of ${seeded.all.length} sessions`, spread(`${other.url}/user`, seeded.all, { amount: seeded.all.length }), 0)
    const cached = await cachedSessions(other)
    const after = await other.memory()
    const cacheBytes = after.heapUsed + after.external - (before.heapUsed + before.external)
    rows.push({ name: `cache of ${cached} sessions (heap)`, rate: filling.requests.average, rssMb: mb(after.rss), errors: errorsOf(filling), note: `${mb(cacheBytes)} MB, ${Math.round(cacheBytes / Math.max(cached, 1))} bytes a session` })

    // 8. Revocation across the two processes, with tokens neither has used yet.
    const fresh = seeded.all.filter((_, i) => i % perUser === perUser - 1).slice(0, REVOCATIONS)
    const times = await revocations(app.url, other.url, fresh)
    rows.push({ name: 'revocation across 2 processes', rate: times.length, p50: percentile(times, 50), p99: percentile(times, 99), rssMb: mb(app.takePeakRss()), errors: 0, note: 'ms from the sign-out\'s answer until the other process refuses the token; rate: sign-outs timed' })

    return {
      backend: label,
      rows,
      userRatio: user.requests.average / bareResult.requests.average,
      userP99: user.latency.p99,
      floorRatio: floorResult.requests.average / bareResult.requests.average,
      stackRatio: stackFloor.requests.average / bareResult.requests.average,
      userOfStack: user.requests.average / stackFloor.requests.average,
      loginRatio: loginRate / rawRate,
      floodRatio: during.requests.average / unloaded,
      revocationP50: percentile(times, 50),
      revocationP99: percentile(times, 99),
      cacheMb: cacheBytes / 1024 / 1024,
      cachedSessions: cached,
    }
  } finally {
    await other?.stop()
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
      `${CONNECTIONS} GET clients over ${USERS} signed-in users, ${LOGIN_CONNECTIONS} sign-in clients, ${FLOOD_CONNECTIONS} in the flood; server in a child process, logs at info to /dev/null`,
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
    console.log(`  GET /user / bare route:               ${mark(r.userRatio, 0.5)}, p99 ${r.userP99} ms (target under 5 ms: ${r.userP99 < 5 ? 'met' : 'MISSED'})`)
    console.log(`  storage floor / bare route:           ${pct(r.floorRatio)} (the most GET /user could reach with a read of the session and its user per request)`)
    console.log(`  stack floor / bare route:             ${pct(r.stackRatio)} (the most any route of the app reaches: headers, rate limit, access log, no auth)`)
    console.log(`  GET /user / stack floor:              ${pct(r.userOfStack)} (what authentication and the user's answer leave of it)`)
    console.log(`  revocation across 2 processes:        p50 ${r.revocationP50.toFixed(1)} ms, p99 ${r.revocationP99.toFixed(1)} ms (target p99 under 1000 ms: ${r.revocationP99 < 1000 ? 'met' : 'MISSED'})`)
    console.log(`  memory of ${r.cachedSessions} cached sessions:   ${r.cacheMb.toFixed(0)} MB of heap`)
    console.log(`  sign-ins / raw bcrypt.compare:        ${mark(r.loginRatio, 0.9)}`)
    console.log(`  GET /user in a flood / unloaded:      ${mark(r.floodRatio, 0.7)} (unloaded: the mean of the two runs)`)
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
