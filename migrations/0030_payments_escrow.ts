import { sql, type Kysely } from 'kysely'

// Escrow through the payment provider: a job's payment state on its row (it is part of what the
// job's users see, and what its moves check), workers' connected accounts, an append-only
// double-entry ledger, the provider's webhook events (each applied once), and the answers of our
// money-moving routes by Idempotency-Key. The first ledger (`payments`, one charge and one payout
// row a job) gives way to `ledger_entries`.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE jobs
    ADD COLUMN payment_status text CHECK (payment_status IN ('requires_payment_method', 'requires_action', 'held', 'captured', 'paid_out', 'released', 'refunded', 'partially_refunded', 'disputed', 'failed')),
    ADD COLUMN payment_fee integer CHECK (payment_fee >= 0),
    ADD COLUMN payment_intent_id text,
    ADD COLUMN payment_client_secret text,
    ADD COLUMN payment_next_action jsonb,
    ADD COLUMN payment_failure_code text,
    ADD COLUMN payment_decline_code text,
    ADD COLUMN payment_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN payment_charged integer NOT NULL DEFAULT 0 CHECK (payment_charged >= 0),
    ADD COLUMN payment_refunded integer NOT NULL DEFAULT 0 CHECK (payment_refunded >= 0),
    ADD COLUMN payment_transfer_id text,
    ADD COLUMN payment_disputed boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT jobs_refund_within_charge CHECK (payment_refunded <= payment_charged)`.execute(db)
  await sql`CREATE UNIQUE INDEX jobs_payment_intent ON jobs (payment_intent_id) WHERE payment_intent_id IS NOT NULL`.execute(db)

  await sql`CREATE TABLE payment_accounts (
    user_id uuid PRIMARY KEY REFERENCES users (id),
    provider text NOT NULL,
    account_id text NOT NULL UNIQUE,
    details_submitted boolean NOT NULL DEFAULT false,
    payouts_enabled boolean NOT NULL DEFAULT false,
    currently_due jsonb NOT NULL DEFAULT '[]',
    currencies jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
  )`.execute(db)

  // One row a movement of money; its entries sum to zero per currency (checked at write and by the
  // tests' properties). `key` makes each movement happen once, whoever records it twice.
  await sql`CREATE TABLE ledger_transactions (
    id uuid PRIMARY KEY,
    key text NOT NULL UNIQUE,
    kind text NOT NULL CHECK (kind IN ('charge', 'transfer', 'refund', 'reversal', 'dispute', 'payout')),
    job_id uuid REFERENCES jobs (id),
    at timestamptz NOT NULL
  )`.execute(db)
  await sql`CREATE TABLE ledger_entries (
    id bigserial PRIMARY KEY,
    transaction_id uuid NOT NULL REFERENCES ledger_transactions (id),
    account text NOT NULL,
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount bigint NOT NULL CHECK (amount <> 0)
  )`.execute(db)
  await sql`CREATE INDEX ledger_entries_account ON ledger_entries (account, currency)`.execute(db)
  await sql`CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id)`.execute(db)
  // Append-only: what was written stays as written.
  await sql`CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$`.execute(db)
  await sql`CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions FOR EACH ROW EXECUTE FUNCTION ledger_append_only()`.execute(db)
  await sql`CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries FOR EACH ROW EXECUTE FUNCTION ledger_append_only()`.execute(db)

  await sql`CREATE TABLE payment_events (
    id text PRIMARY KEY,
    type text NOT NULL,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL,
    applied_at timestamptz
  )`.execute(db)

  await sql`CREATE TABLE idempotent_requests (
    user_id uuid NOT NULL,
    key text NOT NULL,
    route text NOT NULL,
    body_hash text NOT NULL,
    status_code integer,
    answer jsonb,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
  )`.execute(db)
  await sql`CREATE INDEX idempotent_requests_created ON idempotent_requests (created_at)`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE idempotent_requests`.execute(db)
  await sql`DROP TABLE payment_events`.execute(db)
  await sql`DROP TABLE ledger_entries`.execute(db)
  await sql`DROP TABLE ledger_transactions`.execute(db)
  await sql`DROP FUNCTION ledger_append_only`.execute(db)
  await sql`DROP TABLE payment_accounts`.execute(db)
  await sql`DROP INDEX jobs_payment_intent`.execute(db)
  await sql`ALTER TABLE jobs DROP CONSTRAINT jobs_refund_within_charge, DROP COLUMN payment_status, DROP COLUMN payment_fee, DROP COLUMN payment_intent_id,
    DROP COLUMN payment_client_secret, DROP COLUMN payment_next_action, DROP COLUMN payment_failure_code, DROP COLUMN payment_decline_code,
    DROP COLUMN payment_attempts, DROP COLUMN payment_charged, DROP COLUMN payment_refunded, DROP COLUMN payment_transfer_id, DROP COLUMN payment_disputed`.execute(db)
}
