import { sql, type Kysely } from 'kysely'

// A user's phone number for SMS notifications: used only once confirmed by a code sent to it. The
// code is kept as a hash, with its expiry and the attempts made.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE phone_numbers (
      user_id uuid PRIMARY KEY,
      number text NOT NULL,
      confirmed_at timestamptz,
      code_hash text,
      code_expires_at timestamptz,
      attempts integer NOT NULL DEFAULT 0
    )`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE phone_numbers`.execute(db)
}
