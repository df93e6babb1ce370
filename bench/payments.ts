// npm run bench:payments — Stripe webhooks through the app beside raw `pg` inserting the same
// event rows, in one run, on a scratch database of a PostgreSQL server.
//
// The app runs with PAYMENTS=stripe against the tests' local Stripe peer. BENCH_EVENTS signed
// `account.updated` events (for BENCH_ACCOUNTS connected accounts) are sent to
// POST /webhooks/stripe, 10% of them twice, all shuffled, BENCH_CONCURRENCY at a time. Each is
// verified, recorded once and applied by the queue (the account re-read from the peer and
// updated). Figures: events applied a second (receipt of the first to the last applied), p50/p99
// from receipt to applied, and how many were applied twice. The baseline inserts the same rows
// (ON CONFLICT DO NOTHING) with raw `pg` at the same concurrency.
//
// Settings (environment): BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
// BENCH_EVENTS (default 3000), BENCH_ACCOUNTS (default 50), BENCH_CONCURRENCY (default 16).

import { randomInt } from 'node:crypto'
import cliProgress from 'cli-progress'
import { sql } from 'kysely'
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

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(i + 1)
    ;[items[i], items[j]] = [items[j]!, items[i]!]
  }
  return items
}

async function inParallel<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>, bar: cliProgress.SingleBar) {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) {
      const item = items[next++]!
      await work(item)
      bar.increment()
    }
  }))
}

async function main() {
  const peer = await startStripePeer()
  const scratch = await createScratchDatabase(SERVER)
  const config = testConfig({ DATABASE_URL: scratch.url, PAYMENTS: 'stripe', STRIPE_SECRET_KEY: peer.secretKey, STRIPE_WEBHOOK_SECRET: peer.webhookSecret, STRIPE_API_URL: peer.url, JOB_SWEEP_INTERVAL: '0', QUEUE_POLL_INTERVAL: '500' })
  const platform = await openPlatform(config)
  const provider = createStripePaymentProvider({ secretKey: peer.secretKey, webhookSecret: peer.webhookSecret, apiUrl: peer.url })
  const app = await buildApp(config, platform, { payments: provider })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const db = platform.database.db
  const bars = new cliProgress.MultiBar({ format: '{label} [{bar}] {value}/{total}', hideCursor: true }, cliProgress.Presets.shades_classic)

  try {
    // Workers with connected accounts at the peer.
    const accounts: Record<string, unknown>[] = []
    const setup = bars.create(ACCOUNTS, 0, { label: 'accounts      ' })
    for (let i = 0; i < ACCOUNTS; i++) {
      const signup = await app.inject({ method: 'POST', url: '/signup', payload: { email: `bench.${i}.${Date.now()}@example.com`, password: 'correct horse battery', first_name: 'Bench', last_name: `Worker ${i}`, roles: ['WORKER'] } })
      const signin = await app.inject({ method: 'POST', url: '/authorize', payload: { email: signup.json().email, password: 'correct horse battery' } })
      const made = await app.inject({ method: 'POST', url: '/payments/account', headers: { authorization: `Bearer ${signin.json().access_token}` } })
      accounts.push(peer.enableAccount(made.json().account_id))
      setup.increment()
    }

    const unique = Array.from({ length: EVENTS }, (_, i) => peer.event('account.updated', accounts[i % ACCOUNTS]!))
    const sent = shuffle([...unique, ...unique.filter(() => Math.random() < 0.1)])

    // Raw pg: the same event rows, inserted once each, at the same concurrency.
    const pool = new pg.Pool({ connectionString: scratch.url, max: CONCURRENCY })
    await pool.query('CREATE TABLE raw_events (id text PRIMARY KEY, type text NOT NULL, payload jsonb NOT NULL, received_at timestamptz NOT NULL)')
    const rawBar = bars.create(sent.length, 0, { label: 'raw pg inserts' })
    const rawStart = performance.now()
    await inParallel(sent, CONCURRENCY, async (event) => {
      await pool.query('INSERT INTO raw_events (id, type, payload, received_at) VALUES ($1, $2, $3, now()) ON CONFLICT DO NOTHING', [event.id, 'account.updated', event.payload])
    }, rawBar)
    const rawSeconds = (performance.now() - rawStart) / 1000
    await pool.end()

    // The app: signed webhooks over HTTP, each applied by the queue.
    const appBar = bars.create(sent.length, 0, { label: 'webhooks      ' })
    let acceptedAsNew = 0
    const appStart = performance.now()
    await inParallel(sent, CONCURRENCY, async (event) => {
      const res = await fetch(`${address}/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': event.signature }, body: event.payload })
      if (res.status !== 200) throw new Error(`webhook answered ${res.status}: ${await res.text()}`)
      if (!(await res.json()).duplicate) acceptedAsNew++
    }, appBar)
    const appliedBar = bars.create(EVENTS, 0, { label: 'applied       ' })
    for (;;) {
      const { applied } = await db.selectFrom('payment_events').select(sql<string>`count(*) FILTER (WHERE applied_at IS NOT NULL)`.as('applied')).executeTakeFirstOrThrow()
      appliedBar.update(Number(applied))
      if (Number(applied) >= EVENTS) break
      await new Promise((r) => setTimeout(r, 100))
    }
    const appSeconds = (performance.now() - appStart) / 1000
    bars.stop()

    const rows = await db.selectFrom('payment_events').select(['received_at', 'applied_at']).execute()
    const latencies = rows.map((r) => r.applied_at!.getTime() - r.received_at.getTime()).sort((a, b) => a - b)
    const rawRate = sent.length / rawSeconds
    const appRate = EVENTS / appSeconds
    console.log(`\n${EVENTS} events (${sent.length - EVENTS} duplicates), shuffled, concurrency ${CONCURRENCY}, on ${new URL(SERVER).host}`)
    console.log(`raw pg inserts:    ${rawRate.toFixed(0)} rows/s`)
    console.log(`webhooks applied:  ${appRate.toFixed(0)} events/s (${((100 * appRate) / rawRate).toFixed(0)}% of raw; target 30%)`)
    console.log(`receipt->applied:  p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms`)
    console.log(`applied twice:     ${acceptedAsNew - EVENTS} (duplicates taken as new), ${rows.length - EVENTS} extra rows`)
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
