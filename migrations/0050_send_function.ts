import { sql, type Kysely } from 'kysely'

// A user's message in one round trip. Before, a send was four: BEGIN, the pair's lock, the
// statement that read both users and the blocks and stored the message, COMMIT; each a network
// write and read on both sides, and most of a send's CPU in the API and in PostgreSQL.
//
// send_message holds the pair of users (the same shared advisory lock as blocks' holdPair, whose
// key the caller computes, so a block's exclusive lock waits for it and it waits for a block),
// then reads the blocks and both users. A function's statements each take a fresh snapshot, so
// these reads see a block that committed while the lock was awaited: a block committed first
// always wins, as with the transaction it replaces. It stores the message and moves both users'
// threads to it only when the recipient is a live user and neither blocked the other, and answers
// what a message shows of both users (deleted ones as tombstones) with the blocker, if any, as
// the caller decides from them what to answer.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE FUNCTION send_message(p_lock_space int4, p_lock_key int4, p_id uuid, p_sender uuid, p_recipient uuid, p_text text, p_at timestamptz)
    RETURNS TABLE (id uuid, first_name text, last_name text, picture_etag text, deleted_at timestamptz, blocker_id uuid)
    LANGUAGE plpgsql VOLATILE AS $$
    #variable_conflict use_column
    DECLARE
      v_blocker uuid;
      v_recipient_live boolean;
    BEGIN
      PERFORM pg_advisory_xact_lock_shared(p_lock_space, p_lock_key);
      SELECT b.blocker_id INTO v_blocker FROM blocks b
        WHERE (b.blocker_id = p_sender AND b.blocked_id = p_recipient) OR (b.blocker_id = p_recipient AND b.blocked_id = p_sender)
        LIMIT 1;
      SELECT u.deleted_at IS NULL INTO v_recipient_live FROM users u WHERE u.id = p_recipient;
      IF v_blocker IS NULL AND v_recipient_live THEN
        -- Rows are locked in the order every statement storing messages (messagesWrite) takes
        -- them, or two of them would deadlock: both threads first, in one fixed order, then the
        -- unread count the message's insert trigger upserts.
        INSERT INTO conversations AS c (user_id, peer_id, last_message_id)
          SELECT t.user_id, t.peer_id, p_id FROM (VALUES (p_sender, p_recipient), (p_recipient, p_sender)) AS t (user_id, peer_id) ORDER BY 1, 2
          ON CONFLICT (user_id, peer_id) DO UPDATE SET last_message_id = greatest(c.last_message_id, excluded.last_message_id);
        INSERT INTO messages (id, sender_id, recipient_id, text, kind, job_id, created_at, read_at)
          VALUES (p_id, p_sender, p_recipient, p_text, 'user', NULL, p_at, NULL);
      END IF;
      RETURN QUERY
        SELECT u.id, u.first_name, u.last_name, u.picture_etag, u.deleted_at, v_blocker
        FROM users u WHERE u.id IN (p_sender, p_recipient);
    END $$`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP FUNCTION send_message(int4, int4, uuid, uuid, uuid, text, timestamptz)`.execute(db)
}
