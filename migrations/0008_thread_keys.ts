import { sql, type Kysely } from 'kysely'

// A thread row is written only with a message, in the same statement, and its user and peer are
// that message's sender and recipient, which the message's own foreign keys check. The thread's
// foreign keys checked the same two users again, four times a message: with concurrent senders,
// about half of a send's database CPU (measured: 689 -> ~370 µs a send). So they go.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE conversations DROP CONSTRAINT IF EXISTS conversations_user_id_fkey`.execute(db)
  await sql`ALTER TABLE conversations DROP CONSTRAINT IF EXISTS conversations_peer_id_fkey`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE conversations ADD CONSTRAINT conversations_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id)`.execute(db)
  await sql`ALTER TABLE conversations ADD CONSTRAINT conversations_peer_id_fkey FOREIGN KEY (peer_id) REFERENCES users(id)`.execute(db)
}
