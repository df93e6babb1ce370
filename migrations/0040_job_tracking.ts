import { sql, type Kysely } from 'kysely'

// A worker's exact position shared with one job's client while the job is ACCEPTED or STARTED.
// The row lives only while the sharing does: a trigger deletes it in the same transaction as the
// move that takes the job out of those statuses (or deletes the job), so no exact position is
// kept after the job whatever path moved it.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE job_tracking (
      job_id uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
      worker_id uuid NOT NULL,
      client_id uuid NOT NULL,
      lat double precision,
      lon double precision,
      at timestamptz,
      started_at timestamptz NOT NULL
    )`.execute(db)
  await sql`CREATE INDEX job_tracking_worker ON job_tracking (worker_id)`.execute(db)
  await sql.raw(`
    CREATE FUNCTION jobs_end_tracking() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      DELETE FROM job_tracking WHERE job_id = NEW.id;
      RETURN NULL;
    END $$`).execute(db)
  await sql.raw(`
    CREATE TRIGGER jobs_end_tracking AFTER UPDATE OF status ON jobs
      FOR EACH ROW WHEN (NEW.status NOT IN ('ACCEPTED', 'STARTED')) EXECUTE FUNCTION jobs_end_tracking();
  `).execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TRIGGER jobs_end_tracking ON jobs`.execute(db)
  await sql`DROP FUNCTION jobs_end_tracking()`.execute(db)
  await sql`DROP TABLE job_tracking`.execute(db)
}
