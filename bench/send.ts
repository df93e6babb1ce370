// npm run bench:send — what one POST /send costs the database and the API's database client,
// beside the way a send was stored before, in the same run.
//
// On a scratch database (BENCH_DATABASE_URL) holding BENCH_SEND_USERS users, BENCH_SEND_CONCURRENCY
// sends in flight between random pairs, in alternating rounds of BENCH_SEND_COUNT sends each:
//   ours   the messaging store's insertIfAllowed: the sends in flight together go in one call of
//          the function send_messages (migration 0052; send_message, one call a send, before it);
//   before the same work as four round trips in a transaction: BEGIN, the pair's advisory lock
//          (holdPair), one statement reading both users and the blocks and storing the message and
//          its threads, COMMIT (what a send was until migration 0050).
// It prints sends a second, the CPU of this database's server processes a send (read from /proc,
// only theirs: other databases on the server don't count) and this process's CPU a send (the
// database client's work: building the statements, the pool, the protocol), per round, and the
// median ratios. BENCH_SEND_ROUNDS (3) rounds.

import { sql } from 'kysely'
import { v7 as uuidv7 } from 'uuid'
import cliProgress from 'cli-progress'
import '../src/features/accounts/store.js'
import { blockerBetween, holdPair } from '../src/features/blocks/index.js'
import { createMessagingStore, messagesWrite, newMessageRow } from '../src/features/messaging/index.js'
import { openDatabase, type DB } from '../src/platform/db/index.js'
import { createScratchDatabase } from '../test/support/backends.js'
import { processMicros } from './support/cpu.js'
import { positiveSetting } from './support/settings.js'

const env = process.env
const DATABASE_URL = env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const USERS = positiveSetting('BENCH_SEND_USERS', 2000)
const COUNT = positiveSetting('BENCH_SEND_COUNT', 3000)
const CONCURRENCY = positiveSetting('BENCH_SEND_CONCURRENCY', 16)
const ROUNDS = positiveSetting('BENCH_SEND_ROUNDS', 3)

type Send = (message: { from: string; to: string; text: string; at: Date }) => Promise<unknown>

/** A send as it was stored before send_message: four round trips. */
const fourRoundTrips = (db: DB): Send => (message) => {
  const row = newMessageRow({ ...message, kind: 'user' })
  return db.transaction().execute(async (trx) => {
    await holdPair(trx, message.from, message.to)
    const ctx = trx
      .selectFrom('users')
      .select(['id', 'email', 'first_name', 'last_name', 'roles', 'picture_etag', 'created_at', 'updated_at', 'deleted_at'])
      .select(() => blockerBetween(trx, message.from, message.to).as('blocker_id'))
      .where('id', 'in', [message.from, message.to])
    return sql`
      WITH ctx AS (${ctx}),
      allowed AS (SELECT 1 FROM ctx WHERE ctx.id = ${row.recipient_id} AND ctx.deleted_at IS NULL AND ctx.blocker_id IS NULL),
      ${messagesWrite([row], 'allowed')}
      SELECT * FROM ctx`.execute(trx)
  })
}

async function main() {
  console.log(`bench:send — ${CONCURRENCY} sends in flight among ${USERS} users, ${COUNT} sends a round, ${ROUNDS} rounds each way`)
  const scratch = await createScratchDatabase(DATABASE_URL)
  const database = await openDatabase({ databaseUrl: scratch.url, dataDir: '', poolSize: CONCURRENCY })
  const { db } = database
  const dbName = new URL(scratch.url).pathname.slice(1)
  try {
    const users = Array.from({ length: USERS }, () => uuidv7())
    for (let i = 0; i < users.length; i += 2000) {
      await db
        .insertInto('users')
        .values(users.slice(i, i + 2000).map((id, j) => ({ id, email: `send${i + j}@example.com`, first_name: 'Send', last_name: `User ${i + j}`, password_hash: null, roles: ['CLIENT' as const], email_confirmed_at: new Date() })))
        .execute()
    }
    const store = createMessagingStore(db)
    const ways: Record<string, Send> = {
      ours: (m) => store.insertIfAllowed({ ...m, kind: 'user' }),
      before: fourRoundTrips(db),
    }

    /** CPU so far of this database's server processes, in microseconds. */
    const serverMicros = async () => {
      const { rows } = await sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE datname = ${dbName}`.execute(db)
      return rows.reduce((sum, { pid }) => sum + (processMicros(pid) ?? 0), 0)
    }

    const bars = new cliProgress.MultiBar({ format: '  {label} |{bar}| {value}/{total} sends', barsize: 24, noTTYOutput: true, notTTYSchedule: 2_000 }, cliProgress.Presets.shades_classic)
    const round = async (label: string, send: Send, n: number) => {
      const bar = bars.create(n, 0, { label: label.padEnd(24) })
      let next = 0
      const server0 = await serverMicros()
      const cpu0 = process.cpuUsage()
      const t0 = performance.now()
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < n) {
            const i = next++
            const a = Math.floor(Math.random() * users.length)
            let b = Math.floor(Math.random() * (users.length - 1))
            if (b >= a) b++
            await send({ from: users[a]!, to: users[b]!, text: `hello ${i}`, at: new Date() })
            if (i % 100 === 0) bar.update(i)
          }
        }),
      )
      const seconds = (performance.now() - t0) / 1000
      const cpu = process.cpuUsage(cpu0)
      const server = (await serverMicros()) - server0
      bar.update(n)
      bar.stop()
      return { rate: n / seconds, server: server / n, client: (cpu.user + cpu.system) / n }
    }

    await round('warm-up: ours', ways.ours!, Math.min(COUNT, 1000))
    await round('warm-up: before', ways.before!, Math.min(COUNT, 1000))
    const results: { ours: Awaited<ReturnType<typeof round>>; before: Awaited<ReturnType<typeof round>> }[] = []
    for (let r = 1; r <= ROUNDS; r++) {
      const before = await round(`round ${r}: before`, ways.before!, COUNT)
      const ours = await round(`round ${r}: ours`, ways.ours!, COUNT)
      results.push({ ours, before })
    }
    bars.stop()
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
    const line = (name: string, m: Awaited<ReturnType<typeof round>>) =>
      `${name.padEnd(8)} ${m.rate.toFixed(0).padStart(6)} sends/s   PostgreSQL ${m.server.toFixed(0).padStart(5)} µs a send   client ${m.client.toFixed(0).padStart(5)} µs a send`
    console.log('\nResults')
    results.forEach((r, i) => {
      console.log(`  round ${i + 1}`)
      console.log(`    ${line('before', r.before)}`)
      console.log(`    ${line('ours', r.ours)}`)
    })
    console.log(
      `  median ratio ours/before: PostgreSQL ${median(results.map((r) => r.ours.server / r.before.server)).toFixed(2)}, client ${median(results.map((r) => r.ours.client / r.before.client)).toFixed(2)}, sends/s ${median(results.map((r) => r.ours.rate / r.before.rate)).toFixed(2)}`,
    )
  } finally {
    await database.close()
    await scratch.drop()
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  },
)
