import type { Kysely } from 'kysely'

// Tables of the PostgreSQL live store (the embedded default, and deployments without Redis).
// With Redis they stay empty.
export async function up(db: Kysely<unknown>): Promise<void> {
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

  await db.schema
    .createTable('live_counters')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('count', 'integer', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('live_counters_expiry').on('live_counters').column('expires_at').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('live_counters').execute()
  await db.schema.dropTable('live_sessions').execute()
}
