import { sql } from 'kysely'
import type { DB } from '../../platform/db/index.js'
import { PAIR_LOCKS, pairLockKey } from '../blocks/index.js'
import type { MessageRow, SenderRow } from './store.js'

/** What the database answers for one send: both users as a message shows them, and the blocker, if any. */
export type SendAnswerRow = SenderRow & { blocker_id: string | null }

/** Sends stored in one call at most. */
const MAX_BATCH = 256
/**
 * Batches under way at once from one process. While they are, new sends wait and go together in
 * the next one: under load a batch grows instead of the calls and commits multiplying.
 */
const MAX_IN_FLIGHT = 2

/**
 * Group commit of users' messages: the sends that reach a process in one turn of its event loop
 * (and those that come while the batches under way are full) go to the database in one call of
 * send_messages (migration 0052), one statement and one commit for all. Each caller gets its own
 * send's rows, as send_message would have answered them alone.
 */
export function createSendBatcher(db: DB) {
  interface Waiting { row: MessageRow; resolve: (rows: SendAnswerRow[]) => void; reject: (error: unknown) => void }
  let waiting: Waiting[] = []
  let scheduled = false
  let inFlight = 0

  const call = async (batch: Waiting[]): Promise<SendAnswerRow[][]> => {
    const rows = batch.map((w) => w.row)
    const { rows: answered } = await sql<SendAnswerRow & { n: number }>`
      SELECT * FROM send_messages(${PAIR_LOCKS}::int4, ${rows.map((r) => pairLockKey(r.sender_id!, r.recipient_id))}::int4[],
        ${rows.map((r) => r.id)}::uuid[], ${rows.map((r) => r.sender_id)}::uuid[], ${rows.map((r) => r.recipient_id)}::uuid[],
        ${rows.map((r) => r.text)}::text[], ${rows.map((r) => r.created_at.toISOString())}::timestamptz[])`.execute(db)
    const bySend: SendAnswerRow[][] = batch.map(() => [])
    for (const { n, ...row } of answered) bySend[n - 1]!.push(row)
    return bySend
  }

  const run = async (batch: Waiting[]): Promise<void> => {
    try {
      const answers = await call(batch)
      batch.forEach((w, i) => w.resolve(answers[i]!))
    } catch (error) {
      // Nothing of a failed batch was stored. One send alone gets its error; in a batch, each is
      // tried again on its own, so that what failed one (a deadlock, say) fails no other.
      if (batch.length === 1) batch[0]!.reject(error)
      else await Promise.all(batch.map((w) => call([w]).then((answers) => w.resolve(answers[0]!), w.reject)))
    }
  }

  const flush = () => {
    scheduled = false
    while (waiting.length > 0 && inFlight < MAX_IN_FLIGHT) {
      const batch = waiting.length <= MAX_BATCH ? waiting : waiting.slice(0, MAX_BATCH)
      waiting = waiting.length <= MAX_BATCH ? [] : waiting.slice(MAX_BATCH)
      inFlight++
      void run(batch).finally(() => {
        inFlight--
        flush()
      })
    }
  }

  return {
    /** Stores a user's message if it may go (as send_message); answers what the database read for it. */
    send(row: MessageRow): Promise<SendAnswerRow[]> {
      return new Promise((resolve, reject) => {
        waiting.push({ row, resolve, reject })
        if (!scheduled) {
          scheduled = true
          setImmediate(flush)
        }
      })
    },
  }
}
