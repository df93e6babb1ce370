// What every part of payments shares: its dependencies, the transaction that writes a payment
// change with its ledger movement and its notes (pushing both after the commit), and the views.

import type { Transaction } from 'kysely'
import { v5 as uuidv5 } from 'uuid'
import type { Clock } from '../../platform/clock.js'
import type { DB, Database } from '../../platform/db/index.js'
import type { EventBus } from '../../platform/live/index.js'
import { record, type Entry, type LedgerKind } from '../../platform/payments/ledger.js'
import type { PaymentProvider } from '../../platform/payments/index.js'
import type { Queue } from '../../platform/queue/index.js'
import type { AuditStore } from '../admin/index.js'
import { jobPaymentView } from '../jobs/index.js'
import type { MessageRow, NewMessage } from '../messaging/index.js'
import { feeOf, transferSplit, type PaymentFacts } from './movements.js'
import type { JobPaymentRow, PaymentChanges, PaymentsStore } from './store.js'

export interface PaymentsDeps {
  db: DB
  store: PaymentsStore
  provider: PaymentProvider
  clock: Clock
  queue: Queue
  /** Where payment changes are pushed to the job's users (`payment.updated` on their sockets). */
  events: Pick<EventBus, 'publish'>
  messages: { insert(trx: Transaction<Database>, messages: NewMessage[]): Promise<MessageRow[]>; publish(messages: MessageRow[]): Promise<void> }
  isAdmin(userId: string): Promise<boolean>
  /** The admins' audit log: a refund is recorded in the transaction that records its ledger movement. */
  audit: Pick<AuditStore, 'record'>
  hasRole(userId: string, role: 'WORKER'): Promise<boolean>
  emailOf(userId: string): Promise<string | null>
  settings: { feeBps: number; publicUrl: string }
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void }
}

/** A payments task's id made from what it is about (a dispute, an event): one task each, however often it is added. */
export const taskIdOf = (name: string, about: string) => uuidv5(`${name}:${about}`, '2c6f3a0e-5b7d-4e8f-9a1b-3c4d5e6f7a80')

/** Job statuses whose held money goes back to the client in full. */
export const RELEASED_WITH: readonly string[] = ['DECLINED', 'CANCELED', 'EXPIRED']

export type Note = Omit<NewMessage, 'kind' | 'at'>

/** A payment change under way: its transaction, the notes it sends, and what runs after its commit. */
export interface PaymentTx {
  trx: Transaction<Database>
  say(notes: Note[]): void
  /** Work after the commit (a task run at once). */
  after(effect: () => Promise<void>): void
  /** Writes a job's payment and marks it changed, to be pushed to both parties after the commit. */
  setPayment(jobId: string, changes: PaymentChanges): Promise<void>
}

export const factsOf = (job: JobPaymentRow): PaymentFacts => ({
  jobId: job.id,
  clientId: job.client_id,
  workerId: job.worker_id,
  charged: job.payment_charged,
  refunded: job.payment_refunded,
  fee: job.payment_fee ?? 0,
  transferred: job.payment_transfer_id !== null,
  disputed: job.payment_disputed,
})

export function createCore(deps: PaymentsDeps) {
  const { db, store, clock, log, settings } = deps

  /** Pushes the payments of jobs whose payment alone changed (no status move: that is job.updated) to their client and worker. */
  const pushPayments = async (jobIds: Iterable<string>) => {
    for (const jobId of jobIds) {
      const job = await store.job(jobId)
      const payment = job ? jobPaymentView(job) : null
      if (!job || !payment) continue
      await deps.events.publish({ to: job.worker_id ? [job.client_id, job.worker_id] : [job.client_id], type: 'payment.updated', data: { job_id: job.id, job_status: job.status, payment } })
    }
  }

  /**
   * Writes a payment change, its ledger movement and its notes in one transaction; after the
   * commit, pushes the notes and the changed payments, then runs what was left for after it.
   */
  const inTransaction = async <T>(work: (tx: PaymentTx) => Promise<T>): Promise<T> => {
    const said: Note[] = []
    const afterwards: (() => Promise<void>)[] = []
    const changed = new Set<string>()
    const { result, messages } = await db.transaction().execute(async (trx) => {
      const tx: PaymentTx = {
        trx,
        say: (notes) => said.push(...notes),
        after: (effect) => afterwards.push(effect),
        setPayment: async (jobId, changes) => {
          await store.setPayment(trx, jobId, changes)
          changed.add(jobId)
        },
      }
      const result = await work(tx)
      const now = clock.now()
      const messages = said.length > 0 ? await deps.messages.insert(trx, said.map((n) => ({ ...n, kind: 'system', at: now }))) : []
      return { result, messages }
    })
    // Stored before it is pushed: a push that fails loses nothing (the inbox and GET /job have it).
    if (messages.length > 0) await deps.messages.publish(messages).catch((error: unknown) => log.warn({ err: error }, 'could not push payment messages'))
    if (changed.size > 0) await pushPayments(changed).catch((error: unknown) => log.warn({ err: error }, 'could not push payment changes'))
    for (const effect of afterwards) await effect()
    return result
  }

  const move = (trx: Transaction<Database>, job: JobPaymentRow, kind: LedgerKind, key: string, entries: Entry[]) =>
    record(trx, { key, kind, jobId: job.id, currency: job.price_currency!, entries, at: clock.now() })

  /** A payment as one of its parties lists it. */
  const paymentView = (job: JobPaymentRow, userId: string) => {
    const asClient = job.client_id === userId
    const net = transferSplit(factsOf(job))
    return {
      job_id: job.id,
      role: asClient ? ('client' as const) : ('worker' as const),
      status: job.payment_status!,
      amount: job.price_amount!,
      fee: job.payment_fee ?? feeOf(job.price_amount!, settings.feeBps),
      currency: job.price_currency!,
      refunded: job.payment_refunded,
      ...(asClient ? {} : { payout: job.payment_charged > 0 ? net.toWorker : job.price_amount! - feeOf(job.price_amount!, settings.feeBps) }),
      created_at: job.created_at.toISOString(),
    }
  }

  /** A provider's object id as the app keeps it: a short non-empty string (a broken answer is not taken). */
  const providerId = (id: unknown): id is string => typeof id === 'string' && id.length > 0 && id.length <= 255

  return { inTransaction, move, paymentView, providerId, pushPayments }
}

export type Core = ReturnType<typeof createCore>
