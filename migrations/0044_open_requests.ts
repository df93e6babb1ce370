import { sql, type Kysely } from 'kysely'

// Open requests: a job posted to a category and a place instead of one worker. Its worker_id is
// null until a worker takes it (the taking write sets it only where it is still null), and
// `open_request` stays true after, so the job keeps saying how it began. `job_alerts` records
// which workers were alerted: they (and only they) may read the request while it is open.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE jobs ALTER COLUMN worker_id DROP NOT NULL`.execute(db)
  await sql`ALTER TABLE jobs ADD COLUMN open_request boolean NOT NULL DEFAULT false`.execute(db)
  // A job without its worker is an open request nobody took: REQUESTED, or ended before anyone did.
  await sql`ALTER TABLE jobs ADD CONSTRAINT jobs_worker_or_open CHECK (worker_id IS NOT NULL OR (open_request AND status IN ('REQUESTED', 'CANCELED', 'EXPIRED')))`.execute(db)
  await sql`
    CREATE TABLE job_alerts (
      job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
      worker_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      alerted_at timestamptz NOT NULL,
      distance_m integer,
      PRIMARY KEY (job_id, worker_id)
    )`.execute(db)
  // A worker's open requests, newest first (GET /jobs pages on the job id).
  await sql`CREATE INDEX job_alerts_worker ON job_alerts (worker_id, job_id DESC)`.execute(db)
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE job_alerts`.execute(db)
  await sql`ALTER TABLE jobs DROP CONSTRAINT jobs_worker_or_open`.execute(db)
  await sql`ALTER TABLE jobs DROP COLUMN open_request`.execute(db)
  await sql`ALTER TABLE jobs ALTER COLUMN worker_id SET NOT NULL`.execute(db)
}
