import type { Kysely } from 'kysely'

// Single-use tokens mailed to users (confirm an address, reset a password, undo an email change),
// stored only as SHA-256 hashes, each with its expiry and the time it was used. And the devices a
// user has signed in from, so that a sign-in from a new one is mailed to them (a
// user's first device, and the first after this migration, is only recorded).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('account_tokens')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
    // confirm_email | reset_password | undo_email_change
    .addColumn('purpose', 'text', (c) => c.notNull())
    // The address the token confirms (a new one, for a change), or the one to go back to (undo).
    .addColumn('email', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .execute()
  await db.schema.createIndex('account_tokens_user').on('account_tokens').columns(['user_id', 'purpose']).execute()
  await db.schema.createIndex('account_tokens_expiry').on('account_tokens').column('expires_at').execute()

  await db.schema
    .createTable('user_devices')
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
    // SHA-256 of the device's id (X-Device-Id) or, without one, of its user agent.
    .addColumn('device_hash', 'text', (c) => c.notNull())
    .addColumn('first_seen_at', 'timestamptz', (c) => c.notNull())
    .addColumn('last_seen_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('user_devices_pkey', ['user_id', 'device_hash'])
    .execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('user_devices').execute()
  await db.schema.dropTable('account_tokens').execute()
}
