import { sql, type Kysely } from 'kysely'

// Live locations of the PostgreSQL live store (with Redis this table stays empty). `pos` is the
// point on earthdistance's sphere (ll_to_earth); its GiST indexes answer nearest-first (KNN)
// scans. One partial index per searchable role, so a role filter walks only that role's points.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE EXTENSION IF NOT EXISTS cube`.execute(db)
  await sql`CREATE EXTENSION IF NOT EXISTS earthdistance`.execute(db)
  await db.schema
    .createTable('live_locations')
    .addColumn('user_id', 'uuid', (c) => c.primaryKey())
    .addColumn('lat', 'float8', (c) => c.notNull())
    .addColumn('lon', 'float8', (c) => c.notNull())
    .addColumn('pos', sql`cube`, (c) => c.notNull())
    .addColumn('roles', sql`text[]`, (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute()
  await sql`CREATE INDEX live_locations_pos ON live_locations USING gist (pos)`.execute(db)
  await sql`CREATE INDEX live_locations_pos_worker ON live_locations USING gist (pos) WHERE 'WORKER' = ANY(roles)`.execute(db)
  await sql`CREATE INDEX live_locations_pos_client ON live_locations USING gist (pos) WHERE 'CLIENT' = ANY(roles)`.execute(db)
  await db.schema.createIndex('live_locations_expiry').on('live_locations').column('expires_at').execute()
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('live_locations').execute()
}
