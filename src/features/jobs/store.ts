import { CompiledQuery, sql, type ExpressionBuilder, type Kysely, type Selectable, type Transaction, type Updateable } from 'kysely'
import { jsonArrayFrom } from 'kysely/helpers/postgres'
import type { DB, Database } from '../../platform/db/index.js'
import { blockedAmong } from '../blocks/index.js'
import { messagesWrite, newMessageRow, type MessageRow, type NewMessage, type SenderRow } from '../messaging/index.js'
import type { JobStatus } from './workflow.js'

export const PAYMENT_STATUSES = ['requires_payment_method', 'requires_action', 'held', 'captured', 'paid_out', 'released', 'refunded', 'partially_refunded', 'disputed', 'failed'] as const
export type PaymentStatus = (typeof PAYMENT_STATUSES)[number]

declare module '../../platform/db/types.js' {
  interface Database {
    jobs: JobsTable
    job_status_log: JobStatusLogTable
    job_alerts: JobAlertsTable
  }
}

/** The workers alerted to an open request: they may read it while nobody took it. */
interface JobAlertsTable {
  job_id: string
  worker_id: string
  alerted_at: Date
  distance_m: number | null
}

interface JobsTable {
  id: string
  client_id: string
  /** Null while an open request waits for a worker to take it. */
  worker_id: string | null
  /** Posted to a category and a place instead of one worker (alerted workers may take it). */
  open_request: boolean
  title: string
  description: string
  status: JobStatus
  price_amount: number | null
  price_currency: string | null
  scheduled_at: Date | null
  location_lat: number | null
  location_lon: number | null
  location_address: string | null
  category_id: string | null
  expires_at: Date
  remind_at: Date | null
  completed_at: Date | null
  due_at: Date | null
  /** The escrow (src/features/payments): null for a job with no price yet. */
  payment_status: PaymentStatus | null
  /** The platform's fee out of the price, fixed when the money is taken. */
  payment_fee: number | null
  payment_intent_id: string | null
  payment_client_secret: string | null
  payment_next_action: Record<string, unknown> | null
  payment_failure_code: string | null
  payment_decline_code: string | null
  /** Declined attempts so far: the next attempt's idempotency key counts from them. */
  payment_attempts: number
  payment_charged: number
  payment_refunded: number
  payment_transfer_id: string | null
  payment_disputed: boolean
  /** The dispute opened on the payment (its provider id), which an admin answers with evidence. */
  payment_dispute_id: string | null
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

/** The two users of a job, as the workflow's messages and checks need them (deleted ones as tombstones). */
export interface JobParties {
  client: SenderRow
  /** Null while an open request waits for a worker. */
  worker: SenderRow | null
  client_name: string
  worker_name: string
  worker_has_picture: boolean
  /** Whether the worker's connected account can be paid (src/features/payments). */
  worker_payouts_enabled: boolean
}

/** A job as a change decides on it: with its users and its status log so far. */
export type JobWithParties = JobRow & JobParties & { status_log: StatusLogRow[] }

type Db = Kysely<Database> | Transaction<Database>

const LOG_COLUMNS = ['job_id', 'status', 'by', 'at', 'reason'] as const
const PARTY_COLUMNS = ['id', 'first_name', 'last_name', 'picture_etag', 'deleted_at'] as const

/** The job, both its users and its status log, in one query. */
function withParties(db: Db) {
  return db
    .selectFrom('jobs')
    .innerJoin('users as c', 'c.id', 'jobs.client_id')
    .leftJoin('users as w', 'w.id', 'jobs.worker_id')
    .selectAll('jobs')
    .select(PARTY_COLUMNS.map((c) => `c.${c} as c_${c}` as const))
    .select(PARTY_COLUMNS.map((c) => `w.${c} as w_${c}` as const))
    .select((eb) => [
      eb.selectFrom('payment_accounts as pa').select('pa.payouts_enabled').whereRef('pa.user_id', '=', 'jobs.worker_id').as('worker_payouts_enabled'),
      jsonArrayFrom(eb.selectFrom('job_status_log as l').select(LOG_COLUMNS.map((c) => `l.${c}` as const)).whereRef('l.job_id', '=', 'jobs.id').orderBy('l.id')).as('status_log'),
    ])
}

type PartiesRow = NonNullable<Awaited<ReturnType<ReturnType<typeof withParties>['executeTakeFirst']>>>

const nameOf = (user: SenderRow) => `${user.first_name} ${user.last_name}`.trim()

/** The row as the query gives it back, its users in objects and its log's timestamps (JSON text) as dates. */
function revive(row: PartiesRow | undefined): JobWithParties | undefined {
  if (!row) return undefined
  const job: Record<string, unknown> = {}
  const client: Record<string, unknown> = {}
  const worker: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(row)) {
    if (key.startsWith('c_')) client[key.slice(2)] = value
    else if (key.startsWith('w_')) worker[key.slice(2)] = value
    else if (key !== 'worker_payouts_enabled') job[key] = value
  }
  const c = client as unknown as SenderRow
  // An open request nobody took has no worker: the left join gives nulls.
  const w = (job as unknown as JobRow).worker_id === null ? null : (worker as unknown as SenderRow)
  return {
    ...(job as unknown as JobRow),
    client: c,
    worker: w,
    client_name: nameOf(c),
    worker_name: w ? nameOf(w) : '',
    worker_has_picture: w !== null && w.picture_etag !== null,
    worker_payouts_enabled: row.worker_payouts_enabled === true,
    status_log: (row.status_log as (Omit<StatusLogRow, 'at'> & { at: string })[]).map((e) => ({ ...e, at: new Date(e.at) })),
  }
}

export function createJobsStore(db: DB) {
  let findWithPartiesSql: string | undefined
  return {
    /** A new job, its first log entry and its messages, in ONE statement (atomic, one round trip). */
    async create(trx: Db, job: JobRow, entry: StatusLogRow, messages: NewMessage[]): Promise<{ row: JobRow; messages: MessageRow[] }> {
      const said = messages.map(newMessageRow)
      const created = trx.insertInto('jobs').values(job).returningAll()
      const logged = trx.insertInto('job_status_log').values(entry)
      const { rows } = await sql<JobRow>`WITH created AS (${created}), logged AS (${logged}), ${messagesWrite(said)} SELECT * FROM created`.execute(trx)
      return { row: rows[0]!, messages: said }
    },

    async findById(id: string): Promise<JobRow | undefined> {
      return db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst()
    },

    /** The job with its users and its status log, as a change decides on it; no lock is taken. */
    async findWithParties(id: string): Promise<JobWithParties | undefined> {
      // Every change starts with this read: its text is built once, then only run with each id.
      findWithPartiesSql ??= withParties(db).where('jobs.id', '=', id).compile().sql
      const { rows } = await db.executeQuery<PartiesRow>(CompiledQuery.raw(findWithPartiesSql, [id]))
      return revive(rows[0])
    },

    /** The same, its row locked until the transaction ends (the users' rows are not). */
    async lock(trx: Transaction<Database>, id: string): Promise<JobWithParties | undefined> {
      return revive(await withParties(trx).where('jobs.id', '=', id).forUpdate('jobs').executeTakeFirst())
    },

    /**
     * The job whose time-driven work is most overdue, locked; jobs other processes hold are
     * skipped, so two sweeps never handle one job twice.
     */
    async claimDue(trx: Transaction<Database>, now: Date): Promise<JobWithParties | undefined> {
      return revive(await withParties(trx).where('jobs.due_at', '<=', now).orderBy('jobs.due_at').limit(1).forUpdate('jobs').skipLocked().executeTakeFirst())
    },

    /**
     * Writes a change to a job if it is still at `version`: the new version, the log entry of a
     * move and the messages that go with it, in ONE statement (atomic, one round trip). Answers the
     * job as it is now, or undefined when someone changed it first (then nothing is written).
     */
    async write(trx: Db, change: { id: string; version: number; changes: JobChanges; entry?: StatusLogRow; messages: NewMessage[] }): Promise<{ row: JobRow; messages: MessageRow[] } | undefined> {
      const said = change.messages.map(newMessageRow)
      const changed = trx
        .updateTable('jobs')
        .set({ ...change.changes, version: sql<number>`version + 1` })
        .where('id', '=', change.id)
        .where('version', '=', change.version)
        // Taking an open request: only while nobody did (the version says so too; this says why).
        .$if(change.changes.worker_id !== undefined, (qb) => qb.where('worker_id', 'is', null))
        .returningAll()
      const e = change.entry
      const logged = e
        ? sql`logged AS (INSERT INTO job_status_log (job_id, status, "by", at, reason) SELECT id, ${e.status}::text, ${e.by}::uuid, ${e.at}::timestamptz, ${e.reason}::text FROM changed),`
        : sql``
      const { rows } = await sql<JobRow>`WITH changed AS (${changed}), ${logged} ${messagesWrite(said, 'changed')} SELECT * FROM changed`.execute(trx)
      return rows[0] && { row: rows[0], messages: said }
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

    /**
     * The user's jobs, newest first: as client, as worker, or both. A worker's include the open
     * requests it was alerted to while nobody has taken them; once another worker takes one (or it
     * ends), it leaves the list.
     */
    async list(query: { userId: string; role?: 'CLIENT' | 'WORKER'; status?: JobStatus; limit: number; beforeId?: string }): Promise<JobRow[]> {
      let select = db.selectFrom('jobs').selectAll()
      const alertedOpen = (eb: ExpressionBuilder<Database, 'jobs'>) =>
        eb.and([
          eb('worker_id', 'is', null),
          eb('status', '=', 'REQUESTED'),
          eb.exists(eb.selectFrom('job_alerts as a').select('a.job_id').whereRef('a.job_id', '=', 'jobs.id').where('a.worker_id', '=', query.userId)),
        ])
      if (query.role === 'CLIENT') select = select.where('client_id', '=', query.userId)
      else if (query.role === 'WORKER') select = select.where((eb) => eb.or([eb('worker_id', '=', query.userId), alertedOpen(eb)]))
      else select = select.where((eb) => eb.or([eb('client_id', '=', query.userId), eb('worker_id', '=', query.userId), alertedOpen(eb)]))
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

    /** Whether the worker was alerted to the open request. */
    async wasAlerted(jobId: string, workerId: string): Promise<boolean> {
      return (await db.selectFrom('job_alerts').select('job_id').where('job_id', '=', jobId).where('worker_id', '=', workerId).executeTakeFirst()) !== undefined
    },

    /**
     * A worker alerted to the open request, as the job would have it once taken: the user (a
     * tombstone when deleted) and whether its payouts are enabled; undefined when not alerted.
     */
    async candidate(jobId: string, workerId: string): Promise<{ worker: SenderRow; payoutsEnabled: boolean } | undefined> {
      const row = await db
        .selectFrom('job_alerts as a')
        .innerJoin('users as u', 'u.id', 'a.worker_id')
        .select(PARTY_COLUMNS.map((c) => `u.${c}` as const))
        .select((eb) => eb.selectFrom('payment_accounts as pa').select('pa.payouts_enabled').whereRef('pa.user_id', '=', 'a.worker_id').as('payouts_enabled'))
        .where('a.job_id', '=', jobId)
        .where('a.worker_id', '=', workerId)
        .executeTakeFirst()
      if (!row) return undefined
      const { payouts_enabled, ...worker } = row
      return { worker: worker as SenderRow, payoutsEnabled: payouts_enabled === true }
    },

    /** The workers alerted to an open request. */
    async alertedOf(jobId: string): Promise<string[]> {
      return (await db.selectFrom('job_alerts').select('worker_id').where('job_id', '=', jobId).execute()).map((r) => r.worker_id)
    },

    /**
     * Of the workers an open request is to alert, those in a block with its client (either way),
     * read in the transaction that records the alerts after holding each pair (blocks'
     * blockedAmong): a block committed first is seen, one made meanwhile waits for the commit.
     */
    blockedAmong: (trx: Transaction<Database>, clientId: string, workerIds: readonly string[]): Promise<Set<string>> => blockedAmong(trx, clientId, workerIds),

    /** Records who was alerted to an open request, in the transaction that posts it. */
    async recordAlerts(trx: Db, jobId: string, alerts: { workerId: string; distanceM: number | null }[], at: Date): Promise<void> {
      if (alerts.length === 0) return
      await trx.insertInto('job_alerts').values(alerts.map((a) => ({ job_id: jobId, worker_id: a.workerId, alerted_at: at, distance_m: a.distanceM === null ? null : Math.round(a.distanceM) }))).execute()
    },

    /** A user as a client posting an open request: the row, with its roles (deleted ones left out). */
    async clientOf(trx: Db, userId: string): Promise<(SenderRow & { roles: readonly string[] }) | undefined> {
      return trx.selectFrom('users').select([...PARTY_COLUMNS, 'roles']).where('id', '=', userId).where('deleted_at', 'is', null).executeTakeFirst()
    },

    /** The user's offers still REQUESTED past their expiry (the sweep has not come by yet), open requests it was alerted to among them. */
    async staleOffersOf(userId: string, now: Date): Promise<string[]> {
      const rows = await db
        .selectFrom('jobs')
        .select('id')
        .where((eb) => eb.or([
          eb('client_id', '=', userId),
          eb('worker_id', '=', userId),
          eb.and([eb('worker_id', 'is', null), eb.exists(eb.selectFrom('job_alerts as a').select('a.job_id').whereRef('a.job_id', '=', 'jobs.id').where('a.worker_id', '=', userId))]),
        ]))
        .where('status', '=', 'REQUESTED')
        .where('expires_at', '<=', now)
        .execute()
      return rows.map((r) => r.id)
    },
  }
}

export type JobsStore = ReturnType<typeof createJobsStore>
