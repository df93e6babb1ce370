import { sql, type Kysely } from 'kysely'

// Notifications: every message stored (a user's, or a system message of a job's move, an offer, a
// payment...) is also an event for its recipient's channels. A trigger records it in the same
// transaction as the message, whatever statement stored it, and wakes the relay that turns events
// into notifications and per-channel deliveries (queue tasks) after the commit.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE notification_settings (
      user_id uuid PRIMARY KEY,
      time_zone text NOT NULL DEFAULT 'UTC',
      quiet_start text,
      quiet_end text,
      events jsonb NOT NULL DEFAULT '{}'
    )`.execute(db)
  await sql`CREATE TABLE notification_events (message_id uuid PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now())`.execute(db)
  await sql.raw(`
    CREATE FUNCTION messages_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO notification_events (message_id) SELECT id FROM new_rows ORDER BY id ON CONFLICT DO NOTHING;
      PERFORM pg_notify('notification_events', '');
      RETURN NULL;
    END $$`).execute(db)
  await sql`CREATE TRIGGER messages_notify AFTER INSERT ON messages REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_notify()`.execute(db)
  await sql`
    CREATE TABLE notifications (
      id uuid PRIMARY KEY,
      user_id uuid NOT NULL,
      event text NOT NULL,
      urgent boolean NOT NULL,
      title text NOT NULL,
      body text NOT NULL,
      job_id uuid,
      peer_id uuid,
      created_at timestamptz NOT NULL
    )`.execute(db)
  await sql`CREATE INDEX notifications_user ON notifications (user_id, id)`.execute(db)
  // One row per notification and channel: its state is what makes a delivery happen once.
  await sql`
    CREATE TABLE notification_deliveries (
      notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
      channel text NOT NULL,
      state text NOT NULL CHECK (state IN ('pending', 'queued', 'sent', 'grouped', 'skipped')),
      due_at timestamptz NOT NULL,
      group_key text,
      grouped_into uuid,
      sent_to text[] NOT NULL DEFAULT '{}',
      detail text,
      created_at timestamptz NOT NULL,
      sent_at timestamptz,
      PRIMARY KEY (notification_id, channel)
    )`.execute(db)
  await sql`CREATE INDEX notification_deliveries_due ON notification_deliveries (due_at) WHERE state = 'pending'`.execute(db)
  await sql`CREATE INDEX notification_deliveries_group ON notification_deliveries (channel, group_key, created_at) WHERE group_key IS NOT NULL`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TRIGGER messages_notify ON messages`.execute(db)
  await sql`DROP FUNCTION messages_notify()`.execute(db)
  for (const table of ['notification_deliveries', 'notifications', 'notification_events', 'notification_settings']) await sql`DROP TABLE ${sql.table(table)}`.execute(db)
}
