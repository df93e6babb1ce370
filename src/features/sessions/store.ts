import { CompiledQuery, sql, type Kysely, type Transaction } from 'kysely'
import type { Database, DB } from '../../platform/db/index.js'
import type { Role, UserRow } from '../accounts/index.js'

declare module '../../platform/db/types.js' {
  interface Database {
    sessions: {
      /** SHA-256 of the token: the token itself is never stored. */
      token_hash: string
      id: string
      user_id: string
      user_agent: string | null
      created_at: Date
      last_used_at: Date
      /** When the session ends unless used again (sliding), as last written. */
      expires_at: Date
      /** When the session ends however often it is used. */
      max_expires_at: Date
      /** The user's sessions_version when the sign-in began: the session stands while they are equal. */
      sessions_version: number
    }
  }
}

export interface SessionRecord {
  id: string
  userId: string
  userAgent: string | null
  createdAt: Date
  lastUsedAt: Date
  expiresAt: Date
  maxExpiresAt: Date
}

/** A session that stands (its user not deleted, its version the user's), with its user. */
export interface StoredAuth {
  session: SessionRecord
  user: UserRow
}

interface AuthRow {
  id: string
  user_id: string
  user_agent: string | null
  created_at: Date
  last_used_at: Date
  expires_at: Date
  max_expires_at: Date
  email: string | null
  first_name: string
  last_name: string
  roles: Role[]
  picture_etag: string | null
  user_created_at: Date
  user_updated_at: Date
  email_confirmed_at: Date | null
}

// Every authenticated request that misses the cache runs this: its text is fixed (a prepared
// statement), and it reads the session and the user in one round trip. A session stands while its
// user exists and has not raised its sessions_version since the sign-in.
const AUTHENTICATE = `
  SELECT s.id, s.user_id, s.user_agent, s.created_at, s.last_used_at, s.expires_at, s.max_expires_at,
         u.email, u.first_name, u.last_name, u.roles, u.picture_etag, u.created_at AS user_created_at, u.updated_at AS user_updated_at, u.email_confirmed_at
  FROM sessions s JOIN users u ON u.id = s.user_id
  WHERE s.token_hash = $1 AND u.deleted_at IS NULL AND u.suspended_at IS NULL AND u.sessions_version = s.sessions_version`

// The renewals of many sessions in one statement; a renewal never moves a session back.
const RENEW = `
  UPDATE sessions AS s
  SET last_used_at = v.used, expires_at = least(v.used + make_interval(secs => $3), s.max_expires_at)
  FROM unnest($1::text[], $2::timestamptz[]) AS v(token_hash, used)
  WHERE s.token_hash = v.token_hash AND s.last_used_at < v.used`

const toRecord = (row: Omit<AuthRow, 'email' | 'first_name' | 'last_name' | 'roles' | 'picture_etag' | 'user_created_at' | 'user_updated_at' | 'email_confirmed_at'>): SessionRecord => ({
  id: row.id,
  userId: row.user_id,
  userAgent: row.user_agent,
  createdAt: row.created_at,
  lastUsedAt: row.last_used_at,
  expiresAt: row.expires_at,
  maxExpiresAt: row.max_expires_at,
})

/** Sessions in the database: one row a session, found by the hash of its token. */
export function createSessionsStore(db: DB) {
  /** Work that needs a transaction: the caller's, when the store is on one already. */
  const inTransaction = <T>(work: (trx: Transaction<Database>) => Promise<T>): Promise<T> =>
    db.isTransaction ? work(db as Transaction<Database>) : db.transaction().execute(work)

  /** The user's sessions that stand, as of `now`. */
  /** The sessions that stand at `now`: not lapsed, of a user not deleted, at the user's sessions_version. */
  const standingAt = (now: Date) =>
    db
      .selectFrom('sessions as s')
      .innerJoin('users as u', (join) => join.onRef('u.id', '=', 's.user_id').onRef('u.sessions_version', '=', 's.sessions_version').on('u.deleted_at', 'is', null))
      .where('s.expires_at', '>', now)
  const standing = (userId: string, now: Date) => standingAt(now).selectAll('s').where('s.user_id', '=', userId)

  return {
    /**
     * Stores a session, unless its user changed since the sign-in read it (`sessionsVersion`: a
     * new password, a deletion, a sign-out everywhere committed meanwhile) or is gone: then false.
     * Past `maxPerUser` the user's oldest sessions end, and so do its lapsed ones; answers the ids
     * of those that ended.
     */
    async create(tokenHash: string, s: SessionRecord, sessionsVersion: number, maxPerUser: number, now: Date): Promise<{ created: boolean; ended: string[] }> {
      return inTransaction(async (trx) => {
        // The user's row stays locked until the commit: a change to it waits for this session
        // and then ends it, or commits first and this insert finds the version moved on. Two
        // sign-ins of one user take turns, so the cap holds.
        const inserted = await sql`
          INSERT INTO sessions (token_hash, id, user_id, user_agent, created_at, last_used_at, expires_at, max_expires_at, sessions_version)
          SELECT ${tokenHash}, ${s.id}::uuid, u.id, ${s.userAgent}::text, ${s.createdAt}::timestamptz, ${s.lastUsedAt}::timestamptz,
                 ${s.expiresAt}::timestamptz, ${s.maxExpiresAt}::timestamptz, u.sessions_version
          FROM (SELECT id, sessions_version FROM users WHERE id = ${s.userId}::uuid AND deleted_at IS NULL AND sessions_version = ${sessionsVersion}::integer FOR NO KEY UPDATE) AS u`.execute(trx)
        if (!inserted.numAffectedRows) return { created: false, ended: [] }
        const keep = trx
          .selectFrom('sessions')
          .select('id')
          .where('user_id', '=', s.userId)
          .where('sessions_version', '=', sessionsVersion)
          .where('expires_at', '>', now)
          .orderBy('created_at', 'desc')
          .orderBy('id', 'desc')
          .limit(maxPerUser)
        const ended = await trx.deleteFrom('sessions').where('user_id', '=', s.userId).where('id', 'not in', keep).returning('id').execute()
        return { created: true, ended: ended.map((row) => row.id) }
      })
    },

    /** The session of a token hash and its user, if the session stands (its expiry is the caller's to check). */
    async authenticate(tokenHash: string): Promise<StoredAuth | null> {
      const result = await db.executeQuery<AuthRow>(CompiledQuery.raw(AUTHENTICATE, [tokenHash]))
      const row = result.rows[0]
      if (!row) return null
      return {
        session: toRecord(row),
        user: {
          id: row.user_id,
          email: row.email,
          first_name: row.first_name,
          last_name: row.last_name,
          roles: row.roles,
          picture_etag: row.picture_etag,
          created_at: row.user_created_at,
          updated_at: row.user_updated_at,
          email_confirmed_at: row.email_confirmed_at,
        },
      }
    },

    /** Writes the last use of many sessions (and their idle expiry from it) in one statement. */
    async renew(uses: readonly { tokenHash: string; usedAt: Date }[], idleTtlSeconds: number): Promise<void> {
      if (uses.length === 0) return
      await db.executeQuery(CompiledQuery.raw(RENEW, [uses.map((u) => u.tokenHash), uses.map((u) => u.usedAt.toISOString()), idleTtlSeconds]))
    },

    /** The user's sessions that stand, oldest first. */
    async list(userId: string, now: Date): Promise<SessionRecord[]> {
      const rows = await standing(userId, now).orderBy('s.created_at').orderBy('s.id').execute()
      return rows.map(toRecord)
    },

    /** Of these session ids, those that stand. */
    async standingIds(ids: readonly string[], now: Date): Promise<Set<string>> {
      if (ids.length === 0) return new Set()
      const rows = await standingAt(now).select('s.id').where(sql<boolean>`s.id = ANY(${[...ids]}::uuid[])`).execute()
      return new Set(rows.map((row) => row.id))
    },

    /** Of these users, those deleted (or unknown), and those with a session that stands. */
    async signedInUsers(userIds: readonly string[], now: Date): Promise<{ signedIn: Set<string>; gone: Set<string> }> {
      const ids = [...new Set(userIds)]
      if (ids.length === 0) return { signedIn: new Set(), gone: new Set() }
      const [signedIn, live] = await Promise.all([
        standingAt(now).select('s.user_id').distinct().where(sql<boolean>`s.user_id = ANY(${ids}::uuid[])`).execute(),
        db.selectFrom('users').select('id').where(sql<boolean>`id = ANY(${ids}::uuid[])`).where('deleted_at', 'is', null).execute(),
      ])
      const alive = new Set(live.map((r) => r.id))
      return { signedIn: new Set(signedIn.map((r) => r.user_id)), gone: new Set(ids.filter((id) => !alive.has(id))) }
    },

    /** Ends the session of a token; answers it, or null if there was none. */
    async end(tokenHash: string): Promise<{ id: string; userId: string } | null> {
      const row = await db.deleteFrom('sessions').where('token_hash', '=', tokenHash).returning(['id', 'user_id']).executeTakeFirst()
      return row ? { id: row.id, userId: row.user_id } : null
    },

    /** Ends one of the user's sessions by its id; false if the user holds no such session. */
    async endById(userId: string, sessionId: string, now: Date): Promise<boolean> {
      const row = await db
        .deleteFrom('sessions')
        .where('user_id', '=', userId)
        .where('id', '=', sessionId)
        .returning(['expires_at'])
        .executeTakeFirst()
      return row !== undefined && row.expires_at > now
    },

    /** Deletes the sessions that lapsed before `before` (their last renewals have been written by then). */
    async sweep(before: Date): Promise<number> {
      const result = await db.deleteFrom('sessions').where('expires_at', '<', before).executeTakeFirst()
      return Number(result.numDeletedRows)
    },
  }
}

/**
 * Ends every session of a user (but `keep`, if it stands) in the caller's transaction, with one
 * write to the user: its sessions_version goes up, so that no session of an earlier version
 * stands, nor one that a sign-in under way would store. The rows of those sessions go too.
 */
export async function revokeSessions(trx: Transaction<Database> | Kysely<Database>, userId: string, keep?: string): Promise<void> {
  const row = await trx
    .updateTable('users')
    .set({ sessions_version: sql<number>`sessions_version + 1` })
    .where('id', '=', userId)
    .returning('sessions_version')
    .executeTakeFirst()
  if (!row) return
  if (keep) {
    await trx
      .updateTable('sessions')
      .set({ sessions_version: row.sessions_version })
      .where('id', '=', keep)
      .where('user_id', '=', userId)
      .where('sessions_version', '=', row.sessions_version - 1)
      .execute()
  }
  await trx.deleteFrom('sessions').where('user_id', '=', userId).where('sessions_version', '<', row.sessions_version).execute()
}

export type SessionsStore = ReturnType<typeof createSessionsStore>
