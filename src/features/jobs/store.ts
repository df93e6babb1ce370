import { sql, type Kysely, type Selectable, type Transaction, type Updateable } from 'kysely'
import { jsonArrayFrom } from 'kysely/helpers/postgres'
import type { DB, Database } from '../../platform/db/index.js'
import type { JobStatus } from './workflow.js'

declare module '../../platform/db/types.js' {
  interface Database {
    jobs: JobsTable
    job_status_log: JobStatusLogTable
  }
}

interface JobsTable {
  id: string
  client_id: string
  worker_id: string
  title: string
  description: string
  status: JobStatus
  price_amount: number | null
  price_currency: string | null
  scheduled_at: Date | null
  location_lat: number | null
  location_lon: number | null
  location_address: string | null
  expires_at: Date
  remind_at: Date | null
  completed_at: Date | null
  due_at: Date | null
  version: number
  created_at: Date
  updated_at: Date
}

interface JobStatusLogTable {
  id: import('kysely').Generated<string>
  job_id: string
  status: JobStatus
  by: string | null
  at: Date
  reason: string | null
}

export type JobRow = Selectable<JobsTable>
export type JobChanges = Omit<Updateable<JobsTable>, 'id' | 'client_id' | 'version' | 'created_at'>
export type StatusLogRow = Omit<Selectable<JobStatusLogTable>, 'id'>

/** The two users of a job, as the workflow's messages and checks need them. */
export interface JobParties {
  client_name: string
  worker_name: string
  worker_has_picture: boolean
}

/** A job locked for a change, with its users and its status log so far. */
export type LockedJob = JobRow & JobParties & { status_log: StatusLogRow[] }

type Db = Kysely<Database> | Transaction<Database>

const LOG_COLUMNS = ['job_id', 'status', 'by', 'at', 'reason'] as const

/** The job, its users' names and the worker's picture, and its status log, in one query. */
function withParties(db: Db) {
  return db
    .selectFrom('jobs')
    .innerJoin('users as c', 'c.id', 'jobs.client_id')
    .innerJoin('users as w', 'w.id', 'jobs.worker_id')
    .selectAll('jobs')
    .select((eb) => [
      sql<string>`trim(c.first_name || ' ' || c.last_name)`.as('client_name'),
      sql<string>`trim(w.first_name || ' ' || w.last_name)`.as('worker_name'),
      sql<boolean>`w.picture_etag IS NOT NULL`.as('worker_has_picture'),
      jsonArrayFrom(eb.selectFrom('job_status_log as l').select(LOG_COLUMNS.map((c) => `l.${c}` as const)).whereRef('l.job_id', '=', 'jobs.id').orderBy('l.id')).as('status_log'),
    ])
}

/** The status log as JSON gives it back: timestamps as text. */
const revive = <T extends { status_log: (Omit<StatusLogRow, 'at'> & { at: string | Date })[] }>(row: T | undefined): (Omit<T, 'status_log'> & { status_log: StatusLogRow[] }) | undefined =>
  row && { ...row, status_log: row.status_log.map((e) => ({ ...e, at: new Date(e.at) })) }

export function createJobsStore(db: DB) {
  return {
    /** A new job and its first log entry, in one statement. */
    async insert(trx: Db, job: JobRow, entry: StatusLogRow): Promise<JobRow> {
      return trx
        .with('logged', (db) => db.insertInto('job_status_log').values(entry))
        .insertInto('jobs')
        .values(job)
        .returningAll()
        .executeTakeFirstOrThrow()
    },

    /** Users by id, as an offer needs them; deleted users are left out. */
    async users(ids: string[]) {
      const rows = await db
        .selectFrom('users')
        .select(['id', 'first_name', 'last_name', 'roles', 'picture_etag'])
        .where('id', 'in', ids)
        .where('deleted_at', 'is', null)
        .execute()
      return new Map(rows.map((r) => [r.id, r]))
    },

    async findById(id: string): Promise<JobRow | undefined> {
      return db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst()
    },

    /** The job and its users, its row locked until the transaction ends (the users' rows are not). */
    async lock(trx: Transaction<Database>, id: string): Promise<LockedJob | undefined> {
      return revive(await withParties(trx).where('jobs.id', '=', id).forUpdate('jobs').executeTakeFirst())
    },

    /**
     * The job whose time-driven work is most overdue, locked; jobs other processes hold are
     * skipped, so two sweeps never handle one job twice.
     */
    async claimDue(trx: Transaction<Database>, now: Date): Promise<LockedJob | undefined> {
      return revive(await withParties(trx).where('jobs.due_at', '<=', now).orderBy('jobs.due_at').limit(1).forUpdate('jobs').skipLocked().executeTakeFirst())
    },

    /** Changes a job and bumps its version; answers the job as it is now. */
    async update(trx: Db, id: string, changes: JobChanges): Promise<JobRow> {
      return trx
        .updateTable('jobs')
        .set({ ...changes, version: sql<number>`version + 1` })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow()
    },

    /** Moves a job: the change (a new version) and its log entry, in one statement. */
    async move(trx: Db, id: string, changes: JobChanges, entry: StatusLogRow): Promise<JobRow> {
      return trx
        .with('logged', (db) => db.insertInto('job_status_log').values(entry))
        .updateTable('jobs')
        .set({ ...changes, version: sql<number>`version + 1` })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow()
    },

    /** Changes bookkeeping only (due work), without a new version: what clients see is unchanged. */
    async setDue(trx: Db, id: string, changes: Pick<JobChanges, 'due_at' | 'remind_at'>): Promise<void> {
      await trx.updateTable('jobs').set(changes).where('id', '=', id).execute()
    },

    /** The status logs of some jobs, oldest entry first. */
    async logsOf(trx: Db, jobIds: string[]): Promise<Map<string, StatusLogRow[]>> {
      const logs = new Map<string, StatusLogRow[]>(jobIds.map((id) => [id, []]))
      if (jobIds.length === 0) return logs
      const rows = await trx.selectFrom('job_status_log').select(LOG_COLUMNS).where('job_id', 'in', jobIds).orderBy('id').execute()
      for (const row of rows) logs.get(row.job_id)?.push(row)
      return logs
    },

    /** The user's jobs, newest first: as client, as worker, or both. */
    async list(query: { userId: string; role?: 'CLIENT' | 'WORKER'; status?: JobStatus; limit: number; beforeId?: string }): Promise<JobRow[]> {
      let select = db.selectFrom('jobs').selectAll()
      if (query.role === 'CLIENT') select = select.where('client_id', '=', query.userId)
      else if (query.role === 'WORKER') select = select.where('worker_id', '=', query.userId)
      else select = select.where((eb) => eb.or([eb('client_id', '=', query.userId), eb('worker_id', '=', query.userId)]))
      if (query.status) select = select.where('status', '=', query.status)
      if (query.beforeId) select = select.where('id', '<', query.beforeId)
      return select.orderBy('id', 'desc').limit(query.limit + 1).execute()
    },

    /** The user's jobs that have not started yet (REQUESTED or ACCEPTED), as client or worker. */
    async openJobsOf(userId: string): Promise<string[]> {
      const rows = await db
        .selectFrom('jobs')
        .select('id')
        .where((eb) => eb.or([eb('client_id', '=', userId), eb('worker_id', '=', userId)]))
        .where('status', 'in', ['REQUESTED', 'ACCEPTED'])
        .execute()
      return rows.map((r) => r.id)
    },

    /** The user's offers still REQUESTED past their expiry (the sweep has not come by yet). */
    async staleOffersOf(userId: string, now: Date): Promise<string[]> {
      const rows = await db
        .selectFrom('jobs')
        .select('id')
        .where((eb) => eb.or([eb('client_id', '=', userId), eb('worker_id', '=', userId)]))
        .where('status', '=', 'REQUESTED')
        .where('expires_at', '<=', now)
        .execute()
      return rows.map((r) => r.id)
    },
  }
}

export type JobsStore = ReturnType<typeof createJobsStore>
