import { sql, type Kysely } from 'kysely'

// An email address counts as the user's once they have followed a link mailed to it. Accounts
// made before confirmation existed are taken as confirmed: they were never asked.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE users ADD COLUMN email_confirmed_at timestamptz`.execute(db)
  await sql`UPDATE users SET email_confirmed_at = created_at WHERE email IS NOT NULL`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE users DROP COLUMN email_confirmed_at`.execute(db)
}
