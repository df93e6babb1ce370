import { sql, type Kysely } from 'kysely'

// Sends that arrive together are stored together: send_messages takes a batch of sends as arrays
// (each with its pair's lock key) and does for all of them, in one call, one commit, what
// send_message does for one. A send's database cost was mostly per statement and per commit (the
// call, the trigger's run, the WAL flush), not per row.
//
// The pairs' locks first (shared, as holdPair), each once, in ascending order of key as
// blockedAmong takes them, so two batches never wait on each other in a circle behind blocks.
// Then one statement, with a snapshot taken after the locks (so a block committed while they were
// awaited is seen: a block committed first always wins), reads each send's blocker and whether its
// recipient is a live user, stores the allowed ones and their threads, and answers, for each send
// by its place in the arrays (n, from 1), what a message shows of both users and the blocker. Rows
// are locked as every statement storing messages locks them: the threads first, in one order
// (one row a user and peer, at its newest message), then the unread counts in the insert
// trigger's one order, at the statement's end.
//
// Its statements run on generic plans: left to choose, the plan cache planned the arrays' statement
// afresh on every call (a custom plan looked cheaper for a batch of one), most of a small batch's
// cost in the server.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE FUNCTION send_messages(p_lock_space int4, p_lock_keys int4[], p_ids uuid[], p_senders uuid[], p_recipients uuid[], p_texts text[], p_at timestamptz[])
    RETURNS TABLE (n int, id uuid, first_name text, last_name text, picture_etag text, deleted_at timestamptz, blocker_id uuid)
    LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
    #variable_conflict use_column
    BEGIN
      PERFORM pg_advisory_xact_lock_shared(p_lock_space, k.key) FROM (SELECT DISTINCT key FROM unnest(p_lock_keys) AS key ORDER BY key) AS k;
      RETURN QUERY
        WITH sends AS MATERIALIZED (
          SELECT s.n::int AS n, s.mid, s.sender, s.recipient, s.body, s.at,
            (SELECT b.blocker_id FROM blocks b
              WHERE (b.blocker_id = s.sender AND b.blocked_id = s.recipient) OR (b.blocker_id = s.recipient AND b.blocked_id = s.sender)
              LIMIT 1) AS blocker,
            -- A lookup a send (not EXISTS, nor a join: without statistics on users the planner
            -- read every user a call for those).
            coalesce((SELECT r.deleted_at IS NULL FROM users r WHERE r.id = s.recipient), false) AS live
          FROM unnest(p_ids, p_senders, p_recipients, p_texts, p_at) WITH ORDINALITY AS s (mid, sender, recipient, body, at, n)
        ),
        allowed AS MATERIALIZED (
          SELECT a.mid, a.sender, a.recipient, a.body, a.at FROM sends a WHERE a.blocker IS NULL AND a.live
        ),
        threads AS (
          INSERT INTO conversations AS c (user_id, peer_id, last_message_id)
            SELECT DISTINCT ON (t.u, t.p) t.u, t.p, t.mid
              FROM allowed a, LATERAL (VALUES (a.sender, a.recipient, a.mid), (a.recipient, a.sender, a.mid)) AS t (u, p, mid)
              ORDER BY t.u, t.p, t.mid DESC
            ON CONFLICT (user_id, peer_id) DO UPDATE SET last_message_id = greatest(c.last_message_id, excluded.last_message_id)
        ),
        said AS (
          INSERT INTO messages (id, sender_id, recipient_id, text, kind, job_id, created_at, read_at)
            SELECT a.mid, a.sender, a.recipient, a.body, 'user', NULL, a.at, NULL FROM allowed a ORDER BY a.mid
        )
        SELECT s.n, u.id, u.first_name, u.last_name, u.picture_etag, u.deleted_at, s.blocker
          FROM sends s JOIN users u ON u.id IN (s.sender, s.recipient)
          ORDER BY s.n;
    END $$`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP FUNCTION send_messages(int4, int4[], uuid[], uuid[], uuid[], text[], timestamptz[])`.execute(db)
}
