// Payments: escrow through the provider (Stripe Connect's separate charges and transfers). The
// client's money is charged into the platform's balance when a priced offer is made (or a quote
// is paid for), held there whatever the job's date, released in full when the offer ends without
// work, and paid to the worker's connected account, less the platform's fee, at approval. Every
// state change is written with its ledger movement in one transaction; every call that moves
// money carries an idempotency key made of the job and the step.

import { createHash } from 'node:crypto'
import type { Transaction } from 'kysely'
import { Type } from 'typebox'
import { v5 as uuidv5 } from 'uuid'
import { ConflictError, ForbiddenError, InvalidInputError, NotFoundError, PaymentRequiredError, UnavailableError, UnprocessableError } from '../../errors.js'
import { decodeCursor, pageOf } from '../../http/cursor.js'
import type { Clock } from '../../platform/clock.js'
import type { DB, Database } from '../../platform/db/index.js'
import { balanceOf, balancesUnder, DISPUTES_ACCOUNT, FEES_ACCOUNT, payableAccount, record, type LedgerKind } from '../../platform/payments/ledger.js'
import { ProviderCardError, WebhookSignatureError, type IntentState, type PaymentProvider, type ProviderEvent } from '../../platform/payments/index.js'
import type { Queue, StopHandling } from '../../platform/queue/index.js'
import type { AdminContext, AuditStore } from '../admin/index.js'
import type { JobRow, PaymentStatus } from '../jobs/index.js'
import type { MessageRow, NewMessage } from '../messaging/index.js'
import { chargeEntries, disputeEntries, feeOf, refundEntries, transferEntries, transferSplit, type PaymentFacts } from './movements.js'
import type { AccountRow, JobPaymentRow, PaymentChanges, PaymentsStore } from './store.js'
import { money, paymentTexts } from './texts.js'

export interface PaymentsDeps {
  db: DB
  store: PaymentsStore
  provider: PaymentProvider
  clock: Clock
  queue: Queue
  messages: { insert(trx: Transaction<Database>, messages: NewMessage[]): Promise<MessageRow[]>; publish(messages: MessageRow[]): Promise<void> }
  isAdmin(userId: string): Promise<boolean>
  /** The admins' audit log: a refund is recorded in the transaction that records its ledger movement. */
  audit: Pick<AuditStore, 'record'>
  hasRole(userId: string, role: 'WORKER'): Promise<boolean>
  emailOf(userId: string): Promise<string | null>
  settings: { feeBps: number; publicUrl: string }
  log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void }
}

/** The task that applies a provider event, once, after it was recorded. */
export const EVENT_TASK = 'payments.apply-event'
const TASK_IDS = '2c6f3a0e-5b7d-4e8f-9a1b-3c4d5e6f7a80'
/** Job statuses whose held money goes back to the client in full. */
const RELEASED_WITH = ['DECLINED', 'CANCELED', 'EXPIRED'] as const
/** Payment statuses in which the client gives (again) a payment method. */
const CHARGEABLE: readonly (PaymentStatus | null)[] = ['requires_payment_method', 'failed', 'requires_action']
/** Job statuses in which the client may pay: from the offer until approval. */
const PAYABLE_JOB = ['REQUESTED', 'ACCEPTED', 'STARTED', 'COMPLETED']

const PaymentCursor = Type.Object({ id: Type.String({ format: 'uuid' }) })
/** How long an Idempotency-Key answers its first answer again (Stripe's 24 hours). */
const IDEMPOTENCY_MS = 24 * 3_600_000

const factsOf = (job: JobPaymentRow): PaymentFacts => ({
  jobId: job.id,
  clientId: job.client_id,
  workerId: job.worker_id,
  charged: job.payment_charged,
  refunded: job.payment_refunded,
  fee: job.payment_fee ?? 0,
  transferred: job.payment_transfer_id !== null,
  disputed: job.payment_disputed,
})

export function createPaymentsService(deps: PaymentsDeps) {
  const { db, store, provider, clock, queue, log, settings } = deps

  /** Writes a payment change, its ledger movement and its notes in one transaction; pushes the notes after. */
  const inTransaction = async <T>(work: (trx: Transaction<Database>, say: (notes: Omit<NewMessage, 'kind' | 'at'>[]) => void) => Promise<T>): Promise<T> => {
    const said: Omit<NewMessage, 'kind' | 'at'>[] = []
    const { result, messages } = await db.transaction().execute(async (trx) => {
      const result = await work(trx, (notes) => said.push(...notes))
      const now = clock.now()
      const messages = said.length > 0 ? await deps.messages.insert(trx, said.map((n) => ({ ...n, kind: 'system', at: now }))) : []
      return { result, messages }
    })
    if (messages.length > 0) await deps.messages.publish(messages).catch((error: unknown) => log.warn({ err: error }, 'could not push payment messages'))
    return result
  }

  const move = (trx: Transaction<Database>, job: JobPaymentRow, kind: LedgerKind, key: string, entries: ReturnType<typeof chargeEntries>) =>
    record(trx, { key, kind, jobId: job.id, currency: job.price_currency!, entries, at: clock.now() })

  const returnUrl = () => `${settings.publicUrl}/payments/return`

  /**
   * The provider's word on an intent, applied to its job: held when it succeeded (charged once,
   * whichever of the answer, a webhook or a retry brings it first), waiting for the client's
   * action, or failed. Intents are re-read from the provider, so events late or out of order
   * can't move a payment backwards.
   */
  async function applyIntent(intent: IntentState): Promise<void> {
    const jobId = intent.job_id ?? (await store.jobOfIntent(intent.id))
    if (!jobId) return
    await inTransaction(async (trx) => {
      const job = await store.lockJob(trx, jobId)
      if (!job || job.price_amount === null) return
      const current = job.payment_intent_id === null || job.payment_intent_id === intent.id
      if (intent.status === 'succeeded') {
        if (job.payment_charged > 0) return
        await move(trx, job, 'charge', `job:${job.id}:charge`, chargeEntries(factsOf(job), intent.amount))
        const changes: PaymentChanges = {
          payment_status: 'held',
          payment_charged: intent.amount,
          payment_fee: feeOf(intent.amount, settings.feeBps),
          payment_intent_id: intent.id,
          payment_client_secret: intent.client_secret,
          payment_next_action: null,
          payment_failure_code: null,
          payment_decline_code: null,
        }
        // A job that ended meanwhile gives it back (the sweep releases it); a completed one may be approved now.
        if ((RELEASED_WITH as readonly string[]).includes(job.status) || job.status === 'COMPLETED') changes.due_at = clock.now()
        await store.setPayment(trx, job.id, changes)
      } else if (job.payment_charged === 0 && current && intent.status === 'requires_action') {
        await store.setPayment(trx, job.id, {
          payment_status: 'requires_action',
          payment_intent_id: intent.id,
          payment_client_secret: intent.client_secret,
          payment_next_action: intent.next_action ? (JSON.stringify(intent.next_action) as never) : null,
        })
      } else if (job.payment_charged === 0 && current && intent.status === 'requires_payment_method' && intent.failure_code) {
        await store.setPayment(trx, job.id, { payment_status: 'failed', payment_intent_id: intent.id, payment_failure_code: intent.failure_code, payment_decline_code: intent.decline_code, payment_next_action: null })
      }
    })
  }

  /** A provider's object id as the app keeps it: a short non-empty string (a broken answer is not taken). */
  const providerId = (id: unknown): id is string => typeof id === 'string' && id.length > 0 && id.length <= 255

  /**
   * Whether the provider's answer to a charge is an intent for this job's price: anything else
   * (a broken or mistaken provider) is not taken, so it can neither hold money it did not say it
   * took nor pay for another job.
   */
  const chargeAnswerFits = (intent: unknown, job: { id: string; price_amount: number; price_currency: string }): intent is IntentState => {
    if (typeof intent !== 'object' || intent === null) return false
    const i = intent as Partial<Record<keyof IntentState, unknown>>
    return providerId(i.id)
      && ['requires_payment_method', 'requires_action', 'processing', 'succeeded', 'canceled'].includes(i.status as string)
      && i.amount === job.price_amount
      && i.currency === job.price_currency
      && (i.job_id === null || i.job_id === undefined || i.job_id === job.id)
  }

  /** Charges the client's payment method for the job's price; a decline is 402 with its codes, the job keeping its place. */
  async function charge(jobId: string, paymentMethod: string): Promise<void> {
    const job = await store.job(jobId)
    if (!job || job.price_amount === null || job.price_currency === null) return
    // Declines so far name the attempt: a retry after a timeout reuses its key and never charges twice.
    const key = `job:${job.id}:charge:${job.payment_attempts}`
    let intent: IntentState
    try {
      intent = await provider.createPaymentIntent({ amount: job.price_amount, currency: job.price_currency, paymentMethod, jobId: job.id, returnUrl: returnUrl() }, key)
      if (!chargeAnswerFits(intent, { id: job.id, price_amount: job.price_amount, price_currency: job.price_currency })) throw new Error('the payment provider answered a charge with something that is not an intent for this job')
    } catch (error) {
      if (!(error instanceof ProviderCardError)) {
        log.warn({ err: error, job_id: jobId }, 'the payment provider failed to charge')
        throw new UnavailableError('The payment provider did not answer: try again (the same attempt never charges twice)', 'payment_provider_unavailable')
      }
      if (error.code === 'resource_missing') {
        throw new InvalidInputError(`The payment method ${paymentMethod} is not one the provider knows`, [{ field: 'body/payment_method', message: 'is unknown' }], 'payment_method_invalid')
      }
      await db.transaction().execute(async (trx) => {
        const locked = await store.lockJob(trx, jobId)
        if (!locked || locked.payment_charged > 0) return
        await store.setPayment(trx, jobId, {
          payment_status: 'failed',
          payment_failure_code: error.code,
          payment_decline_code: error.declineCode,
          payment_attempts: locked.payment_attempts + 1,
          payment_intent_id: error.intent?.id ?? locked.payment_intent_id,
          payment_next_action: null,
        })
      })
      throw new PaymentRequiredError(
        `The card was declined${error.declineCode ? ` (${error.declineCode})` : ''}: the offer stands, pay with another payment method (POST /job/${jobId}/payment)`,
        error.code === 'card_declined' ? 'card_declined' : 'payment_failed',
        { decline_code: error.declineCode ?? error.code, job_id: jobId },
      )
    }
    await applyIntent(intent)
  }

  /** Gives the job's held money back to the client in full: an offer declined, canceled before the work, or expired. */
  async function release(jobId: string): Promise<void> {
    const job = await store.job(jobId)
    if (!job || !(RELEASED_WITH as readonly string[]).includes(job.status) || job.payment_status !== 'held' || job.payment_disputed) return
    const amount = job.payment_charged - job.payment_refunded
    if (amount > 0) await provider.refund({ paymentIntent: job.payment_intent_id!, amount, reason: 'released' }, `job:${job.id}:release`)
    await inTransaction(async (trx, say) => {
      const locked = await store.lockJob(trx, jobId)
      if (!locked || locked.payment_status !== 'held') return
      if (amount > 0) await move(trx, locked, 'refund', `job:${jobId}:release`, refundEntries(factsOf(locked), amount).entries)
      await store.setPayment(trx, jobId, { payment_status: 'released', payment_refunded: locked.payment_charged })
      say([{ from: null, to: locked.client_id, jobId, text: paymentTexts.released(locked.title, money(amount, locked.price_currency!)) }])
    })
  }

  const payable = (job: JobPaymentRow) => (job.payment_status === 'held' || job.payment_status === 'partially_refunded') && !job.payment_disputed && job.payment_charged > job.payment_refunded

  /** Tells both parties and the admins of a dispute, holding the payout. */
  async function dispute(intentId: string, disputeId: string): Promise<void> {
    const jobId = await store.jobOfIntent(intentId)
    if (!jobId) throw new Error(`no job pays with the disputed intent ${intentId} yet`)
    await inTransaction(async (trx, say) => {
      const job = await store.lockJob(trx, jobId)
      if (!job || job.payment_disputed) return
      if (job.payment_charged === 0) throw new Error(`the disputed payment of job ${jobId} is not recorded yet`)
      await move(trx, job, 'dispute', `dispute:${disputeId}`, disputeEntries(factsOf(job)))
      await store.setPayment(trx, jobId, { payment_status: 'disputed', payment_disputed: true })
      const amount = money(job.payment_charged - job.payment_refunded, job.price_currency!)
      say([
        { from: null, to: job.client_id, jobId, text: paymentTexts.disputed(job.title, amount, true) },
        ...(job.worker_id ? [{ from: null, to: job.worker_id, jobId, text: paymentTexts.disputed(job.title, amount, false) }] : []),
        ...(await store.adminIds(trx)).map((admin) => ({ from: null, to: admin, jobId, text: paymentTexts.disputedToAdmin(job.title, amount, jobId) })),
      ])
    })
  }

  async function refreshAccount(accountId: string): Promise<AccountRow | undefined> {
    const state = await provider.retrieveAccount(accountId)
    return store.updateAccount(accountId, state, clock.now())
  }

  /** Applies a recorded provider event, once. */
  async function applyEvent(eventId: string): Promise<void> {
    const row = await store.event(eventId)
    if (!row || row.applied_at) return
    const event = (typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload) as ProviderEvent
    const object = event.data.object
    switch (event.type) {
      case 'payment_intent.succeeded':
      case 'payment_intent.payment_failed':
      case 'payment_intent.requires_action':
      case 'payment_intent.processing':
        await applyIntent(await provider.retrievePaymentIntent(object.id))
        break
      case 'charge.dispute.created':
        await dispute(String(object.payment_intent), object.id)
        break
      case 'account.updated':
        await refreshAccount(object.id)
        break
      default:
        break
    }
    await store.markApplied(db, eventId, clock.now())
  }

  /** Records an event once and hands it to the queue; answers false for one seen before. */
  async function receiveEvent(event: ProviderEvent): Promise<{ duplicate: boolean }> {
    const taskId = await db.transaction().execute(async (trx) => {
      if (!(await store.insertEvent(trx, { id: event.id, type: event.type, payload: event }, clock.now()))) return undefined
      return queue.add(trx, EVENT_TASK, { event_id: event.id }, { id: uuidv5(`${EVENT_TASK}:${event.id}`, TASK_IDS), runsNow: true })
    })
    if (taskId === undefined) return { duplicate: true }
    // Applied right after the answer; failing that, a worker retries it with backoff.
    void queue.runNow(EVENT_TASK, taskId, () => applyEvent(event.id))
    return { duplicate: false }
  }

  let stopEvents: StopHandling | undefined
  if ('onEvent' in provider && typeof provider.onEvent === 'function') {
    // The local provider's events take the webhooks' path, minus the signature.
    ;(provider.onEvent as (listener: (event: ProviderEvent) => Promise<void>) => void)(async (event) => {
      await receiveEvent(event)
    })
  }

  const accountView = (row: AccountRow, url?: string) => ({
    account_id: row.account_id,
    provider: row.provider,
    details_submitted: row.details_submitted,
    payouts_enabled: row.payouts_enabled,
    currently_due: row.currently_due,
    currencies: row.currencies,
    ...(url ? { onboarding_url: url } : {}),
  })

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

  /**
   * Runs a money-moving request once per Idempotency-Key, the way Stripe does: the same key and
   * body within 24 hours answer the first answer again; another body is 422. A request that
   * fails leaves the key free, so that its retry runs (and, its provider calls keyed by the job
   * and the step, still moves money once).
   */
  async function idempotent<T>(userId: string, key: string | undefined, route: string, body: unknown, run: () => Promise<{ status: number; body: T }>): Promise<{ status: number; body: T }> {
    if (key === undefined) return run()
    const hash = createHash('sha256').update(`${route}\n${JSON.stringify(body ?? null)}`).digest('hex')
    const since = new Date(clock.now().getTime() - IDEMPOTENCY_MS)
    for (let attempt = 0; attempt < 2; attempt++) {
      const existing = await store.idempotent(userId, key)
      if (existing && existing.created_at >= since) {
        if (existing.body_hash !== hash || existing.route !== route) throw new UnprocessableError('This Idempotency-Key was used with a different request in the last 24 hours: use a new key', 'idempotency_key_mismatch')
        if (existing.status_code === null) throw new ConflictError('A request with this Idempotency-Key is still being handled: retry in a moment', 'idempotency_key_in_use')
        const answer = typeof existing.answer === 'string' ? JSON.parse(existing.answer) : existing.answer
        return { status: existing.status_code, body: answer as T }
      }
      if (await store.claimIdempotent({ user_id: userId, key, route, body_hash: hash, created_at: clock.now() }, since)) {
        try {
          const answer = await run()
          await store.answerIdempotent(userId, key, answer.status, answer.body)
          return answer
        } catch (error) {
          await store.releaseIdempotent(userId, key)
          throw error
        }
      }
    }
    throw new ConflictError('A request with this Idempotency-Key is still being handled: retry in a moment', 'idempotency_key_in_use')
  }

  return {
    charge,
    release,
    applyIntent,
    idempotent,

    /** An offer's price must suit the worker's payout account. */
    async checkCurrency(workerId: string, currency: string): Promise<void> {
      const account = await store.account(workerId)
      if (account && account.currencies.length > 0 && !account.currencies.includes(currency)) {
        throw new InvalidInputError(`The worker is paid in ${account.currencies.join(', ')}, not ${currency}`, [{ field: 'body/price/currency', message: `must be one of ${account.currencies.join(', ')}` }], 'currency_not_supported')
      }
    },

    /** The client pays for its job (again, after a decline; or for a worker's quote). */
    async pay(actorId: string, jobId: string, paymentMethod: string): Promise<void> {
      const job = await store.job(jobId)
      if (!job || (job.client_id !== actorId && job.worker_id !== actorId)) throw new NotFoundError('No such job', 'job_not_found')
      if (job.client_id !== actorId) throw new ForbiddenError('Only the job\'s client pays for it', 'not_your_payment')
      if (job.price_amount === null || !PAYABLE_JOB.includes(job.status) || !CHARGEABLE.includes(job.payment_status)) {
        throw new ConflictError(`The job's payment is ${job.payment_status ?? 'not due (the job has no price yet)'} and the job ${job.status}: it takes no payment method now`, 'payment_not_retryable')
      }
      await charge(jobId, paymentMethod)
    },

    /**
     * Pays the worker their share of the job's money (the transfer), with its key: the same
     * transfer whatever the retries. Undefined while it can't be paid (disputed, or nothing held).
     */
    async transfer(row: JobRow): Promise<{ transferId: string } | undefined> {
      const job = await store.job(row.id)
      if (!job) return undefined
      if (job.payment_transfer_id) return { transferId: job.payment_transfer_id }
      if (!payable(job)) return undefined
      const account = job.worker_id ? await store.account(job.worker_id) : undefined
      if (!account?.payouts_enabled) throw new Error(`the worker of job ${job.id} can't be paid yet (no payouts)`)
      const { toWorker } = transferSplit(factsOf(job))
      const transfer = await provider.createTransfer({ amount: toWorker, currency: job.price_currency!, destination: account.account_id, jobId: job.id }, `job:${job.id}:transfer`)
      // A broken answer is not a transfer: the payout is tried again, the job never PAID on it.
      if (!providerId((transfer as { id?: unknown } | null)?.id)) throw new Error(`the payment provider answered the transfer of job ${job.id} with no transfer id`)
      return { transferId: transfer.id }
    },

    /** The transfer made: recorded in the transaction that marks the job PAID. */
    async recordTransfer(trx: Transaction<Database>, jobId: string, transferId: string): Promise<void> {
      const job = await store.lockJob(trx, jobId)
      if (!job || job.payment_transfer_id) return
      await move(trx, job, 'transfer', `job:${jobId}:transfer`, transferEntries(factsOf(job)))
      await store.setPayment(trx, jobId, { payment_status: 'paid_out', payment_transfer_id: transferId })
    },

    /** Whether the job's payout waits on a dispute (its payment task then rests). */
    async payoutHeld(jobId: string): Promise<boolean> {
      return (await store.job(jobId))?.payment_disputed === true
    },

    /** An admin refunds a job's payment, fully or in part; a paid worker's transfer and the fee are reversed in proportion. */
    async refund(context: AdminContext, jobId: string, input: { amount?: number; reason: string }) {
      if (!(await deps.isAdmin(context.actorId))) throw new ForbiddenError('Only admins refund payments', 'not_an_admin')
      const job = await store.job(jobId)
      if (!job) throw new NotFoundError('No such job', 'job_not_found')
      const left = job.payment_charged - job.payment_refunded
      if (left <= 0 || job.payment_disputed) throw new ConflictError(`The job's payment is ${job.payment_status ?? 'none'}: nothing to refund`, 'nothing_to_refund')
      const amount = input.amount ?? left
      if (amount > left) throw new InvalidInputError(`At most ${left} can be refunded`, [{ field: 'body/amount', message: `must be at most ${left}` }], 'refund_too_large')
      // The step's key: how much was refunded before it, so each refund is made once.
      const step = `job:${jobId}:refund:${job.payment_refunded}`
      const { fromWorker } = refundEntries(factsOf(job), amount)
      if (fromWorker > 0) await provider.reverseTransfer({ transfer: job.payment_transfer_id!, amount: fromWorker }, `${step}:reversal`)
      await provider.refund({ paymentIntent: job.payment_intent_id!, amount, reason: input.reason }, step)
      await inTransaction(async (trx, say) => {
        const locked = await store.lockJob(trx, jobId)
        if (!locked || locked.payment_refunded !== job.payment_refunded) return
        await move(trx, locked, fromWorker > 0 ? 'reversal' : 'refund', step, refundEntries(factsOf(locked), amount).entries)
        const refunded = locked.payment_refunded + amount
        await store.setPayment(trx, jobId, { payment_refunded: refunded, payment_status: refunded === locked.payment_charged ? 'refunded' : 'partially_refunded' })
        await deps.audit.record(trx, context, {
          action: 'payment.refund',
          targetType: 'job',
          targetId: jobId,
          reason: input.reason,
          details: { amount, currency: locked.price_currency, refunded_total: refunded, charged: locked.payment_charged, reversed_from_worker: fromWorker },
        }, clock.now())
        const shown = money(amount, locked.price_currency!)
        say([
          { from: null, to: locked.client_id, jobId, text: paymentTexts.refunded(locked.title, shown, input.reason, true) },
          ...(locked.worker_id ? [{ from: null, to: locked.worker_id, jobId, text: paymentTexts.refunded(locked.title, shown, input.reason, false) }] : []),
        ])
      })
      return paymentView((await store.job(jobId))!, job.client_id)
    },

    /** The worker's connected account, made once, with a link to give what it needs. */
    async createAccount(userId: string): Promise<{ created: boolean; account: ReturnType<typeof accountView> }> {
      if (!(await deps.hasRole(userId, 'WORKER'))) throw new ForbiddenError('Only workers are paid out: the caller has no WORKER role', 'forbidden')
      let row = await store.account(userId)
      const created = !row
      if (!row) {
        const state = await provider.createAccount({ userId, email: await deps.emailOf(userId) }, `user:${userId}:account`)
        const now = clock.now()
        const { id: accountId, ...fields } = state
        row = await store.insertAccount({ user_id: userId, provider: provider.name, account_id: accountId, ...fields, created_at: now, updated_at: now })
      }
      const link = row.payouts_enabled ? undefined : await provider.createAccountLink(row.account_id, { refreshUrl: `${settings.publicUrl}/payments/account/refresh`, returnUrl: `${settings.publicUrl}/payments/account/return` })
      return { created, account: accountView(row, link?.url) }
    },

    async getAccount(userId: string) {
      const row = await store.account(userId)
      if (!row) throw new NotFoundError('The caller has no payout account yet: POST /payments/account makes one', 'payment_account_not_found')
      const fresh = await refreshAccount(row.account_id).catch((error: unknown) => {
        log.warn({ err: error }, 'could not read the connected account from the provider')
        return row
      })
      return accountView(fresh ?? row)
    },

    async list(userId: string, query: { status?: PaymentStatus; limit?: number; cursor?: string }) {
      const limit = query.limit ?? 20
      const after = decodeCursor(query.cursor, PaymentCursor)
      const rows = await store.list({ userId, status: query.status, limit, beforeId: after?.id })
      const page = pageOf(rows, limit, (last) => ({ id: last.id }))
      return { items: page.items.map((row) => paymentView(row, userId)), next_cursor: page.next_cursor }
    },

    /** A worker's money: pending (held for jobs not paid out) and available (paid to their account), per currency. */
    async balance(userId: string) {
      const pending: Record<string, number> = {}
      for (const job of await store.pendingFor(userId)) {
        pending[job.price_currency!] = (pending[job.price_currency!] ?? 0) + transferSplit(factsOf(job)).toWorker
      }
      const currencies = new Set([...Object.keys(pending), ...Object.keys(await balancesUnder(db, payableAccount(userId)))])
      const available: Record<string, number> = {}
      for (const currency of currencies) available[currency] = await balanceOf(db, payableAccount(userId), currency)
      return { balances: [...currencies].sort().map((currency) => ({ currency, pending: pending[currency] ?? 0, available: available[currency] ?? 0 })) }
    },

    /** The platform's money in the ledger: escrow held for jobs, fees earned, disputes lost. */
    async platformBalances(adminId: string) {
      if (!(await deps.isAdmin(adminId))) throw new ForbiddenError('Only admins see the platform\'s balances', 'not_an_admin')
      const [escrow, fees, disputes] = await Promise.all([balancesUnder(db, 'escrow:'), balancesUnder(db, FEES_ACCOUNT), balancesUnder(db, DISPUTES_ACCOUNT)])
      const currencies = [...new Set([...Object.keys(escrow), ...Object.keys(fees), ...Object.keys(disputes)])].sort()
      return { balances: currencies.map((currency) => ({ currency, escrow: escrow[currency] ?? 0, fees: fees[currency] ?? 0, disputes: disputes[currency] ?? 0 })) }
    },

    /** A webhook: verified on its raw body, recorded once, applied by the queue. */
    async receiveWebhook(rawBody: Buffer, signature: string | undefined) {
      let event: ProviderEvent
      try {
        event = provider.verifyWebhook(rawBody, signature)
      } catch (error) {
        if (error instanceof WebhookSignatureError) throw new InvalidInputError('The signature does not verify', [{ field: 'headers/stripe-signature', message: error.message.slice(0, 200) }], 'invalid_signature')
        throw error
      }
      return receiveEvent(event)
    },
    receiveEvent,
    applyEvent,

    /** The local provider's pages: the 3-D Secure step passed, onboarding done. */
    async completeLocalAction(intentId: string, secret: string): Promise<boolean> {
      return 'completeAction' in provider && typeof provider.completeAction === 'function' ? (provider.completeAction as (id: string, s: string) => Promise<boolean>)(intentId, secret) : false
    },
    async completeLocalOnboarding(accountId: string): Promise<boolean> {
      return 'completeOnboarding' in provider && typeof provider.completeOnboarding === 'function' ? (provider.completeOnboarding as (id: string) => Promise<boolean>)(accountId) : false
    },

    async start() {
      stopEvents ??= await queue.handle<{ event_id: string }>(EVENT_TASK, (task) => applyEvent(task.data.event_id), { retryLimit: 10, retryDelaySeconds: 5 })
    },
    async stop() {
      await stopEvents?.()
      stopEvents = undefined
    },
  }
}

export type PaymentsService = ReturnType<typeof createPaymentsService>
