import { sql } from 'kysely'
import type { DB } from '../../platform/db/index.js'

declare module '../../platform/db/types.js' {
  interface Database {
    job_tracking: JobTrackingTable
  }
}

interface JobTrackingTable {
  job_id: string
  worker_id: string
  client_id: string
  lat: number | null
  lon: number | null
  at: Date | null
  started_at: Date
}

/** Statuses in which a job's worker may share its position with the job's client. */
export const TRACKABLE = ['ACCEPTED', 'STARTED'] as const

export interface TrackedJob {
  id: string
  client_id: string
  /** Null for an open request nobody took (never trackable). */
  worker_id: string | null
  status: string
  location_lat: number | null
  location_lon: number | null
  /** Present while the worker shares its position. */
  tracking: { lat: number | null; lon: number | null; at: Date | null; started_at: Date } | null
}

export function createTrackingStore(db: DB) {
  return {
    /** The job and its sharing, if any: a sharing of a job no longer trackable counts as none. */
    async find(jobId: string): Promise<TrackedJob | undefined> {
      const row = await db
        .selectFrom('jobs')
        .leftJoin('job_tracking as t', (join) => join.onRef('t.job_id', '=', 'jobs.id').on('jobs.status', 'in', TRACKABLE))
        .select(['jobs.id', 'jobs.client_id', 'jobs.worker_id', 'jobs.status', 'jobs.location_lat', 'jobs.location_lon', 't.lat', 't.lon', 't.at', 't.started_at'])
        .where('jobs.id', '=', jobId)
        .executeTakeFirst()
      if (!row) return undefined
      const { lat, lon, at, started_at, ...job } = row
      return { ...job, tracking: started_at ? { lat, lon, at, started_at } : null }
    },

    /**
     * Starts sharing if the job is the worker's and trackable. The job's row is share-locked in
     * the statement, so a move committing meanwhile is waited for and its status seen: a sharing
     * never starts on a job that just left ACCEPTED or STARTED (whose trigger would have missed it).
     */
    async start(jobId: string, workerId: string, now: Date): Promise<boolean> {
      const { rows } = await sql<{ job_id: string }>`
        INSERT INTO job_tracking (job_id, worker_id, client_id, started_at)
        SELECT id, worker_id, client_id, ${now}::timestamptz FROM jobs
         WHERE id = ${jobId} AND worker_id = ${workerId} AND status IN ('ACCEPTED', 'STARTED') FOR SHARE
        ON CONFLICT (job_id) DO UPDATE SET started_at = job_tracking.started_at
        RETURNING job_id`.execute(db)
      return rows.length > 0
    },

    /** Stops sharing; answers whether it was on. */
    async stop(jobId: string, workerId: string): Promise<boolean> {
      const rows = await db.deleteFrom('job_tracking').where('job_id', '=', jobId).where('worker_id', '=', workerId).returning('job_id').execute()
      return rows.length > 0
    },

    /** Whether the worker shares its position with any job. */
    async sharing(workerId: string): Promise<boolean> {
      return (await db.selectFrom('job_tracking').select('job_id').where('worker_id', '=', workerId).limit(1).executeTakeFirst()) !== undefined
    },

    /** A new position of a worker, for each job it shares with: answers those jobs' clients. */
    async position(workerId: string, point: { lat: number; lon: number }, at: Date): Promise<{ job_id: string; client_id: string }[]> {
      return db
        .updateTable('job_tracking')
        .set({ lat: point.lat, lon: point.lon, at })
        .where('worker_id', '=', workerId)
        .returning(['job_id', 'client_id'])
        .execute()
    },

    /** Ends every sharing of a user (signed out, deleted): answers the jobs and their clients. */
    async stopAllOf(userId: string): Promise<{ job_id: string; client_id: string }[]> {
      return db.deleteFrom('job_tracking').where('worker_id', '=', userId).returning(['job_id', 'client_id']).execute()
    },
  }
}

export type TrackingStore = ReturnType<typeof createTrackingStore>
