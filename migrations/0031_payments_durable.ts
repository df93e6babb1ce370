import { sql, type Kysely } from 'kysely'

// Payments, second step:
// - provider events are applied in batches from their own rows (no queue task per event): each
//   row keeps its attempts and when to try again, and the rows still to apply have their index;
// - a job remembers the dispute opened on its payment, which an admin answers with evidence;
// - the local provider (PAYMENTS=local, Stripe's test mode embedded) keeps its intents, accounts,
//   transfers, disputes and idempotency keys in the database, so a restart forgets nothing;
// - the first ledger (`payments`, from 0005), which nothing reads or writes since 0030, goes.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE payment_events
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN last_error text`.execute(db)
  await sql`CREATE INDEX payment_events_unapplied ON payment_events (received_at) WHERE applied_at IS NULL`.execute(db)

  await sql`ALTER TABLE jobs ADD COLUMN payment_dispute_id text`.execute(db)

  await sql`CREATE TABLE local_payment_intents (
    id text PRIMARY KEY,
    status text NOT NULL,
    amount integer NOT NULL,
    currency text NOT NULL,
    client_secret text NOT NULL,
    next_action jsonb,
    failure_code text,
    decline_code text,
    job_id text,
    payment_method text NOT NULL,
    refunded integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
  )`.execute(db)
  await sql`CREATE TABLE local_accounts (
    id text PRIMARY KEY,
    details_submitted boolean NOT NULL,
    payouts_enabled boolean NOT NULL,
    currently_due jsonb NOT NULL,
    currencies jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  )`.execute(db)
  await sql`CREATE TABLE local_transfers (
    id text PRIMARY KEY,
    destination text NOT NULL,
    amount integer NOT NULL,
    reversed integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
  )`.execute(db)
  await sql`CREATE TABLE local_disputes (
    id text PRIMARY KEY,
    payment_intent text NOT NULL,
    amount integer NOT NULL,
    currency text NOT NULL,
    status text NOT NULL,
    evidence text,
    created_at timestamptz NOT NULL DEFAULT now()
  )`.execute(db)
  // What each idempotency key answered first (a result or a card error), as Stripe keeps them.
  await sql`CREATE TABLE local_idempotency_keys (
    key text PRIMARY KEY,
    answer jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  )`.execute(db)

  await sql`DROP TABLE payments`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE payments (
    id uuid PRIMARY KEY,
    job_id uuid NOT NULL REFERENCES jobs (id),
    kind text NOT NULL CHECK (kind IN ('charge', 'payout')),
    amount integer NOT NULL CHECK (amount > 0),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    debit_account text NOT NULL,
    credit_account text NOT NULL,
    provider text NOT NULL,
    provider_ref text NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT payments_two_accounts CHECK (debit_account <> credit_account),
    CONSTRAINT payments_once_per_job UNIQUE (job_id, kind)
  )`.execute(db)
  await sql`CREATE INDEX payments_debit ON payments (debit_account, created_at)`.execute(db)
  await sql`CREATE INDEX payments_credit ON payments (credit_account, created_at)`.execute(db)
  await sql`DROP TABLE local_idempotency_keys`.execute(db)
  await sql`DROP TABLE local_disputes`.execute(db)
  await sql`DROP TABLE local_transfers`.execute(db)
  await sql`DROP TABLE local_accounts`.execute(db)
  await sql`DROP TABLE local_payment_intents`.execute(db)
  await sql`ALTER TABLE jobs DROP COLUMN payment_dispute_id`.execute(db)
  await sql`DROP INDEX payment_events_unapplied`.execute(db)
  await sql`ALTER TABLE payment_events DROP COLUMN attempts, DROP COLUMN next_attempt_at, DROP COLUMN last_error`.execute(db)
}
