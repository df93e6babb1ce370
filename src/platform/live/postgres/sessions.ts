import { sql, type Selectable } from 'kysely'
import type { DB, Database } from '../../db/index.js'
import type { SessionRecord, SessionStore } from '../types.js'
import './tables.js'

const toRecord = (row: Selectable<Database['live_sessions']>): SessionRecord => ({
  id: row.id,
  userId: row.user_id,
  userAgent: row.user_agent,
  createdAt: row.created_at,
  lastUsedAt: row.last_used_at,
  expiresAt: row.expires_at,
  maxExpiresAt: row.max_expires_at,
})

export function createPostgresSessionStore(db: DB): SessionStore {
  const live = (userId: string) =>
    db
      .selectFrom('live_sessions')
      .selectAll()
      .where('user_id', '=', userId)
      .where('expires_at', '>', sql<Date>`now()`)
      .orderBy('created_at')
      .orderBy('id')

  return {
    async create(tokenHash, s, maxPerUser) {
      await db.transaction().execute(async (trx) => {
        await trx
          .insertInto('live_sessions')
          .values({
            token_hash: tokenHash,
            id: s.id,
            user_id: s.userId,
            user_agent: s.userAgent,
            created_at: s.createdAt,
            last_used_at: s.lastUsedAt,
            expires_at: s.expiresAt,
            max_expires_at: s.maxExpiresAt,
          })
          .execute()
        // Keep the newest maxPerUser sessions (and drop the user's expired ones on the way).
        const keep = trx
          .selectFrom('live_sessions')
          .select('id')
          .where('user_id', '=', s.userId)
          .where('expires_at', '>', sql<Date>`now()`)
          .orderBy('created_at', 'desc')
          .orderBy('id', 'desc')
          .limit(maxPerUser)
        await trx.deleteFrom('live_sessions').where('user_id', '=', s.userId).where('id', 'not in', keep).execute()
      })
    },

    async touch(tokenHash, now, idleTtlSeconds) {
      const row = await db
        .updateTable('live_sessions')
        .set({
          last_used_at: now,
          expires_at: sql<Date>`least(${now}::timestamptz + make_interval(secs => ${idleTtlSeconds}), max_expires_at)`,
        })
        .where('token_hash', '=', tokenHash)
        .where('expires_at', '>', now)
        .returningAll()
        .executeTakeFirst()
      return row ? toRecord(row) : null
    },

    async list(userId) {
      return (await live(userId).execute()).map(toRecord)
    },

    async end(tokenHash) {
      const row = await db
        .deleteFrom('live_sessions')
        .where('token_hash', '=', tokenHash)
        .where('expires_at', '>', sql<Date>`now()`)
        .returningAll()
        .executeTakeFirst()
      return row ? toRecord(row) : null
    },

    async endById(userId, sessionId) {
      const result = await db
        .deleteFrom('live_sessions')
        .where('user_id', '=', userId)
        .where('id', '=', sessionId)
        .where('expires_at', '>', sql<Date>`now()`)
        .executeTakeFirst()
      return result.numDeletedRows > 0n
    },

    async endAll(userId, exceptSessionId) {
      let query = db.deleteFrom('live_sessions').where('user_id', '=', userId)
      if (exceptSessionId) query = query.where('id', '!=', exceptSessionId)
      const rows = await query.returning(['id', 'expires_at']).execute()
      return rows.filter((r) => r.expires_at > new Date()).map((r) => r.id)
    },
  }
}
