import { createHash } from 'node:crypto'
import { sql, type ColumnType, type Transaction } from 'kysely'
import type { DB, Database } from '../../platform/db/index.js'
import type { SummarizedUser } from '../accounts/index.js'

declare module '../../platform/db/types.js' {
  interface Database {
    blocks: { blocker_id: string; blocked_id: string; created_at: Date }
    reports: { id: string; reporter_id: string; user_id: string; message_id: string | null; review_id: ColumnType<string | null, string | null | undefined, string | null>; reason: string; created_at: Date; resolved_at: Date | null; resolution: ColumnType<string | null, string | null | undefined, string | null> }
  }
}

/**
 * Which of two users blocked the other, if either did, as a subquery of a statement of another
 * feature's (a send reads it with both users, in one statement).
 */
export function blockerBetween(db: DB, a: string, b: string) {
  return db
    .selectFrom('blocks')
    .select('blocker_id')
    .where((w) =>
      w.or([
        w.and([w('blocker_id', '=', a), w('blocked_id', '=', b)]),
        w.and([w('blocker_id', '=', b), w('blocked_id', '=', a)]),
      ]),
    )
    .limit(1)
}

/** The first key of the pair locks (two-key advisory locks: a space of their own, apart from one-key ones). */
export const PAIR_LOCKS = 0x626c6b73

/** The second key of a pair's lock: the same whichever way round the two users come. */
export function pairLockKey(a: string, b: string): number {
  const pair = a < b ? `${a} ${b}` : `${b} ${a}`
  return createHash('sha256').update(pair).digest().readInt32BE(0)
}

/**
 * Holds the pair of two users, whichever way round, until the transaction ends: shared by a
 * message, an offer, an open request's alert or its accept between them, which then reads whether
 * a block stands between them;
 * exclusive by a block. So a block committed first is always seen, and a block made meanwhile
 * waits until what was allowed has committed: nothing gets through once a block has committed.
 * A user's message takes the same lock in the database's send_message (migration 0050).
 */
export async function holdPair(trx: Transaction<Database>, a: string, b: string, mode: 'shared' | 'exclusive' = 'shared'): Promise<void> {
  const key = pairLockKey(a, b)
  const lock = mode === 'shared' ? sql`pg_advisory_xact_lock_shared` : sql`pg_advisory_xact_lock`
  await sql`SELECT ${lock}(${PAIR_LOCKS}::int4, ${key}::int4)`.execute(trx)
}

/**
 * Holds the pairs of one user with each of many (shared, as holdPair), then answers those of the
 * many who stand in a block with the user, either way: what alerts a job to many workers reads
 * so, in the transaction that stores the alerts. The keys are taken in ascending order (unnest
 * keeps the array's order), so two such holds never wait on each other in a circle behind blocks.
 */
export async function blockedAmong(trx: Transaction<Database>, userId: string, others: readonly string[]): Promise<Set<string>> {
  const ids = [...new Set(others)].filter((id) => id !== userId)
  if (ids.length === 0) return new Set()
  const keys = [...new Set(ids.map((id) => pairLockKey(userId, id)))].sort((a, b) => a - b)
  await sql`SELECT pg_advisory_xact_lock_shared(${PAIR_LOCKS}::int4, k) FROM unnest(ARRAY[${sql.join(keys)}]::int4[]) AS k`.execute(trx)
  const rows = await trx
    .selectFrom('blocks')
    .select('blocked_id as id')
    .where('blocker_id', '=', userId)
    .where('blocked_id', 'in', ids)
    .unionAll(trx.selectFrom('blocks').select('blocker_id as id').where('blocked_id', '=', userId).where('blocker_id', 'in', ids))
    .execute()
  return new Set(rows.map((r) => r.id))
}

export function createBlocksStore(db: DB) {
  return {
    /** Users by id as a summary shows them, deleted ones included (as tombstones). */
    async users(ids: string[]): Promise<SummarizedUser[]> {
      if (ids.length === 0) return []
      return db.selectFrom('users').select(['id', 'first_name', 'last_name', 'picture_etag', 'deleted_at']).where('id', 'in', [...new Set(ids)]).execute()
    },

    async isLiveUser(id: string): Promise<boolean> {
      const row = await db.selectFrom('users').select('id').where('id', '=', id).where('deleted_at', 'is', null).executeTakeFirst()
      return row !== undefined
    },

    /**
     * Answers false when the block existed already (with the time it was made). In a
     * transaction that holds the pair alone first (holdPair), so that it commits only once the
     * messages and offers between the two that were allowed have.
     */
    async block(trx: Transaction<Database>, blockerId: string, blockedId: string, at: Date): Promise<{ created: boolean; created_at: Date }> {
      await holdPair(trx, blockerId, blockedId, 'exclusive')
      const inserted = await trx
        .insertInto('blocks')
        .values({ blocker_id: blockerId, blocked_id: blockedId, created_at: at })
        .onConflict((oc) => oc.columns(['blocker_id', 'blocked_id']).doNothing())
        .returning('created_at')
        .executeTakeFirst()
      if (inserted) return { created: true, created_at: inserted.created_at }
      const existing = await trx.selectFrom('blocks').select('created_at').where('blocker_id', '=', blockerId).where('blocked_id', '=', blockedId).executeTakeFirstOrThrow()
      return { created: false, created_at: existing.created_at }
    },

    async unblock(blockerId: string, blockedId: string): Promise<boolean> {
      const result = await db.deleteFrom('blocks').where('blocker_id', '=', blockerId).where('blocked_id', '=', blockedId).executeTakeFirst()
      return result.numDeletedRows > 0n
    },

    async list(blockerId: string, options: { after?: { at: string; id: string }; limit: number }) {
      let query = db.selectFrom('blocks').select(['blocked_id', 'created_at']).where('blocker_id', '=', blockerId)
      if (options.after) {
        const at = new Date(options.after.at)
        const id = options.after.id
        query = query.where((eb) => eb.or([eb('created_at', '<', at), eb.and([eb('created_at', '=', at), eb('blocked_id', '>', id)])]))
      }
      return query.orderBy('created_at', 'desc').orderBy('blocked_id').limit(options.limit).execute()
    },

    /** The users the viewer blocked and the users who blocked the viewer. */
    async blockedEitherWay(viewerId: string): Promise<Set<string>> {
      const rows = await db
        .selectFrom('blocks')
        .select('blocked_id as id')
        .where('blocker_id', '=', viewerId)
        .unionAll(db.selectFrom('blocks').select('blocker_id as id').where('blocked_id', '=', viewerId))
        .execute()
      return new Set(rows.map((r) => r.id))
    },

    /** Forgets the blocks a deleted user made. */
    async forgetUser(userId: string): Promise<void> {
      await db.deleteFrom('blocks').where('blocker_id', '=', userId).execute()
    },

    async insertReport(report: { id: string; reporter_id: string; user_id: string; message_id: string | null; review_id: string | null; reason: string }, at: Date) {
      return db.insertInto('reports').values({ ...report, created_at: at, resolved_at: null }).returningAll().executeTakeFirstOrThrow()
    },
  }
}

export type BlocksStore = ReturnType<typeof createBlocksStore>
