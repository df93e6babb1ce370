import { CompiledQuery, sql, type Selectable } from 'kysely'
import type { DB, Database } from '../../db/index.js'
import type { SessionRecord, SessionStore } from '../types.js'
import './tables.js'
import { renewalStepMs } from '../sessions.js'

const toRecord = (row: Selectable<Database['live_sessions']>): SessionRecord => ({
  id: row.id,
  userId: row.user_id,
  userAgent: row.user_agent,
  createdAt: row.created_at,
  lastUsedAt: row.last_used_at,
  expiresAt: row.expires_at,
  maxExpiresAt: row.max_expires_at,
})

// Reads a session and renews it (see touch) in one statement; its text is fixed rather than built
// on every authenticated request.
const TOUCH = `
  WITH current AS (
    SELECT * FROM live_sessions WHERE token_hash = $1 AND expires_at > $2::timestamptz
  ), renewed AS (
    UPDATE live_sessions AS l
    SET last_used_at = $2::timestamptz,
        expires_at = least($2::timestamptz + make_interval(secs => $3), c.max_expires_at)
    FROM current AS c
    WHERE l.token_hash = c.token_hash
      AND abs(extract(epoch FROM least($2::timestamptz + make_interval(secs => $3), c.max_expires_at) - c.expires_at)) >= $4
    RETURNING l.*
  )
  SELECT * FROM renewed
  UNION ALL
  SELECT * FROM current WHERE NOT EXISTS (SELECT 1 FROM renewed)`

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
      // One statement; the renewal is written only when it moves the expiry by a step (a durable
      // write and a dead row each time otherwise).
      const minMoveSeconds = renewalStepMs(idleTtlSeconds) / 1000
      const result = await db.executeQuery<Selectable<Database['live_sessions']>>(CompiledQuery.raw(TOUCH, [tokenHash, now, idleTtlSeconds, minMoveSeconds]))
      const row = result.rows[0]
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
