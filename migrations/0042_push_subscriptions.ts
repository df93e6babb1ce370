import { sql, type Kysely } from 'kysely'

// Web Push: the browsers' and apps' subscriptions, and the service's own keys (VAPID) when the
// settings name none: made on first start and kept here, so that every process signs with them
// and subscriptions survive restarts.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE push_subscriptions (
      id uuid PRIMARY KEY,
      user_id uuid NOT NULL,
      endpoint text NOT NULL UNIQUE,
      p256dh text NOT NULL,
      auth text NOT NULL,
      user_agent text,
      created_at timestamptz NOT NULL
    )`.execute(db)
  await sql`CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id, id)`.execute(db)
  await sql`CREATE TABLE service_keys (name text PRIMARY KEY, value jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE service_keys`.execute(db)
  await sql`DROP TABLE push_subscriptions`.execute(db)
}
