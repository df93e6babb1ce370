import { sql, type Kysely } from 'kysely'

// A live location carries its user's categories, so that a search in a category is filtered
// inside the store (the nearest-first walk skips the others) rather than after it. The GIN index
// lets the planner start from a category's rows instead when it holds few of them, so a search
// for a rare category never walks the whole map.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE live_locations ADD COLUMN categories text[] NOT NULL DEFAULT '{}'`.execute(db)
  // Locations on the map now take their users' categories at once, not at their next post.
  await sql`UPDATE live_locations l SET categories = c.ids
    FROM (SELECT user_id, array_agg(category_id::text) AS ids FROM profile_categories GROUP BY user_id) c
    WHERE c.user_id = l.user_id`.execute(db)
  await sql`CREATE INDEX live_locations_categories ON live_locations USING gin (categories)`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX live_locations_categories`.execute(db)
  await sql`ALTER TABLE live_locations DROP COLUMN categories`.execute(db)
}
