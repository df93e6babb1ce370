import type { Kysely } from 'kysely'

// Where each user was shown on the map lately (its anchors: public points, never a raw
// position), kept past its live location so that a user back at a place is shown where it was
// shown before. PostgreSQL live store only; with Redis it stays empty.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('live_location_anchors')
    .addColumn('user_id', 'uuid', (c) => c.primaryKey())
    .addColumn('points', 'jsonb', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('live_location_anchors_expiry').on('live_location_anchors').column('expires_at').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('live_location_anchors').execute()
}
