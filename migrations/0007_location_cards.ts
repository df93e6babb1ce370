import { sql, type Kysely } from 'kysely'

// A live location carries what a search shows of its user (a card the location feature encodes),
// so that a search answers from the locations alone, and the card's version (when the account
// last changed), so that an older card never replaces a newer one. Rows from before have neither
// until the user posts again (searches read those users from the accounts instead).
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE live_locations ADD COLUMN card text, ADD COLUMN card_version bigint`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE live_locations DROP COLUMN card, DROP COLUMN card_version`.execute(db)
}
