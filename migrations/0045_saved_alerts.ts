import { sql, type Kysely } from 'kysely'

// Saved alerts: a worker asks to hear of open requests within a radius of a place, in some
// categories, whether or not it is live on the map. Matching a request must not read every alert:
// each alert is filed, for each of its categories, under the cells of a grid its circle touches (at
// the grid size that suits its radius, see src/features/alerts/grid.ts), so a request reads the
// cells of its place (one a size) in the categories it reaches by the primary key's btree, then
// keeps the alerts whose circle holds it. A plain table and btree, the same on PGlite and PostgreSQL.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE saved_alerts (
      id uuid PRIMARY KEY,
      worker_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      lat double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
      lon double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
      radius_m integer NOT NULL CHECK (radius_m > 0),
      category_ids uuid[] NOT NULL,
      created_at timestamptz NOT NULL
    )`.execute(db)
  await sql`CREATE INDEX saved_alerts_worker ON saved_alerts (worker_id, id DESC)`.execute(db)
  await sql`
    CREATE TABLE saved_alert_cells (
      cell bigint NOT NULL,
      category_id uuid NOT NULL,
      alert_id uuid NOT NULL REFERENCES saved_alerts (id) ON DELETE CASCADE,
      PRIMARY KEY (cell, category_id, alert_id)
    )`.execute(db)
  await sql`CREATE INDEX saved_alert_cells_alert ON saved_alert_cells (alert_id)`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE saved_alert_cells`.execute(db)
  await sql`DROP TABLE saved_alerts`.execute(db)
}
