// npm run bench:location — live location and nearby search under load, beside raw Redis.
//
//   npm run bench:location -- --sizes 100k,1m --sparse 1m --backends redis,postgres --pg-max 200k
//                             --duration 10 --rounds 2 --connections 32 --city paris --country france
//
// For each live store and each size: a scratch PostgreSQL database and a fresh Redis key prefix
// are seeded with workers (with a progress bar) — "dense" in one metro area (normal around the
// city, sigma 8 km), "sparse" spread over a whole country. The app runs in a child process
// (bench/app-server.ts: the whole app, as deployed) and autocannon here drives, with random
// points of the area:
//   GET /search   radius 5000 m, limit 20, role WORKER (HTTP, auth, rate limit, store)
//   GET /search   the same with category=<a top-level category> (its subcategories hold half of
//                 the workers), measured with the unfiltered one in alternating one-second slices
//                 in each round (target: >= 80% of its rate)
//   POST /location from 200 signed-in workers
// and, to show what the HTTP stack itself costs here, GET /health (no auth), GET /user (auth and
// one database read) and GET /search where nobody is (auth and an empty GEOSEARCH: the floor of
// a search), and the store alone: LocationStore.nearby called in this process.
// Baselines on one Redis key holding the same points, with as many commands in flight as
// autocannon has connections:
//   naive   GEOSEARCH key FROMLONLAT lon lat BYRADIUS 5000 m ASC COUNT 20 (once: it is slow)
//   ideal   the same with the smallest radius that holds the 20 nearest (found beforehand)
//   GEOADD  raw GEOADD of a random worker at a random point (into a copy of the key, so that the
//           searches of later rounds read the points as seeded)
// This machine is shared and noisy, so the HTTP measurements and the baselines alternate in
// --rounds rounds: a ratio is taken within each round, and the medians are reported. It prints
// req/s, p50/p99 latency, the API process's CPU and Redis's CPU a request, the live store's
// memory per million workers, and the targets (Redis, 1M dense): search >= 10x naive and >= 30%
// of ideal with p99 < 20 ms, sparse no slower than dense, POST /location >= 40% of raw GEOADD.
//
// Settings (environment): BENCH_DATABASE_URL (a PostgreSQL server; scratch databases are made
// and dropped), BENCH_REDIS_URL; BENCH_CPU_PROF=<dir> writes the server's CPU profiles there.

import autocannon from 'autocannon'
import cliProgress from 'cli-progress'
import { Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import { loadConfig } from '../src/config.js'
import { openPlatform } from '../src/platform/index.js'
import { parseCity, parseCountry, pointIn, random, seedWorkers, type Area } from '../src/cli/seed.js'
import { createScratchDatabase, deleteRedisKeys } from '../test/support/backends.js'
import { BenchServer, cpuProfileArgs, redisCpuSeconds } from './support/server.js'

// ---------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2)
const flag = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback
}
const count = (text: string) => {
  const m = /^(\d+(?:\.\d+)?)([km]?)$/i.exec(text.trim())
  if (!m) throw new Error(`not a size: "${text}" (say 100k or 1m)`)
  return Math.round(Number(m[1]) * (m[2]?.toLowerCase() === 'm' ? 1e6 : m[2]?.toLowerCase() === 'k' ? 1e3 : 1))
}
const list = (text: string) => text.split(',').map((s) => s.trim()).filter(Boolean)

const SIZES = list(flag('sizes', '100k,1m')).map(count)
const SPARSE = list(flag('sparse', '1m')).map(count)
const BACKENDS = list(flag('backends', 'redis,postgres'))
const PG_MAX = count(flag('pg-max', '200k'))
const DURATION = Number(flag('duration', '10'))
const ROUNDS = Number(flag('rounds', '2'))
const CONNECTIONS = Number(flag('connections', '32'))
const CITY = parseCity(flag('city', 'paris'))
const COUNTRY = parseCountry(flag('country', 'france'))
const DATABASE_SERVER = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const REDIS_URL = process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379'
const RADIUS = 5000
const LIMIT = 20
const POSTERS = 200
const PASSWORD = 'correct horse battery'

// ---------------------------------------------------------------------------------------------
// Measuring

interface Measured {
  rate: number
  p50: number
  p99: number
  errors: number
  /** Redis CPU (user + sys) per operation, in microseconds, over the measurement (Redis is shared, so an upper bound). */
  redisUs?: number
  /** The API process's CPU per request, in microseconds. */
  apiUs?: number
}

/** The median of each figure over rounds. */
function median(ms: Measured[]): Measured {
  const mid = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b)
    const n = sorted.length
    return n % 2 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2
  }
  const of = (key: keyof Measured) => (ms.every((m) => m[key] !== undefined) ? mid(ms.map((m) => m[key]!)) : undefined)
  return { rate: of('rate')!, p50: of('p50')!, p99: of('p99')!, errors: ms.reduce((a, m) => a + m.errors, 0), redisUs: of('redisUs'), apiUs: of('apiUs') }
}
const medianOf = (values: number[]) => median(values.map((rate) => ({ rate, p50: 0, p99: 0, errors: 0 }))).rate

const cpuProbe = new Redis(REDIS_URL)
const withRedisCpu = async (run: () => Promise<Measured>): Promise<Measured> => {
  const before = await redisCpuSeconds(cpuProbe)
  const m = await run()
  const spent = (await redisCpuSeconds(cpuProbe)) - before
  return { ...m, redisUs: (spent * 1e6) / Math.max(1, m.rate * DURATION) }
}

const bars = new cliProgress.MultiBar(
  { format: '  {label} |{bar}| {value}/{total}  {note}', barsize: 24, hideCursor: true, clearOnComplete: false, noTTYOutput: true, notTTYSchedule: 3_000 },
  cliProgress.Presets.shades_classic,
)

function timed(label: string, seconds: number, note: () => string) {
  const bar = bars.create(seconds, 0, { label: label.padEnd(40), note: '' })
  const started = Date.now()
  const timer = setInterval(() => bar.update(Math.min(seconds, Math.round((Date.now() - started) / 1000)), { note: note() }), 500)
  return () => {
    clearInterval(timer)
    bar.update(seconds, { note: note() })
    bar.stop()
  }
}

const percentile = (sorted: Float64Array, p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0

/** `concurrency` loops of `op` for DURATION seconds, as autocannon runs its connections. */
async function closedLoop(label: string, concurrency: number, op: (i: number) => Promise<unknown>): Promise<Measured> {
  return withRedisCpu(() => closedLoopRun(label, concurrency, op))
}

async function closedLoopRun(label: string, concurrency: number, op: (i: number) => Promise<unknown>): Promise<Measured> {
  const latencies: number[] = []
  let errors = 0
  const started = performance.now()
  const deadline = started + DURATION * 1000
  const done = timed(label, DURATION, () => `${Math.round(latencies.length / ((performance.now() - started) / 1000))} ops/s`)
  let n = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const t = performance.now()
        try {
          await op(n++)
          latencies.push(performance.now() - t)
        } catch {
          errors++
        }
      }
    }),
  )
  done()
  const sorted = Float64Array.from(latencies).sort()
  return { rate: latencies.length / ((performance.now() - started) / 1000), p50: percentile(sorted, 50), p99: percentile(sorted, 99), errors }
}

async function http(label: string, server: BenchServer, options: autocannon.Options): Promise<Measured> {
  const before = await server.cpuMicros()
  const m = await withRedisCpu(() => httpRun(label, options))
  return { ...m, apiUs: ((await server.cpuMicros()) - before) / Math.max(1, m.rate * DURATION) }
}

async function httpRun(label: string, options: autocannon.Options, seconds = DURATION): Promise<Measured & { requests: number; seconds: number }> {
  let finished = 0
  const started = Date.now()
  let instance!: autocannon.Instance
  const result = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon({ ...options, connections: CONNECTIONS, duration: seconds }, (error, r) => (error ? reject(error) : resolve(r)))
  })
  instance.on('response', () => finished++)
  const done = timed(label, Math.ceil(seconds), () => `${Math.round(finished / ((Date.now() - started) / 1000))} req/s`)
  const r = await result
  done()
  return { rate: r.requests.mean, p50: r.latency.p50, p99: r.latency.p99, errors: r.non2xx + r.errors + r.timeouts, requests: r.requests.total, seconds: r.duration }
}

/**
 * Two HTTP measurements taken in alternating slices (A B B A A B ...), DURATION seconds each in
 * all: a burst of other work on this shared machine weighs on both alike, so their ratio holds
 * (taken one after the other, 10 s each, the ratio of the same code moved by 20 points a round).
 */
async function pairedHttp(label: string, server: BenchServer, a: autocannon.Options, b: autocannon.Options): Promise<[Measured, Measured]> {
  const slices = Math.max(2, Math.round(DURATION))
  const sides = [a, b].map(() => ({ requests: 0, seconds: 0, errors: 0, p50: [] as number[], p99: [] as number[], apiUs: 0, redisSeconds: 0 }))
  for (let i = 0; i < slices; i++) {
    for (const side of i % 2 === 0 ? [0, 1] : [1, 0]) {
      const [cpuBefore, redisBefore] = [await server.cpuMicros(), await redisCpuSeconds(cpuProbe)]
      const m = await httpRun(`${label} ${side === 0 ? 'A' : 'B'} ${i + 1}/${slices}`, side === 0 ? a : b, DURATION / slices)
      const s = sides[side]!
      s.apiUs += (await server.cpuMicros()) - cpuBefore
      s.redisSeconds += (await redisCpuSeconds(cpuProbe)) - redisBefore
      s.requests += m.requests
      s.seconds += m.seconds
      s.errors += m.errors
      s.p50.push(m.p50)
      s.p99.push(m.p99)
    }
  }
  const mid = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!
  return sides.map((s) => ({
    rate: s.requests / s.seconds,
    p50: mid(s.p50),
    p99: mid(s.p99),
    errors: s.errors,
    apiUs: s.apiUs / Math.max(1, s.requests),
    redisUs: (s.redisSeconds * 1e6) / Math.max(1, s.requests),
  })) as [Measured, Measured]
}

// ---------------------------------------------------------------------------------------------
// The server, in a process of its own

const startServer = (env: Record<string, string>) =>
  BenchServer.start(new URL('./app-server.ts', import.meta.url), {
    name: 'API',
    execArgv: cpuProfileArgs(),
    env: { LOG_LEVEL: 'warn', BCRYPT_COST: '4', RATE_LIMIT_MAX: '10000000', AUTH_RATE_LIMIT_MAX: '10000000', ...env },
  })

async function signedIn(url: string, roles: string[]): Promise<string> {
  const email = `bench-${randomBytes(6).toString('hex')}@example.com`
  const headers = { 'content-type': 'application/json' }
  const up = await fetch(`${url}/signup`, { method: 'POST', headers, body: JSON.stringify({ email, password: PASSWORD, first_name: 'Bench', last_name: 'User', roles }) })
  if (up.status !== 201) throw new Error(`signup: ${up.status} ${await up.text()}`)
  const auth = await fetch(`${url}/authorize`, { method: 'POST', headers, body: JSON.stringify({ email, password: PASSWORD }) })
  return ((await auth.json()) as { access_token: string }).access_token
}

// ---------------------------------------------------------------------------------------------
// One scenario

interface Row {
  scenario: string
  name: string
  m: Measured
}
const rows: Row[] = []
const memory: { scenario: string; store: string; perMillionMb: number }[] = []
/** Per scenario, the ratios taken within each round. */
const ratios = new Map<string, { filtered: number[]; ofIdeal: number[]; ofGeoadd: number[]; naive: number }>()

/** One raw GEO key holding the same points, and the radius of each query's 20 nearest in it. */
async function baselineKey(scenarioName: string, redis: Redis, points: { lat: number; lon: number }[], queries: { lat: number; lon: number }[]) {
  const key = `bench-naive-${randomBytes(4).toString('hex')}`
  const load = bars.create(points.length, 0, { label: 'baseline key: GEOADD the same points'.padEnd(40), note: '' })
  for (let i = 0; i < points.length; i += 5000) {
    const args: (string | number)[] = []
    for (let j = i; j < Math.min(points.length, i + 5000); j++) args.push(points[j]!.lon, points[j]!.lat, `w${j}`)
    await redis.geoadd(key, ...args)
    load.update(Math.min(points.length, i + 5000))
  }
  load.stop()
  const keyBytes = Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'))
  memory.push({ scenario: scenarioName, store: 'baseline: one raw GEO key', perMillionMb: ((keyBytes / points.length) * 1e6) / 2 ** 20 })
  // The radius of each query's 20 nearest, found by growing it from 25 m (one search over a whole
  // metro area a point would take long).
  const radii: number[] = []
  for (let i = 0; i < queries.length; i += 100) {
    radii.push(
      ...(await Promise.all(
        queries.slice(i, i + 100).map(async (q) => {
          for (let r = 25; ; r *= 2) {
            const found = (await redis.call('GEOSEARCH', key, 'FROMLONLAT', q.lon, q.lat, 'BYRADIUS', r, 'm', 'ASC', 'COUNT', LIMIT, 'WITHDIST')) as [string, string][]
            if (found.length === LIMIT || r >= RADIUS) return found.length > 0 ? Number(found[found.length - 1]![1]) + 0.01 : r
          }
        }),
      )),
    )
  }
  // GEOADD moves its members onto the query points: it writes to a copy, so that the searches
  // of later rounds read the points as seeded (on the moved ones, the ideal ran at half speed).
  const writeKey = `${key}:writes`
  await redis.copy(key, writeKey)
  return { key, writeKey, radii }
}

/** What each kind of key of the layout holds, by MEMORY USAGE (exact: every element counted). */
async function layoutBreakdown(scenarioName: string, redis: Redis, prefix: string, size: number) {
  const kinds = new Map<string, { keys: number; bytes: number }>()
  const kindOf = (key: string) => {
    const rest = key.slice(prefix.length)
    if (rest.startsWith('loc:w:')) return 'loc:w:{bucket} hash: packed id -> place'
    if (rest.startsWith('loc:anchors:')) return 'loc:anchors:<id> string'
    if (rest.startsWith('loc:user:')) return 'loc:user:<id> string (the layout before)'
    const m = /^loc:\{[^}]*\}:(.*)$/.exec(rest)
    if (m) return { w: 'loc:{cell}:w GEO (WORKER), member = the record', c: 'loc:{cell}:c GEO (CLIENT)', a: 'loc:{cell}:a GEO (ADMIN)', d: 'loc:{pn|ps}:d polar hash: packed id -> entry', m: 'loc:{cell}:m earliest expiry' }[m[1]!] ?? `loc:{cell}:${m[1]}`
    return rest
  }
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    const pipeline = redis.pipeline()
    for (const key of keys) pipeline.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')
    const sizes = (await pipeline.exec())!.map(([, bytes]) => Number(bytes))
    keys.forEach((key, i) => {
      const kind = kindOf(key)
      const seen = kinds.get(kind) ?? { keys: 0, bytes: 0 }
      kinds.set(kind, { keys: seen.keys + 1, bytes: seen.bytes + sizes[i]! })
    })
  } while (cursor !== '0')
  for (const [kind, { keys, bytes }] of [...kinds].sort((a, b) => b[1].bytes - a[1].bytes)) {
    breakdown.push({ scenario: scenarioName, kind, keys, bytesPerWorker: bytes / size })
  }
}
const breakdown: { scenario: string; kind: string; keys: number; bytesPerWorker: number }[] = []

async function redisUsedMemory(redis: Redis) {
  const info = await redis.info('memory')
  return Number(/used_memory:(\d+)/.exec(info)![1])
}

async function scenario(backend: string, layout: 'dense' | 'sparse', size: number) {
  const area: Area = layout === 'dense' ? CITY : COUNTRY
  const name = `${backend} ${layout} ${size >= 1e6 ? `${size / 1e6}M` : `${size / 1e3}k`}`
  console.log(`\n== ${name}`)
  const scratch = await createScratchDatabase(DATABASE_SERVER)
  const prefix = `bench-loc-${randomBytes(4).toString('hex')}:`
  const redisUrl = backend === 'redis' ? REDIS_URL : undefined
  const redis = new Redis(REDIS_URL)
  let server: BenchServer | undefined
  let baselineKeys: string[] = []
  try {
    // Seeding sends many writes at once; on a busy machine one may wait past the API's 500 ms.
    const config = loadConfig({ DATABASE_URL: scratch.url, REDIS_URL: redisUrl, REDIS_PREFIX: prefix, LOG_LEVEL: 'silent', DB_POOL_SIZE: '20', REDIS_COMMAND_TIMEOUT: '10000' })
    const platform = await openPlatform(config)
    const rnd = random(99)
    const queries = Array.from({ length: 5000 }, () => pointIn(area, rnd))
    const { sql } = await import('kysely')
    let points: { lat: number; lon: number }[]
    // Two top-level categories of two subcategories each; each worker has one of the four, so
    // a search for a top-level category takes in half of them.
    const { v7: uuidv7 } = await import('uuid')
    const tops = [uuidv7(), uuidv7()]
    const leaves = tops.flatMap((parent, i) => [0, 1].map((j) => ({ id: uuidv7(), parent_id: parent, name: `Sub ${i}.${j}` })))
    const now = new Date()
    const row = (c: { id: string; parent_id: string | null; name: string }, position: number) => ({ ...c, position, retired_at: null, created_at: now, updated_at: now })
    await platform.database.db.insertInto('categories').values(tops.map((id, i) => row({ id, parent_id: null, name: `Top ${i}` }, i))).execute()
    await platform.database.db.insertInto('categories').values(leaves.map((l, i) => row(l, i))).execute()
    try {
      const before = await redisUsedMemory(redis)
      const seedBar = bars.create(size, 0, { label: `seed ${size} workers`.padEnd(40), note: '' })
      const started = Date.now()
      ;({ points } = await seedWorkers(platform, {
        workers: size,
        area,
        ttl: 3600,
        seed: layout === 'dense' ? 1 : 2,
        categoryIds: leaves.map((l) => l.id),
        concurrency: 200,
        onProgress: (done) => seedBar.update(done, { note: `${Math.round(done / ((Date.now() - started) / 1000))}/s` }),
      }))
      seedBar.stop()
      if (backend === 'redis') {
        const bytes = (await redisUsedMemory(redis)) - before
        memory.push({ scenario: name, store: 'our Redis layout (GEO per cell and role holding the records, where buckets)', perMillionMb: ((bytes / size) * 1e6) / 2 ** 20 })
        await layoutBreakdown(name, redis, prefix, size)
      } else {
        const { rows: r } = await sql<{ bytes: string }>`SELECT pg_total_relation_size('live_locations') AS bytes`.execute(platform.database.db)
        memory.push({ scenario: name, store: 'PostgreSQL live_locations (table and indexes)', perMillionMb: ((Number(r[0]!.bytes) / size) * 1e6) / 2 ** 20 })
        await sql`ANALYZE live_locations`.execute(platform.database.db)
      }
      const alone = await closedLoop(`${name}: LocationStore.nearby alone`, CONNECTIONS, (i) => {
        const q = queries[i % queries.length]!
        return platform.live.locations.nearby({ lat: q.lat, lon: q.lon, radiusM: RADIUS, limit: LIMIT + 1, role: 'WORKER', exclude: new Set(['00000000-0000-0000-0000-000000000000']) })
      })
      rows.push({ scenario: name, name: 'store alone: nearby(5 km, 21, WORKER), no HTTP', m: alone })
    } finally {
      await platform.close()
    }
    const baseline = await baselineKey(name, redis, points, queries)
    baselineKeys = [baseline.key, baseline.writeKey]
    server = await startServer({ DATABASE_URL: scratch.url, ...(redisUrl ? { REDIS_URL: redisUrl } : {}), REDIS_PREFIX: prefix })
    const url = server.url
    const client = await signedIn(url, ['CLIENT'])
    const workers = await Promise.all(Array.from({ length: POSTERS }, () => signedIn(url, ['WORKER'])))
    const paths = queries.map((q) => `/search?lat=${q.lat.toFixed(6)}&lon=${q.lon.toFixed(6)}&radius=${RADIUS}&limit=${LIMIT}&role=WORKER`)
    // One warm-up pass, so first-time costs (script loading, planner, hints) don't count.
    for (let i = 0; i < 200; i++) await fetch(`${url}${paths[i]}`, { headers: { authorization: `Bearer ${client}` } })

    const auth = { authorization: `Bearer ${client}` }
    const pair: { plain?: Measured; filtered?: Measured } = {}
    const measures: Record<string, () => Promise<Measured>> = {
      'ceiling: GET /health (HTTP, no auth)': () => http(`${name}: GET /health`, server!, { url: `${url}/health` }),
      'ceiling: GET /user (HTTP, auth from memory)': () => http(`${name}: GET /user`, server!, { url: `${url}/user`, headers: auth }),
      'ceiling: GET /search where nobody is': () =>
        http(`${name}: GET /search, nobody there`, server!, { url: `${url}/search?lat=0.5&lon=-30.5&radius=${RADIUS}&limit=${LIMIT}&role=WORKER`, headers: auth }),
      // The unfiltered and the filtered search in alternating slices (see pairedHttp).
      'GET /search (ours, HTTP + auth)': async () => {
        let [n, m] = [0, 0]
        ;[pair.plain, pair.filtered] = await pairedHttp(`${name}: GET /search, plain (A) and by category (B)`, server!,
          { url, headers: auth, requests: [{ setupRequest: (req) => ({ ...req, path: paths[n++ % paths.length]! }) }] },
          { url, headers: auth, requests: [{ setupRequest: (req) => ({ ...req, path: `${paths[m++ % paths.length]!}&category=${tops[0]}` }) }] })
        return pair.plain
      },
      'GET /search category=<top> (half match)': async () => pair.filtered!,
      'baseline ideal GEOSEARCH (radius of the 20th)': () =>
        closedLoop(`${name}: ideal GEOSEARCH`, CONNECTIONS, (i) => {
          const q = queries[i % queries.length]!
          return redis.call('GEOSEARCH', baseline.key, 'FROMLONLAT', q.lon, q.lat, 'BYRADIUS', baseline.radii[i % queries.length]!, 'm', 'ASC', 'COUNT', LIMIT)
        }),
      'POST /location (ours, HTTP + auth)': () => {
        let n = 0
        return http(`${name}: POST /location`, server!, {
          url,
          method: 'POST',
          requests: [
            {
              setupRequest: (req) => {
                const q = queries[(n * 13) % queries.length]!
                const token = workers[n++ % workers.length]!
                return { ...req, method: 'POST', path: '/location', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ lat: q.lat, lon: q.lon, ttl: 3600 }) }
              },
            },
          ],
        })
      },
      'baseline raw GEOADD': () =>
        closedLoop(`${name}: raw GEOADD`, CONNECTIONS, (i) => {
          const q = queries[(i * 7) % queries.length]!
          return redis.geoadd(baseline.writeKey, q.lon, q.lat, `w${(i * 7919) % points.length}`)
        }),
    }
    const rounds: Record<string, Measured>[] = []
    for (let round = 1; round <= ROUNDS; round++) {
      console.log(`  round ${round} of ${ROUNDS}`)
      const got: Record<string, Measured> = {}
      for (const [label, measure] of Object.entries(measures)) got[label] = await measure()
      rounds.push(got)
      const rate = (label: string) => Math.round(got[label]!.rate)
      console.log(
        `    search ${rate('GET /search (ours, HTTP + auth)')} req/s, by category ${rate('GET /search category=<top> (half match)')} req/s (${Math.round((100 * got['GET /search category=<top> (half match)']!.rate) / got['GET /search (ours, HTTP + auth)']!.rate)}%) vs ideal ${rate('baseline ideal GEOSEARCH (radius of the 20th)')}/s; ` +
          `POST ${rate('POST /location (ours, HTTP + auth)')} req/s vs GEOADD ${rate('baseline raw GEOADD')}/s; /health ${rate('ceiling: GET /health (HTTP, no auth)')} req/s`,
      )
    }
    const naive = await closedLoop(`${name}: naive GEOSEARCH 5 km`, CONNECTIONS, (i) => {
      const q = queries[i % queries.length]!
      return redis.call('GEOSEARCH', baseline.key, 'FROMLONLAT', q.lon, q.lat, 'BYRADIUS', RADIUS, 'm', 'ASC', 'COUNT', LIMIT)
    })
    for (const label of Object.keys(measures)) rows.push({ scenario: name, name: label, m: median(rounds.map((r) => r[label]!)) })
    rows.push({ scenario: name, name: 'baseline naive GEOSEARCH 5 km ASC COUNT 20', m: naive })
    ratios.set(name, {
      filtered: rounds.map((r) => r['GET /search category=<top> (half match)']!.rate / r['GET /search (ours, HTTP + auth)']!.rate),
      ofIdeal: rounds.map((r) => r['GET /search (ours, HTTP + auth)']!.rate / r['baseline ideal GEOSEARCH (radius of the 20th)']!.rate),
      ofGeoadd: rounds.map((r) => r['POST /location (ours, HTTP + auth)']!.rate / r['baseline raw GEOADD']!.rate),
      naive: naive.rate,
    })
  } finally {
    // Leave nothing behind: the server, the scratch database and every key made.
    await server?.stop().catch(() => server?.kill())
    if (baselineKeys.length > 0) await redis.unlink(...baselineKeys)
    if (redisUrl) await deleteRedisKeys(redisUrl, prefix)
    redis.disconnect()
    await scratch.drop()
  }
}

async function main() {
  console.log(`bench:location — ${DURATION} s a measurement, ${CONNECTIONS} connections (and ${CONNECTIONS} Redis commands in flight for baselines)`)
  console.log(`dense: around ${CITY.kind === 'city' ? `${CITY.lat},${CITY.lon}` : ''} (normal, sigma 8 km); sparse: uniform over a country box; searches: radius ${RADIUS} m, limit ${LIMIT}, role WORKER`)
  for (const backend of BACKENDS) {
    for (const [layout, sizes] of [['dense', SIZES], ['sparse', SPARSE]] as const) {
      for (const size of sizes) {
        if (backend === 'postgres' && size > PG_MAX) {
          console.log(`\n== postgres ${layout} ${size}: run at ${PG_MAX} instead (--pg-max; seeding row by row takes too long here)`)
        }
        await scenario(backend, layout, backend === 'postgres' ? Math.min(size, PG_MAX) : size)
      }
    }
  }
  bars.stop()

  console.log(`\nresults (medians of ${ROUNDS} rounds)`)
  const fmt = (n: number | undefined, d = 1) => (n === undefined ? '-' : n.toFixed(d)).padStart(9)
  console.log(`${'scenario'.padEnd(22)} ${'measurement'.padEnd(48)} ${'req/s'.padStart(9)} ${'p50 ms'.padStart(9)} ${'p99 ms'.padStart(9)} ${'API µs'.padStart(9)} ${'Redis µs'.padStart(9)} errors`)
  for (const r of rows) console.log(`${r.scenario.padEnd(22)} ${r.name.padEnd(48)} ${fmt(r.m.rate, 0)} ${fmt(r.m.p50, 2)} ${fmt(r.m.p99, 2)} ${fmt(r.m.apiUs, 0)} ${fmt(r.m.redisUs, 0)} ${r.m.errors}`)
  console.log('(API µs: the API process\'s CPU a request; Redis µs: Redis server CPU an operation during the measurement; Redis is shared with anything else running)')
  console.log('\nlive store memory per million workers')
  for (const m of memory) console.log(`${m.scenario.padEnd(22)} ${m.store.padEnd(80)} ${m.perMillionMb.toFixed(0).padStart(6)} MB`)

  if (breakdown.length > 0) {
    console.log('\nRedis layout by key kind (MEMORY USAGE of each key, per worker seeded)')
    for (const b of breakdown) console.log(`${b.scenario.padEnd(22)} ${b.kind.padEnd(50)} ${String(b.keys).padStart(7)} keys ${b.bytesPerWorker.toFixed(1).padStart(8)} bytes`)
  }

  console.log('\nsearch by category beside the unfiltered search, same rounds (target >= 80%)')
  for (const [scenarioName, r] of ratios) console.log(`${scenarioName.padEnd(22)} ${(100 * medianOf(r.filtered)).toFixed(0)}% (rounds: ${r.filtered.map((v) => `${(100 * v).toFixed(0)}%`).join(', ')})`)

  console.log('\ntargets (Redis; ratios taken within each round, then their median)')
  for (const [scenarioName, r] of ratios) {
    if (!scenarioName.startsWith('redis')) continue
    const search = rows.find((x) => x.scenario === scenarioName && x.name.startsWith('GET /search (ours'))!.m
    const pct = (values: number[]) => `${(100 * medianOf(values)).toFixed(0)}% (rounds: ${values.map((v) => `${(100 * v).toFixed(0)}%`).join(', ')})`
    console.log(
      `${scenarioName.padEnd(22)} search = ${(search.rate / r.naive).toFixed(1)}x naive (>= 10), ${pct(r.ofIdeal)} of ideal (>= 30), p99 ${search.p99.toFixed(1)} ms (< 20); POST = ${pct(r.ofGeoadd)} of GEOADD (>= 40)`,
    )
  }
  const searchOf = (scenarioName: string) => rows.find((x) => x.scenario === scenarioName && x.name.startsWith('GET /search (ours'))?.m
  const floorOf = (scenarioName: string) => rows.find((x) => x.scenario === scenarioName && x.name.startsWith('ceiling: GET /search where nobody'))?.m
  const [dense, sparse] = [searchOf('redis dense 1M'), searchOf('redis sparse 1M')]
  if (dense && sparse) {
    const [denseFloor, sparseFloor] = [floorOf('redis dense 1M')!, floorOf('redis sparse 1M')!]
    console.log(
      `sparse vs dense at 1M: ${sparse.rate.toFixed(0)} vs ${dense.rate.toFixed(0)} req/s (sparse should be no slower); each beside its own empty-search floor: ${((100 * sparse.rate) / sparseFloor.rate).toFixed(0)}% vs ${((100 * dense.rate) / denseFloor.rate).toFixed(0)}%`,
    )
  }
  console.log(`\nmachine: ${(await import('node:os')).cpus().length} cores, Node ${process.version}`)
}

main().then(
  () => process.exit(0),
  (error) => {
    bars.stop()
    console.error(error)
    process.exit(1)
  },
)
