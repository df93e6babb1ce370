// npm run bench:payments — Stripe webhooks through the app beside raw `pg` inserting the same
// event rows, in one run, on a scratch database of a PostgreSQL server.
//
// The app runs with PAYMENTS=stripe against the tests' local Stripe peer. BENCH_EVENTS signed
// `account.updated` events (for BENCH_ACCOUNTS connected accounts) are sent over HTTP to
// POST /webhooks/stripe, 10% of them twice, all shuffled, BENCH_CONCURRENCY requests at a time.
// The app verifies each signature, inserts the event row once (ON CONFLICT DO NOTHING on its id)
// and answers; its applier applies the recorded events in batches (each account named in a batch
// re-read from the peer once, the batch applied and marked applied in one transaction).
//
// The baseline: raw `pg` (a pool of BENCH_CONCURRENCY connections) inserting the same event rows
// (id, type, payload, received_at), one INSERT ... ON CONFLICT DO NOTHING per statement,
// duplicates and order as sent to the app, BENCH_CONCURRENCY statements at a time. It runs before
// and after the app; the ratio is against their mean, so drift on a shared machine counts on
// both sides.
//
// Figures: events applied a second (first request sent to last event applied), webhook requests
// answered a second, p50/p99 from receipt (the row's received_at) to applied (its applied_at),
// events applied more than once (the applier's count against the unique events), memory.
//
// Settings (environment): BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
// BENCH_EVENTS (default 3000), BENCH_ACCOUNTS (default 50), BENCH_CONCURRENCY (default 16).

import { randomInt } from 'node:crypto'
import http from 'node:http'
import cliProgress from 'cli-progress'
import pg from 'pg'
import { buildApp } from '../src/app.js'
import { openPlatform } from '../src/platform/index.js'
import { createStripePaymentProvider } from '../src/platform/payments/index.js'
import { createScratchDatabase, testConfig } from '../test/support/backends.js'
import { startStripePeer } from '../test/support/stripe-peer.js'

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

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`

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

async function main() {
  const peer = await startStripePeer()
  const scratch = await createScratchDatabase(SERVER)
  const config = testConfig({ DATABASE_URL: scratch.url, PAYMENTS: 'stripe', STRIPE_SECRET_KEY: peer.secretKey, STRIPE_WEBHOOK_SECRET: peer.webhookSecret, STRIPE_API_URL: peer.url, JOB_SWEEP_INTERVAL: '0', NOTIFICATION_SWEEP_INTERVAL: '0' })
  const platform = await openPlatform(config)
  const provider = createStripePaymentProvider({ secretKey: peer.secretKey, webhookSecret: peer.webhookSecret, apiUrl: peer.url })
  const app = await buildApp(config, platform, { payments: provider })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const db = platform.database.db
  const bars = new cliProgress.MultiBar({ format: '{label} [{bar}] {value}/{total}', hideCursor: true }, cliProgress.Presets.shades_classic)

  try {
    // Workers with connected accounts at the peer.
    const accounts: Record<string, unknown>[] = []
    const setup = bars.create(ACCOUNTS, 0, { label: 'accounts       ' })
    for (let i = 0; i < ACCOUNTS; i++) {
      const signup = await app.inject({ method: 'POST', url: '/signup', payload: { email: `bench.${i}.${Date.now()}@example.com`, password: 'correct horse battery', first_name: 'Bench', last_name: `Worker ${i}`, roles: ['WORKER'] } })
      const signin = await app.inject({ method: 'POST', url: '/authorize', payload: { email: signup.json().email, password: 'correct horse battery' } })
      const made = await app.inject({ method: 'POST', url: '/payments/account', headers: { authorization: `Bearer ${signin.json().access_token}` } })
      accounts.push(peer.enableAccount(made.json().account_id))
      setup.increment()
    }

    const unique = Array.from({ length: EVENTS }, (_, i) => peer.event('account.updated', accounts[i % ACCOUNTS]!))
    const sent = shuffle([...unique, ...unique.filter(() => Math.random() < 0.1)])

    // Raw pg: the same event rows, one statement each, at the same concurrency.
    const pool = new pg.Pool({ connectionString: scratch.url, max: CONCURRENCY })
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
    const rawBefore = await raw(1)

    // The app: signed webhooks over HTTP, recorded at once, applied in batches.
    const appBar = bars.create(sent.length, 0, { label: 'webhooks       ' })
    let acceptedAsNew = 0
    const appStart = performance.now()
    // Kept-alive connections, one a request in flight, as Stripe's senders keep theirs.
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY })
    const target = new URL('/webhooks/stripe', address)
    const post = (event: { payload: string; signature: string }) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(target, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'stripe-signature': event.signature, 'content-length': Buffer.byteLength(event.payload) } }, (res) => {
          let body = ''
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => (body += chunk))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
        })
        req.on('error', reject)
        req.end(event.payload)
      })
    const requestLatencies = await inParallel(sent, CONCURRENCY, async (event) => {
      const res = await post(event)
      if (res.status !== 200) throw new Error(`webhook answered ${res.status}: ${res.body}`)
      if (!JSON.parse(res.body).duplicate) acceptedAsNew++
    }, appBar)
    agent.destroy()
    const answeredSeconds = (performance.now() - appStart) / 1000
    const appliedBar = bars.create(EVENTS, 0, { label: 'applied        ' })
    const deadline = Date.now() + 120_000
    while (app.payments.appliedEvents() < EVENTS) {
      appliedBar.update(app.payments.appliedEvents())
      if (Date.now() > deadline) throw new Error(`only ${app.payments.appliedEvents()} of ${EVENTS} events applied after 2 minutes`)
      await new Promise((r) => setTimeout(r, 10))
    }
    appliedBar.update(app.payments.appliedEvents())
    const appSeconds = (performance.now() - appStart) / 1000
    const memory = process.memoryUsage()

    const rawAfter = await raw(2)
    await pool.end()
    bars.stop()

    const rows = await db.selectFrom('payment_events').select(['received_at', 'applied_at']).execute()
    const latencies = rows.map((r) => r.applied_at!.getTime() - r.received_at.getTime()).sort((a, b) => a - b)
    const rawRate = (rawBefore.rate + rawAfter.rate) / 2
    const appRate = EVENTS / appSeconds
    const unapplied = rows.filter((r) => r.applied_at === null).length
    console.log(`\n${EVENTS} events (${sent.length - EVENTS} duplicates), shuffled, concurrency ${CONCURRENCY}, on ${new URL(SERVER).host}`)
    console.log(`raw pg inserts:     ${rawBefore.rate.toFixed(0)} rows/s before, ${rawAfter.rate.toFixed(0)} after (mean ${rawRate.toFixed(0)}); statement p50 ${percentile(rawBefore.latencies, 50).toFixed(1)} ms, p99 ${percentile(rawBefore.latencies, 99).toFixed(1)} ms`)
    console.log(`webhooks answered:  ${(sent.length / answeredSeconds).toFixed(0)} req/s; request p50 ${percentile(requestLatencies, 50).toFixed(1)} ms, p99 ${percentile(requestLatencies, 99).toFixed(1)} ms`)
    console.log(`webhooks applied:   ${appRate.toFixed(0)} events/s = ${((100 * appRate) / rawRate).toFixed(0)}% of raw pg in this run (target 30%)`)
    console.log(`receipt->applied:   p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms`)
    console.log(`applied twice:      ${app.payments.appliedEvents() - EVENTS} (applied ${app.payments.appliedEvents()} for ${EVENTS} unique events); duplicates taken as new: ${acceptedAsNew - EVENTS}; rows ${rows.length}, unapplied ${unapplied}`)
    console.log(`memory:             rss ${mb(memory.rss)}, heap used ${mb(memory.heapUsed)}`)
  } finally {
    bars.stop()
    await app.close()
    await platform.close()
    await peer.close()
    await scratch.drop()
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
