import { sql, type Kysely } from 'kysely'

// Jobs: offers from clients to workers, their status history, and the ledger of payments.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('jobs')
    // UUIDv7: newest-first pages cut on the id.
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('client_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('worker_id', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status IN ('REQUESTED', 'ACCEPTED', 'DECLINED', 'CANCELED', 'EXPIRED', 'STARTED', 'COMPLETED', 'PENDING_PAYMENT', 'PAID')`),
    )
    // Money in minor units (cents) with its ISO 4217 currency, both or neither.
    .addColumn('price_amount', 'integer', (c) => c.check(sql`price_amount > 0`))
    .addColumn('price_currency', 'text', (c) => c.check(sql`price_currency ~ '^[A-Z]{3}$'`))
    .addColumn('scheduled_at', 'timestamptz')
    .addColumn('location_lat', 'double precision', (c) => c.check(sql`location_lat BETWEEN -90 AND 90`))
    .addColumn('location_lon', 'double precision', (c) => c.check(sql`location_lon BETWEEN -180 AND 180`))
    .addColumn('location_address', 'text')
    // An offer left REQUESTED past this becomes EXPIRED.
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    // When the worker is reminded of an open offer; null once reminded (or never to be).
    .addColumn('remind_at', 'timestamptz')
    .addColumn('completed_at', 'timestamptz')
    // The next time the job moves or speaks by itself (expiry, reminder, auto-approval, payment
    // retry); null when nothing is due. The sweep claims due rows with FOR UPDATE SKIP LOCKED.
    .addColumn('due_at', 'timestamptz')
    // Bumped by every change: the ETag, and what If-Match is checked against.
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addCheckConstraint('jobs_not_to_oneself', sql`client_id <> worker_id`)
    .addCheckConstraint('jobs_price_whole', sql`(price_amount IS NULL) = (price_currency IS NULL)`)
    .addCheckConstraint('jobs_location_whole', sql`(location_lat IS NULL) = (location_lon IS NULL)`)
    .execute()
  await sql`CREATE INDEX jobs_client ON jobs (client_id, id DESC)`.execute(db)
  await sql`CREATE INDEX jobs_worker ON jobs (worker_id, id DESC)`.execute(db)
  await sql`CREATE INDEX jobs_due ON jobs (due_at) WHERE due_at IS NOT NULL`.execute(db)

  await db.schema
    .createTable('job_status_log')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity())
    .addColumn('job_id', 'uuid', (c) => c.notNull().references('jobs.id').onDelete('cascade'))
    .addColumn('status', 'text', (c) => c.notNull())
    // The user who moved the job; null when time or the payment provider did.
    .addColumn('by', 'uuid', (c) => c.references('users.id'))
    .addColumn('at', 'timestamptz', (c) => c.notNull())
    .addColumn('reason', 'text')
    .execute()
  await db.schema.createIndex('job_status_log_job').on('job_status_log').columns(['job_id', 'id']).execute()

  // The ledger, double entry: each row moves `amount` out of `credit_account` into
  // `debit_account` (an account's balance is its debits minus its credits, so the ledger as a
  // whole always sums to zero). Accounts are named `client:<user id>`, `escrow:<job id>`,
  // `worker:<user id>`. A job is charged once and paid out once.
  await db.schema
    .createTable('payments')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('job_id', 'uuid', (c) => c.notNull().references('jobs.id'))
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind IN ('charge', 'payout')`))
    .addColumn('amount', 'integer', (c) => c.notNull().check(sql`amount > 0`))
    .addColumn('currency', 'text', (c) => c.notNull().check(sql`currency ~ '^[A-Z]{3}$'`))
    .addColumn('debit_account', 'text', (c) => c.notNull())
    .addColumn('credit_account', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('provider_ref', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addCheckConstraint('payments_two_accounts', sql`debit_account <> credit_account`)
    .addUniqueConstraint('payments_once_per_job', ['job_id', 'kind'])
    .execute()
  await db.schema.createIndex('payments_debit').on('payments').columns(['debit_account', 'created_at']).execute()
  await db.schema.createIndex('payments_credit').on('payments').columns(['credit_account', 'created_at']).execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('payments').execute()
  await db.schema.dropTable('job_status_log').execute()
  await db.schema.dropTable('jobs').execute()
}
