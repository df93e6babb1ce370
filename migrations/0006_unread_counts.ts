import { sql, type Kysely } from 'kysely'

// Unread counts kept as messages come and are read, instead of counted on every read: an inbox of
// 100,000 unread messages answers its count from one row per sender, not a scan of 100,000 rows.
// Triggers keep them, so every way a message is stored or read (a send, the job workflow's
// statements, a read mark) counts the same.
const SYSTEM_PEER = '00000000-0000-0000-0000-000000000000'

export async function up(db: Kysely<unknown>): Promise<void> {
  // One row per recipient and sender (system messages under the nil id), with its unread messages.
  await db.schema
    .createTable('unread_counts')
    .addColumn('user_id', 'uuid', (c) => c.notNull())
    .addColumn('peer_id', 'uuid', (c) => c.notNull())
    .addColumn('count', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('unread_counts_pkey', ['user_id', 'peer_id'])
    .execute()
  // Messages stored or read by processes still running the old code, between the counting and the
  // triggers, would be counted by neither: they wait until this migration commits.
  await sql`LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE`.execute(db)
  await sql`
    INSERT INTO unread_counts (user_id, peer_id, count)
    SELECT recipient_id, coalesce(sender_id, ${sql.lit(SYSTEM_PEER)}::uuid), count(*) FROM messages WHERE read_at IS NULL GROUP BY 1, 2
  `.execute(db)

  // Statement-level, over the transition tables: a read mark of many messages is one upsert per
  // sender, in one order (so two statements never deadlock on the counts).
  const upsert = (rows: string) => `
    INSERT INTO unread_counts (user_id, peer_id, count)
    SELECT user_id, peer_id, sum(d) FROM (${rows}) AS changes GROUP BY 1, 2 HAVING sum(d) <> 0 ORDER BY 1, 2
    ON CONFLICT (user_id, peer_id) DO UPDATE SET count = unread_counts.count + excluded.count`
  const unread = (table: string, d: number) =>
    `SELECT recipient_id AS user_id, coalesce(sender_id, '${SYSTEM_PEER}'::uuid) AS peer_id, ${d} AS d FROM ${table} WHERE read_at IS NULL`
  await sql.raw(`
    CREATE FUNCTION messages_count_unread() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'INSERT' THEN
        ${upsert(unread('new_rows', 1))};
      ELSIF TG_OP = 'UPDATE' THEN
        ${upsert(`${unread('new_rows', 1)} UNION ALL ${unread('old_rows', -1)}`)};
      ELSE
        ${upsert(unread('old_rows', -1))};
      END IF;
      RETURN NULL;
    END $$`).execute(db)
  await sql`CREATE TRIGGER messages_unread_insert AFTER INSERT ON messages REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_count_unread()`.execute(db)
  await sql`CREATE TRIGGER messages_unread_update AFTER UPDATE ON messages REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_count_unread()`.execute(db)
  await sql`CREATE TRIGGER messages_unread_delete AFTER DELETE ON messages REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_count_unread()`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TRIGGER messages_unread_insert ON messages`.execute(db)
  await sql`DROP TRIGGER messages_unread_update ON messages`.execute(db)
  await sql`DROP TRIGGER messages_unread_delete ON messages`.execute(db)
  await sql`DROP FUNCTION messages_count_unread()`.execute(db)
  await db.schema.dropTable('unread_counts').execute()
}
