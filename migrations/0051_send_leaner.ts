import { sql, type Kysely } from 'kysely'
import * as sendFunction from './0050_send_function.js'

// A message's insert did its work in two statement triggers (the unread count, then the
// notification event), each a trigger call and a pass over the transition table, and
// send_message read the blocks, the recipient and both users in three statements, then stored in
// two. Now one trigger does both in one statement (and wakes the relay), and send_message reads
// once and stores once: the same rows and locks, fewer executor runs a message.
const SYSTEM_PEER = '00000000-0000-0000-0000-000000000000'

export async function up(db: Kysely<unknown>): Promise<void> {
  // The unread counts first, in one order (as messages_count_unread), so two statements never
  // deadlock on them; a notification event's row is new, so its order matters to nobody.
  await sql.raw(`
    CREATE FUNCTION messages_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      WITH events AS (
        INSERT INTO notification_events (message_id) SELECT id FROM new_rows ORDER BY id ON CONFLICT DO NOTHING
      )
      INSERT INTO unread_counts (user_id, peer_id, count)
      SELECT recipient_id, coalesce(sender_id, '${SYSTEM_PEER}'::uuid), count(*) FROM new_rows WHERE read_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2
      ON CONFLICT (user_id, peer_id) DO UPDATE SET count = unread_counts.count + excluded.count;
      PERFORM pg_notify('notification_events', '');
      RETURN NULL;
    END $$`).execute(db)
  await sql`DROP TRIGGER messages_unread_insert ON messages`.execute(db)
  await sql`DROP TRIGGER messages_notify ON messages`.execute(db)
  await sql`CREATE TRIGGER messages_inserted AFTER INSERT ON messages REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_inserted()`.execute(db)
  await sql`DROP FUNCTION messages_notify()`.execute(db)

  // Same arguments, same answer, same lock first. Both users and the blocker are read in one
  // statement after the lock (its own snapshot, so a block committed while the lock was awaited
  // is seen), answered as they are read, and the threads and the message are stored in one
  // statement as messagesWrite stores them: the threads' rows are locked first, then the unread
  // count by the trigger at the statement's end.
  await sql`
    CREATE OR REPLACE FUNCTION send_message(p_lock_space int4, p_lock_key int4, p_id uuid, p_sender uuid, p_recipient uuid, p_text text, p_at timestamptz)
    RETURNS TABLE (id uuid, first_name text, last_name text, picture_etag text, deleted_at timestamptz, blocker_id uuid)
    LANGUAGE plpgsql VOLATILE AS $$
    #variable_conflict use_column
    DECLARE
      r record;
      v_blocker uuid;
      v_recipient_live boolean := false;
    BEGIN
      PERFORM pg_advisory_xact_lock_shared(p_lock_space, p_lock_key);
      FOR r IN
        SELECT u.id, u.first_name, u.last_name, u.picture_etag, u.deleted_at,
          (SELECT b.blocker_id FROM blocks b
            WHERE (b.blocker_id = p_sender AND b.blocked_id = p_recipient) OR (b.blocker_id = p_recipient AND b.blocked_id = p_sender)
            LIMIT 1) AS blocker_id
        FROM users u WHERE u.id IN (p_sender, p_recipient)
      LOOP
        id := r.id; first_name := r.first_name; last_name := r.last_name; picture_etag := r.picture_etag; deleted_at := r.deleted_at; blocker_id := r.blocker_id;
        RETURN NEXT;
        v_blocker := r.blocker_id;
        IF r.id = p_recipient AND r.deleted_at IS NULL THEN v_recipient_live := true; END IF;
      END LOOP;
      IF v_blocker IS NULL AND v_recipient_live THEN
        WITH threads AS (
          INSERT INTO conversations AS c (user_id, peer_id, last_message_id)
            SELECT t.user_id, t.peer_id, p_id FROM (VALUES (p_sender, p_recipient), (p_recipient, p_sender)) AS t (user_id, peer_id) ORDER BY 1, 2
            ON CONFLICT (user_id, peer_id) DO UPDATE SET last_message_id = greatest(c.last_message_id, excluded.last_message_id)
        )
        INSERT INTO messages (id, sender_id, recipient_id, text, kind, job_id, created_at, read_at)
          VALUES (p_id, p_sender, p_recipient, p_text, 'user', NULL, p_at, NULL);
      END IF;
    END $$`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP FUNCTION send_message(int4, int4, uuid, uuid, uuid, text, timestamptz)`.execute(db)
  await sendFunction.up(db)
  await sql`DROP TRIGGER messages_inserted ON messages`.execute(db)
  await sql`DROP FUNCTION messages_inserted()`.execute(db)
  await sql.raw(`
    CREATE FUNCTION messages_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO notification_events (message_id) SELECT id FROM new_rows ORDER BY id ON CONFLICT DO NOTHING;
      PERFORM pg_notify('notification_events', '');
      RETURN NULL;
    END $$`).execute(db)
  await sql`CREATE TRIGGER messages_notify AFTER INSERT ON messages REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_notify()`.execute(db)
  await sql`CREATE TRIGGER messages_unread_insert AFTER INSERT ON messages REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_count_unread()`.execute(db)
}
