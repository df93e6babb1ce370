import { sql, type Kysely } from 'kysely'

// Sessions move from the live store to the database, so that a restart of Redis (or of
// everything) signs nobody out. A user's `sessions_version` is copied into each session made by a
// sign-in that began at that version: raising it (a new password, a deletion, signing out
// everywhere) ends them all in one write, and a sign-in that read the user before that write can't
// store a session that would survive it. The PostgreSQL live store's sessions come along; those
// of a Redis live store stay there and lapse (their users sign in once more).
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE users ADD COLUMN sessions_version integer NOT NULL DEFAULT 0`.execute(db)
  await db.schema
    .createTable('sessions')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('id', 'uuid', (c) => c.notNull().unique())
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('user_agent', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('last_used_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('max_expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('sessions_version', 'integer', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('sessions_user').on('sessions').columns(['user_id', 'created_at']).execute()
  await db.schema.createIndex('sessions_expiry').on('sessions').column('expires_at').execute()
  await sql`
    INSERT INTO sessions (token_hash, id, user_id, user_agent, created_at, last_used_at, expires_at, max_expires_at, sessions_version)
    SELECT l.token_hash, l.id, l.user_id, l.user_agent, l.created_at, l.last_used_at, l.expires_at, l.max_expires_at, 0
    FROM live_sessions l JOIN users u ON u.id = l.user_id AND u.deleted_at IS NULL
    WHERE l.expires_at > now()`.execute(db)
  await db.schema.dropTable('live_sessions').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('live_sessions')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('id', 'uuid', (c) => c.notNull().unique())
    .addColumn('user_id', 'uuid', (c) => c.notNull())
    .addColumn('user_agent', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('last_used_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('max_expires_at', 'timestamptz', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('live_sessions_user').on('live_sessions').columns(['user_id', 'created_at']).execute()
  await db.schema.createIndex('live_sessions_expiry').on('live_sessions').column('expires_at').execute()
  await sql`
    INSERT INTO live_sessions (token_hash, id, user_id, user_agent, created_at, last_used_at, expires_at, max_expires_at)
    SELECT s.token_hash, s.id, s.user_id, s.user_agent, s.created_at, s.last_used_at, s.expires_at, s.max_expires_at
    FROM sessions s JOIN users u ON u.id = s.user_id AND u.sessions_version = s.sessions_version`.execute(db)
  await db.schema.dropTable('sessions').execute()
  await sql`ALTER TABLE users DROP COLUMN sessions_version`.execute(db)
}
