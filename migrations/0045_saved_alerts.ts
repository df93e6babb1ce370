import { sql, type Kysely } from 'kysely'

// Saved alerts: a worker asks to hear of open requests within a radius of a place, in some
// categories, whether or not it is live on the map. Matching a request must not read every alert:
// each alert is filed under every cell of a fixed grid (about 11 km square, see
// src/features/alerts/grid.ts) that its circle touches, so a request reads the one cell of its
// place by the primary key's btree, then keeps the alerts whose circle holds it. A plain table and
// btree, the same on PGlite and PostgreSQL.
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
      alert_id uuid NOT NULL REFERENCES saved_alerts (id) ON DELETE CASCADE,
      PRIMARY KEY (cell, alert_id)
    )`.execute(db)
  await sql`CREATE INDEX saved_alert_cells_alert ON saved_alert_cells (alert_id)`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE saved_alert_cells`.execute(db)
  await sql`DROP TABLE saved_alerts`.execute(db)
}
