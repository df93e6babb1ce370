import { type Kysely } from 'kysely'

// Two-factor sign-in with TOTP. `user_totp` holds the secret (sealed with TOTP_ENCRYPTION_KEY
// when one is set), whether it is on (`enabled_at`), and the time step of the last code taken, so
// that no code is taken twice. Recovery codes are kept as hashes only. A sign-in that waits for
// its second factor is an `mfa_challenges` row, found by the hash of its token, counting attempts.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('user_totp')
    .addColumn('user_id', 'uuid', (c) => c.primaryKey().references('users.id'))
    .addColumn('secret', 'text', (c) => c.notNull())
    .addColumn('enabled_at', 'timestamptz')
    .addColumn('last_step', 'bigint')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('user_recovery_codes')
    .addColumn('code_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('used_at', 'timestamptz')
    .execute()
  await db.schema.createIndex('user_recovery_codes_user').on('user_recovery_codes').column('user_id').execute()

  await db.schema
    .createTable('mfa_challenges')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('sessions_version', 'integer', (c) => c.notNull())
    .addColumn('user_agent', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('mfa_challenges_expiry').on('mfa_challenges').column('expires_at').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('mfa_challenges').execute()
  await db.schema.dropTable('user_recovery_codes').execute()
  await db.schema.dropTable('user_totp').execute()
}
