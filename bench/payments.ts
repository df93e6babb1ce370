// npm run bench:payments — Stripe webhooks through the app beside raw `pg` inserting the same
// event rows, in one run, on a scratch database of a PostgreSQL server.
//
// Three parts, as in the other benchmarks: the app (bench/app-server.ts, PAYMENTS=stripe) runs in
// a child process of its own; the tests' local Stripe peer (test/support/stripe-peer.ts) runs in
// this process, where it makes the accounts and signs the events, and answers the app's account
// re-reads over HTTP (STRIPE_API_URL); the HTTP client (node:http, kept-alive sockets) runs here
// too. So the app's figures pay for the app's CPU only, as raw `pg`'s pay for the server's.
//
// BENCH_EVENTS signed `account.updated` events (for BENCH_ACCOUNTS connected accounts) are sent
// to POST /webhooks/stripe, 10% of them twice, all shuffled, BENCH_CONCURRENCY requests at a
// time. The app verifies each signature, inserts the event row once (ON CONFLICT DO NOTHING on
// its id) and answers; its applier applies the recorded events in batches (each account named in
// a batch re-read from the peer once, the batch applied and marked applied in one transaction).
//
// The baseline: raw `pg` (a pool of BENCH_CONCURRENCY connections) inserting the same event rows
// (id, type, payload, received_at), one INSERT ... ON CONFLICT DO NOTHING per statement,
// duplicates and order as sent to the app, BENCH_CONCURRENCY statements at a time. It runs before
// and after the app; the ratio is against their mean, so drift on a shared machine counts on
// both sides.
//
// Figures: events applied a second (first request sent to last event applied), webhook requests
// answered a second, p50/p99 from receipt (the row's received_at) to applied (its applied_at),
// events applied more than once (the applier's count against the unique events), CPU used by the
// app's process and by this one (client and peer) during the app's step, memory of both, and the
// load average (the machine is shared).
//
// Settings (environment): BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
// BENCH_EVENTS (default 3000), BENCH_ACCOUNTS (default 50), BENCH_CONCURRENCY (default 16),
// LOG_LEVEL of the app (default info; its logs are written to /dev/null), BENCH_CPU_PROF (a
// directory for the app's CPU profiles).

import { randomInt } from 'node:crypto'
import http from 'node:http'
import { loadavg } from 'node:os'
import cliProgress from 'cli-progress'
import pg from 'pg'
import { createScratchDatabase } from '../test/support/backends.js'
import { startStripePeer } from '../test/support/stripe-peer.js'
import { BenchServer, cpuProfileArgs } from './support/server.js'

const env = process.env
const count = (name: string, fallback: number) => {
  const value = Number(env[name] ?? fallback)
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`)
  return value
}
const EVENTS = count('BENCH_EVENTS', 3000)
const ACCOUNTS = count('BENCH_ACCOUNTS', 50)
const CONCURRENCY = count('BENCH_CONCURRENCY', 16)
const SERVER = env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const PASSWORD = 'correct horse battery'

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`
const load = () => loadavg().map((l) => l.toFixed(1)).join(' ')

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(i + 1)
    ;[items[i], items[j]] = [items[j]!, items[i]!]
  }
  return items
}

/** Runs `work` over the items, `concurrency` at a time; answers each item's latency (ms). */
async function inParallel<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>, bar: cliProgress.SingleBar): Promise<number[]> {
  let next = 0
  const latencies: number[] = []
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) {
      const item = items[next++]!
      const start = performance.now()
      await work(item)
      latencies.push(performance.now() - start)
      bar.increment()
    }
  }))
  return latencies.sort((a, b) => a - b)
}

// Kept-alive connections, one a request in flight, as Stripe's senders keep theirs.
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY })

function call(base: string, path: string, body: string | undefined, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, base), {
      method: 'POST',
      agent,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }), ...headers },
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (text += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

type Statements = Record<string, { count: number; ms: number }>
type AppServer = BenchServer<{ type: 'payments-applied'; count: number } | { type: 'statements'; statements: Statements }, { type: 'payments-applied' } | { type: 'statements' }>
const appliedEvents = async (server: AppServer) => (await server.request<{ type: 'payments-applied'; count: number }>({ type: 'payments-applied' }, 'payments-applied')).count
const statementsSoFar = async (server: AppServer) => (await server.request<{ type: 'statements'; statements: Statements }>({ type: 'statements' }, 'statements')).statements
/** Transactions the server committed in the scratch database (every statement outside one counts as one); its statistics lag up to a second. */
const commitsSoFar = async (pool: pg.Pool) => Number((await pool.query<{ n: string }>('SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()')).rows[0]!.n)

async function main() {
  const loadBefore = load()
  const peer = await startStripePeer()
  const scratch = await createScratchDatabase(SERVER)
  let server: AppServer | undefined
  const bars = new cliProgress.MultiBar({ format: '{label} [{bar}] {value}/{total}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 3_000 }, cliProgress.Presets.shades_classic)
  const pool = new pg.Pool({ connectionString: scratch.url, max: CONCURRENCY })

  try {
    server = await BenchServer.start(new URL('./app-server.ts', import.meta.url), {
      name: 'payments',
      execArgv: ['--expose-gc', ...cpuProfileArgs()],
      env: {
        DATABASE_URL: scratch.url,
        PAYMENTS: 'stripe',
        STRIPE_SECRET_KEY: peer.secretKey,
        STRIPE_WEBHOOK_SECRET: peer.webhookSecret,
        STRIPE_API_URL: peer.url,
        JOB_SWEEP_INTERVAL: '0',
        NOTIFICATION_SWEEP_INTERVAL: '0',
        BCRYPT_COST: '4',
        RATE_LIMIT_MAX: '10000000',
        AUTH_RATE_LIMIT_MAX: '10000000',
        LOG_LEVEL: env.LOG_LEVEL ?? 'info',
        PORT: '0',
      },
    })
    const base = server.url

    // Workers with connected accounts at the peer.
    const accounts: Record<string, unknown>[] = []
    const setup = bars.create(ACCOUNTS, 0, { label: 'accounts       ' })
    for (let i = 0; i < ACCOUNTS; i++) {
      const email = `bench.${i}.${Date.now()}@example.com`
      const signup = await call(base, '/signup', JSON.stringify({ email, password: PASSWORD, first_name: 'Bench', last_name: `Worker ${i}`, roles: ['WORKER'] }))
      if (signup.status !== 201) throw new Error(`sign-up answered ${signup.status}: ${signup.body}`)
      const signin = await call(base, '/authorize', JSON.stringify({ email, password: PASSWORD }))
      if (signin.status !== 200) throw new Error(`sign-in answered ${signin.status}: ${signin.body}`)
      const made = await call(base, '/payments/account', undefined, { authorization: `Bearer ${JSON.parse(signin.body).access_token}` })
      if (made.status !== 200 && made.status !== 201) throw new Error(`POST /payments/account answered ${made.status}: ${made.body}`)
      accounts.push(peer.enableAccount(JSON.parse(made.body).account_id))
      setup.increment()
    }

    const unique = Array.from({ length: EVENTS }, (_, i) => peer.event('account.updated', accounts[i % ACCOUNTS]!))
    const sent = shuffle([...unique, ...unique.filter(() => Math.random() < 0.1)])

    // Raw pg: the same event rows, one statement each, at the same concurrency.
    const raw = async (round: number) => {
      const table = `raw_events_${round}`
      await pool.query(`CREATE TABLE ${table} (id text PRIMARY KEY, type text NOT NULL, payload jsonb NOT NULL, received_at timestamptz NOT NULL)`)
      const bar = bars.create(sent.length, 0, { label: `raw pg inserts ${round}` })
      const start = performance.now()
      const latencies = await inParallel(sent, CONCURRENCY, async (event) => {
        await pool.query(`INSERT INTO ${table} (id, type, payload, received_at) VALUES ($1, $2, $3, now()) ON CONFLICT DO NOTHING`, [event.id, 'account.updated', event.payload])
      }, bar)
      return { rate: sent.length / ((performance.now() - start) / 1000), latencies }
    }
    // Its connections opened first, as the app's are by the setup above: the rounds time statements only.
    await Promise.all(Array.from({ length: CONCURRENCY }, () => pool.query('SELECT 1')))
    const rawBefore = await raw(1)

    // The app: signed webhooks over HTTP, recorded at once, applied in batches.
    const appBar = bars.create(sent.length, 0, { label: 'webhooks       ' })
    let acceptedAsNew = 0
    const peerReadsBefore = peer.calls.length
    server.takePeakRss()
    const statementsBefore = await statementsSoFar(server)
    await new Promise((r) => setTimeout(r, 1_100))
    const commitsBefore = await commitsSoFar(pool)
    const appCpuBefore = await server.cpuMicros()
    const benchCpuBefore = process.cpuUsage()
    const appStart = performance.now()
    const requestLatencies = await inParallel(sent, CONCURRENCY, async (event) => {
      const res = await call(base, '/webhooks/stripe', event.payload, { 'stripe-signature': event.signature })
      if (res.status !== 200) throw new Error(`webhook answered ${res.status}: ${res.body}`)
      if (!JSON.parse(res.body).duplicate) acceptedAsNew++
    }, appBar)
    const answeredSeconds = (performance.now() - appStart) / 1000
    const appliedBar = bars.create(EVENTS, 0, { label: 'applied        ' })
    const deadline = Date.now() + 120_000
    let applied = await appliedEvents(server)
    while (applied < EVENTS) {
      appliedBar.update(applied)
      if (Date.now() > deadline) throw new Error(`only ${applied} of ${EVENTS} events applied after 2 minutes`)
      await new Promise((r) => setTimeout(r, 10))
      applied = await appliedEvents(server)
    }
    appliedBar.update(applied)
    const appSeconds = (performance.now() - appStart) / 1000
    const appCpu = ((await server.cpuMicros()) - appCpuBefore) / 1e6
    const benchCpuUsed = process.cpuUsage(benchCpuBefore)
    const benchCpu = (benchCpuUsed.user + benchCpuUsed.system) / 1e6
    const peerReads = peer.calls.slice(peerReadsBefore).filter((c) => c.method === 'GET' && c.path.startsWith('/v1/accounts/')).length
    const appPeakRss = server.takePeakRss()
    const statementsAfter = await statementsSoFar(server)
    await new Promise((r) => setTimeout(r, 1_100))
    const commits = (await commitsSoFar(pool)) - commitsBefore

    const rawAfter = await raw(2)
    bars.stop()

    // Settled a moment after the last one: anything applied twice would have shown by now.
    await new Promise((r) => setTimeout(r, 500))
    const appliedAtEnd = await appliedEvents(server)
    const appMemory = await server.memory()
    const benchMemory = process.memoryUsage()
    const { rows } = await pool.query<{ received_at: Date; applied_at: Date | null }>('SELECT received_at, applied_at FROM payment_events')
    const latencies = rows.filter((r) => r.applied_at).map((r) => r.applied_at!.getTime() - r.received_at.getTime()).sort((a, b) => a - b)
    const rawRate = (rawBefore.rate + rawAfter.rate) / 2
    const appRate = EVENTS / appSeconds
    const unapplied = rows.filter((r) => r.applied_at === null).length
    console.log(`\n${EVENTS} events (${sent.length - EVENTS} duplicates), shuffled, concurrency ${CONCURRENCY}, on ${new URL(SERVER).host}; load average ${loadBefore} at the start, ${load()} at the end`)
    console.log(`raw pg inserts:     ${rawBefore.rate.toFixed(0)} rows/s before, ${rawAfter.rate.toFixed(0)} after (mean ${rawRate.toFixed(0)}); statement p50 ${percentile(rawBefore.latencies, 50).toFixed(1)} ms, p99 ${percentile(rawBefore.latencies, 99).toFixed(1)} ms`)
    console.log(`webhooks answered:  ${(sent.length / answeredSeconds).toFixed(0)} req/s; request p50 ${percentile(requestLatencies, 50).toFixed(1)} ms, p99 ${percentile(requestLatencies, 99).toFixed(1)} ms`)
    console.log(`webhooks applied:   ${appRate.toFixed(0)} events/s = ${((100 * appRate) / rawRate).toFixed(0)}% of raw pg in this run (target 30%)`)
    console.log(`receipt->applied:   p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms`)
    console.log(`applied twice:      ${appliedAtEnd - EVENTS} (applied ${appliedAtEnd} for ${EVENTS} unique events); duplicates taken as new: ${acceptedAsNew - EVENTS}; rows ${rows.length}, unapplied ${unapplied}`)
    console.log(`cpu, app's step:    app process ${appCpu.toFixed(2)} s (${((1e6 * appCpu) / sent.length).toFixed(0)} us a request), bench process (client and peer) ${benchCpu.toFixed(2)} s, over ${appSeconds.toFixed(2)} s; peer account reads ${peerReads}`)
    const kinds = Object.entries(statementsAfter).map(([kind, s]) => ({ kind, count: s.count - (statementsBefore[kind]?.count ?? 0), ms: s.ms - (statementsBefore[kind]?.ms ?? 0) })).filter((k) => k.count > 0).sort((a, b) => b.count - a.count)
    const statementCount = kinds.reduce((sum, k) => sum + k.count, 0)
    const statementMs = kinds.reduce((sum, k) => sum + k.ms, 0)
    console.log(`statements:         ${(statementCount / EVENTS).toFixed(2)} an event through the app's Kysely (${kinds.map((k) => `${k.kind} ${k.count}`).join(', ')}), ${(statementMs / EVENTS).toFixed(1)} ms an event waited on them (summed over concurrent ones); ${(commits / EVENTS).toFixed(2)} commits an event at the server (the queue's polls included)`)
    console.log(`memory:             app rss ${mb(appMemory.rss)} (peak ${mb(appPeakRss)}), heap used ${mb(appMemory.heapUsed)} after GC; bench process rss ${mb(benchMemory.rss)}`)
  } finally {
    bars.stop()
    agent.destroy()
    await pool.end()
    try {
      await server?.stop()
    } catch {
      server?.kill()
    }
    await peer.close()
    await scratch.drop()
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
