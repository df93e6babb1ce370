import { sql, type Kysely } from 'kysely'

// Messaging: messages, each user's threads, blocks, reports, idempotent sends; and the one-time
// WebSocket tickets of the PostgreSQL live store (empty with Redis).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('messages')
    // UUIDv7: the id orders messages by time, so pages cut on it never repeat or skip one.
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    // Null for system messages (the job workflow's notices).
    .addColumn('sender_id', 'uuid', (c) => c.references('users.id'))
    .addColumn('recipient_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind IN ('user', 'system')`))
    // No foreign key: jobs come in a later migration, and a message outlives its job's row anyway.
    .addColumn('job_id', 'uuid')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('read_at', 'timestamptz')
    .addCheckConstraint('messages_user_has_sender', sql`kind = 'system' OR sender_id IS NOT NULL`)
    .execute()
  // The inbox: a user's received messages, newest first.
  await sql`CREATE INDEX messages_inbox ON messages (recipient_id, id DESC)`.execute(db)
  // One conversation: each direction is a range of this index (recipient, sender).
  await sql`CREATE INDEX messages_received_from ON messages (recipient_id, sender_id, id DESC)`.execute(db)
  // What a user sent, in order: catching a socket up after a reconnect.
  await sql`CREATE INDEX messages_sent ON messages (sender_id, id DESC)`.execute(db)
  // Unread counts stay cheap however long the history: only unread rows are in this index.
  await sql`CREATE INDEX messages_unread ON messages (recipient_id, sender_id) WHERE read_at IS NULL`.execute(db)
  await sql`CREATE INDEX messages_job ON messages (job_id) WHERE job_id IS NOT NULL`.execute(db)

  // One row per user and thread (the other user), pointing at the thread's newest message.
  await db.schema
    .createTable('conversations')
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('peer_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('last_message_id', 'uuid', (c) => c.notNull())
    .addPrimaryKeyConstraint('conversations_pkey', ['user_id', 'peer_id'])
    .execute()
  await sql`CREATE INDEX conversations_recent ON conversations (user_id, last_message_id DESC, peer_id)`.execute(db)

  await db.schema
    .createTable('blocks')
    .addColumn('blocker_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('blocked_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('blocks_pkey', ['blocker_id', 'blocked_id'])
    .execute()
  await db.schema.createIndex('blocks_blocked').on('blocks').columns(['blocked_id', 'blocker_id']).execute()

  await db.schema
    .createTable('reports')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('reporter_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('message_id', 'uuid', (c) => c.references('messages.id'))
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('resolved_at', 'timestamptz')
    .execute()
  await db.schema.createIndex('reports_open').on('reports').column('created_at').where(sql.ref('resolved_at'), 'is', null).execute()

  // A retried POST /send with the same Idempotency-Key answers the message of the first one.
  await db.schema
    .createTable('send_idempotency')
    .addColumn('user_id', 'uuid', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('request_hash', 'text', (c) => c.notNull())
    .addColumn('message_id', 'uuid', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('send_idempotency_pkey', ['user_id', 'key'])
    .execute()
  await db.schema.createIndex('send_idempotency_age').on('send_idempotency').column('created_at').execute()

  // Live store (PostgreSQL): single-use WebSocket tickets, by the hash of the ticket.
  await db.schema
    .createTable('live_tickets')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('live_tickets_expiry').on('live_tickets').column('expires_at').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['live_tickets', 'send_idempotency', 'reports', 'blocks', 'conversations', 'messages']) {
    await db.schema.dropTable(table).execute()
  }
}
