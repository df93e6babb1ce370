import { sql, type Kysely, type Selectable, type Transaction, type Updateable } from 'kysely'
import type { DB, Database } from '../../platform/db/index.js'
import type { PaymentStatus } from '../jobs/index.js'

declare module '../../platform/db/types.js' {
  interface Database {
    payment_accounts: PaymentAccountsTable
    payment_events: PaymentEventsTable
    idempotent_requests: IdempotentRequestsTable
  }
}

interface PaymentAccountsTable {
  user_id: string
  provider: string
  account_id: string
  details_submitted: boolean
  payouts_enabled: boolean
  currently_due: string[]
  currencies: string[]
  created_at: Date
  updated_at: Date
}

interface PaymentEventsTable {
  id: string
  type: string
  payload: unknown
  received_at: Date
  applied_at: Date | null
  attempts: import('kysely').Generated<number>
  next_attempt_at: Date | null
  last_error: string | null
}

interface IdempotentRequestsTable {
  user_id: string
  key: string
  route: string
  body_hash: string
  status_code: number | null
  answer: unknown
  created_at: Date
}

export type AccountRow = Selectable<PaymentAccountsTable>
export type IdempotentRow = Selectable<IdempotentRequestsTable>
/** What the applier reads of an event: its type and, of the object it is about, what it applies. */
export type EventObject = { id?: unknown; amount?: unknown; payment_intent?: unknown; status?: unknown }
export type EventRow = Pick<Selectable<PaymentEventsTable>, 'id' | 'type' | 'attempts'> & { object: EventObject | string | null }

type Db = Kysely<Database> | Transaction<Database>

/** The payment columns of a job, with what identifies it. */
const PAYMENT_COLUMNS = [
  'id', 'client_id', 'worker_id', 'title', 'status', 'price_amount', 'price_currency', 'payment_status', 'payment_fee', 'payment_intent_id',
  'payment_client_secret', 'payment_next_action', 'payment_failure_code', 'payment_decline_code', 'payment_attempts', 'payment_charged',
  'payment_refunded', 'payment_transfer_id', 'payment_disputed', 'payment_dispute_id', 'created_at',
] as const
export type JobPaymentRow = Pick<Selectable<Database['jobs']>, (typeof PAYMENT_COLUMNS)[number]>
export type PaymentChanges = Pick<Updateable<Database['jobs']>, Extract<(typeof PAYMENT_COLUMNS)[number], `payment_${string}`> | 'due_at'>

export function createPaymentsStore(db: DB) {
  /**
   * Of an event's payload, the fields of its object the applier reads (the object's id; a
   * dispute's amount, intent and status), not the whole event: an account's event is 2.5 KB of
   * JSON that the server would print and this process parse for each row of each batch.
   */
  const eventObject = sql<EventObject | string | null>`jsonb_strip_nulls(jsonb_build_object('id', payload #> '{data,object,id}', 'amount', payload #> '{data,object,amount}', 'payment_intent', payload #> '{data,object,payment_intent}', 'status', payload #> '{data,object,status}'))`.as('object')

  return {
    async job(id: string, trx: Db = db): Promise<JobPaymentRow | undefined> {
      return trx.selectFrom('jobs').select(PAYMENT_COLUMNS).where('id', '=', id).executeTakeFirst()
    },

    /** The job's payment, its row locked until the transaction ends. */
    async lockJob(trx: Transaction<Database>, id: string): Promise<JobPaymentRow | undefined> {
      return trx.selectFrom('jobs').select(PAYMENT_COLUMNS).where('id', '=', id).forUpdate().executeTakeFirst()
    },

    async jobOfIntent(intentId: string, trx: Db = db): Promise<string | undefined> {
      return (await trx.selectFrom('jobs').select('id').where('payment_intent_id', '=', intentId).executeTakeFirst())?.id
    },

    /**
     * Changes a job's payment. Not a new version of the job: its terms (what If-Match guards)
     * stay as they were, so a worker who read the offer still accepts it as read.
     */
    async setPayment(trx: Db, id: string, changes: PaymentChanges): Promise<void> {
      await trx.updateTable('jobs').set(changes).where('id', '=', id).execute()
    },

    async account(userId: string, trx: Db = db): Promise<AccountRow | undefined> {
      return trx.selectFrom('payment_accounts').selectAll().where('user_id', '=', userId).executeTakeFirst()
    },

    async insertAccount(row: AccountRow): Promise<AccountRow> {
      const inserted = await db.insertInto('payment_accounts').values({ ...row, currently_due: JSON.stringify(row.currently_due) as never, currencies: JSON.stringify(row.currencies) as never }).onConflict((oc) => oc.column('user_id').doNothing()).returningAll().executeTakeFirst()
      return inserted ?? (await this.account(row.user_id))!
    },

    async updateAccount(accountId: string, state: { details_submitted: boolean; payouts_enabled: boolean; currently_due: string[]; currencies: string[] }, at: Date, trx: Db = db): Promise<AccountRow | undefined> {
      return trx
        .updateTable('payment_accounts')
        .set({ details_submitted: state.details_submitted, payouts_enabled: state.payouts_enabled, currently_due: JSON.stringify(state.currently_due) as never, currencies: JSON.stringify(state.currencies) as never, updated_at: at })
        .where('account_id', '=', accountId)
        .returningAll()
        .executeTakeFirst()
    },

    /** Accounts' states as the provider tells them, written over ours in one statement (a batch of events). */
    async updateAccounts(trx: Db, states: { id: string; details_submitted: boolean; payouts_enabled: boolean; currently_due: string[]; currencies: string[] }[], at: Date): Promise<void> {
      if (states.length === 0) return
      await sql`UPDATE payment_accounts AS a
          SET details_submitted = v.details_submitted, payouts_enabled = v.payouts_enabled, currently_due = v.currently_due, currencies = v.currencies, updated_at = ${at}
          FROM jsonb_to_recordset(${JSON.stringify(states)}::jsonb) AS v (id text, details_submitted boolean, payouts_enabled boolean, currently_due jsonb, currencies jsonb)
         WHERE a.account_id = v.id`.execute(trx)
    },

    /** The caller's payments (as client) and payouts (as worker), newest job first. */
    async list(query: { userId: string; status?: PaymentStatus; limit: number; beforeId?: string }): Promise<JobPaymentRow[]> {
      let select = db
        .selectFrom('jobs')
        .select(PAYMENT_COLUMNS)
        .where('payment_status', 'is not', null)
        .where((eb) => eb.or([eb('client_id', '=', query.userId), eb('worker_id', '=', query.userId)]))
      if (query.status) select = select.where('payment_status', '=', query.status)
      if (query.beforeId) select = select.where('id', '<', query.beforeId)
      return select.orderBy('id', 'desc').limit(query.limit + 1).execute()
    },

    /** A worker's jobs whose money is held for them and not paid out yet. */
    async pendingFor(workerId: string): Promise<JobPaymentRow[]> {
      return db.selectFrom('jobs').select(PAYMENT_COLUMNS).where('worker_id', '=', workerId).where('payment_status', 'in', ['held', 'partially_refunded', 'disputed']).where('payment_transfer_id', 'is', null).execute()
    },

    async adminIds(trx: Db): Promise<string[]> {
      const rows = await trx.selectFrom('users').select('id').where(sql<boolean>`'ADMIN' = ANY(roles)`).where('deleted_at', 'is', null).execute()
      return rows.map((r) => r.id)
    },

    /**
     * Records provider events, each once, in one statement: answers the ids it inserted (an id
     * recorded before is left as it was). `payload` is the event's JSON text.
     */
    async insertEvents(trx: Db, events: { id: string; type: string; payload: string }[], at: Date): Promise<string[]> {
      if (events.length === 0) return []
      const rows = await trx
        .insertInto('payment_events')
        .values(events.map((e) => ({ id: e.id, type: e.type, payload: e.payload, received_at: at, applied_at: null, next_attempt_at: null, last_error: null })))
        .onConflict((oc) => oc.column('id').doNothing())
        .returning('id')
        .execute()
      return rows.map((r) => r.id)
    },

    /**
     * Events to apply now, oldest first: not applied, not waiting for a retry, not given up.
     * Retries are timed by the database's clock, as the task queue's are (operations, not the
     * app's business time).
     */
    async dueEvents(limit: number, maxAttempts: number): Promise<EventRow[]> {
      return db
        .selectFrom('payment_events')
        .select(['id', 'type', 'attempts', eventObject])
        .where('applied_at', 'is', null)
        .where('attempts', '<', maxAttempts)
        .where((eb) => eb.or([eb('next_attempt_at', 'is', null), eb('next_attempt_at', '<=', sql<Date>`now()`)]))
        .orderBy('received_at')
        .orderBy('id')
        .limit(limit)
        .execute()
    },

    /** One recorded event, with whether it was applied. */
    async event(id: string): Promise<(EventRow & { applied_at: Date | null }) | undefined> {
      return db.selectFrom('payment_events').select(['id', 'type', 'attempts', 'applied_at', eventObject]).where('id', '=', id).executeTakeFirst()
    },

    /**
     * Claims those of these events not applied yet and marks them applied, in one statement of
     * the caller's transaction (which applies them: its rollback unmarks them). Rows another
     * transaction holds are skipped, not waited for. Answers the ids claimed.
     */
    async claimEvents(trx: Transaction<Database>, ids: string[], at: Date): Promise<string[]> {
      if (ids.length === 0) return []
      const rows = await trx
        .updateTable('payment_events')
        .set({ applied_at: at, next_attempt_at: null })
        .where('id', 'in', trx.selectFrom('payment_events').select('id').where('id', 'in', ids).where('applied_at', 'is', null).forUpdate().skipLocked())
        .returning('id')
        .execute()
      return rows.map((r) => r.id)
    },

    /** An attempt failed: how long before it is tried again (null: never), and why. */
    async failEvent(trx: Db, id: string, attempts: number, retryInMs: number | null, error: string): Promise<void> {
      await trx
        .updateTable('payment_events')
        .set({ attempts, next_attempt_at: retryInMs === null ? null : sql<Date>`now() + make_interval(secs => ${retryInMs / 1000})`, last_error: error })
        .where('id', '=', id)
        .where('applied_at', 'is', null)
        .execute()
    },

    async idempotent(userId: string, key: string): Promise<IdempotentRow | undefined> {
      return db.selectFrom('idempotent_requests').selectAll().where('user_id', '=', userId).where('key', '=', key).executeTakeFirst()
    },

    /** Claims a key for a request; false when another holds it (within its 24 hours). Older claims give way. */
    async claimIdempotent(row: Omit<IdempotentRow, 'status_code' | 'answer'>, since: Date): Promise<boolean> {
      await db.deleteFrom('idempotent_requests').where('user_id', '=', row.user_id).where('key', '=', row.key).where('created_at', '<', since).execute()
      const inserted = await db.insertInto('idempotent_requests').values({ ...row, status_code: null, answer: null }).onConflict((oc) => oc.columns(['user_id', 'key']).doNothing()).returning('key').executeTakeFirst()
      return inserted !== undefined
    },

    async answerIdempotent(userId: string, key: string, statusCode: number, answer: unknown): Promise<void> {
      await db.updateTable('idempotent_requests').set({ status_code: statusCode, answer: JSON.stringify(answer) }).where('user_id', '=', userId).where('key', '=', key).execute()
    },

    async releaseIdempotent(userId: string, key: string): Promise<void> {
      await db.deleteFrom('idempotent_requests').where('user_id', '=', userId).where('key', '=', key).where('status_code', 'is', null).execute()
    },
  }
}

export type PaymentsStore = ReturnType<typeof createPaymentsStore>
