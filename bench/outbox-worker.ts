// A worker process of bench/outbox.ts: runs the tasks of the benchmark, either through the task
// queue (MODE=queue) or as a hand-written raw `pg` consumer of an outbox table (MODE=raw). Each
// task's effect is a row of bench_effects with the time it ran; a second run of a task would add 1
// to its `runs`. Both commit the effect with the task's completion (or deletion) in one transaction.

import pg from 'pg'
import { CompiledQuery } from 'kysely'
import { openDatabase } from '../src/platform/db/index.js'
import { openQueue } from '../src/platform/queue/index.js'

const DATABASE_URL = process.env.DATABASE_URL!
const MODE = process.env.MODE
const BATCH = 20

const recordEffects = `INSERT INTO bench_effects (task, ran_at_ms) SELECT unnest($1::text[]), $2
  ON CONFLICT (task) DO UPDATE SET runs = bench_effects.runs + 1`

async function runQueue() {
  const database = await openDatabase({ databaseUrl: DATABASE_URL, dataDir: '', poolSize: 10 })
  const queue = await openQueue(database, { pollIntervalMs: 500, maintenanceIntervalSeconds: 1, work: true })
  await queue.handleBatch<{ task: string }>(
    'bench-outbox',
    async (tasks, completeIn) => {
      const ranAt = Date.now()
      await database.db.transaction().execute(async (trx) => {
        await trx.executeQuery(CompiledQuery.raw(recordEffects, [tasks.map((t) => t.data.task), ranAt]))
        await completeIn(trx)
      })
    },
    // A worker killed mid-task holds its tasks 5 s at most; then another claims them.
    { batchSize: BATCH, expireInSeconds: 5, retryLimit: 5, retryDelaySeconds: 1 },
  )
  process.send?.({ type: 'ready' })
}

async function runRaw() {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10 })
  const listener = new pg.Client({ connectionString: DATABASE_URL })
  await listener.connect()
  let wake: (() => void) | undefined
  listener.on('notification', () => wake?.())
  await listener.query('LISTEN raw_added')
  process.send?.({ type: 'ready' })
  // As many claiming loops as the queue has batches in flight: one.
  for (;;) {
    const client = await pool.connect()
    let claimed = 0
    try {
      await client.query('BEGIN')
      const { rows } = await client.query(
        `DELETE FROM raw_outbox WHERE id IN (SELECT id FROM raw_outbox ORDER BY id LIMIT ${BATCH} FOR UPDATE SKIP LOCKED) RETURNING task`,
      )
      claimed = rows.length
      if (claimed > 0) await client.query(recordEffects, [rows.map((r) => r.task), Date.now()])
      await client.query('COMMIT')
    } finally {
      client.release()
    }
    if (claimed < BATCH) await new Promise<void>((resolve) => {
      wake = resolve
      setTimeout(resolve, 500)
    })
  }
}

if (MODE === 'queue') await runQueue()
else if (MODE === 'raw') await runRaw()
else throw new Error('MODE must be queue or raw')
