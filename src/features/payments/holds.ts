// Offers and holds: the client's money charged into the platform's balance for a priced offer (or
// a quote), held there whatever the job's date, and released in full when the offer ends without
// work. Every call that moves money carries an idempotency key made of the job and the step.

import { ConflictError, ForbiddenError, InvalidInputError, NotFoundError, PaymentRequiredError, UnavailableError } from '../../errors.js'
import { ProviderCardError, type IntentState } from '../../platform/payments/index.js'
import type { PaymentStatus } from '../jobs/index.js'
import { factsOf, RELEASED_WITH, type Core, type PaymentsDeps, type PaymentTx } from './core.js'
import { chargeEntries, feeOf, refundEntries } from './movements.js'
import type { PaymentChanges } from './store.js'
import { money, paymentTexts } from './texts.js'

/** Payment statuses in which the client gives (again) a payment method. */
const CHARGEABLE: readonly (PaymentStatus | null)[] = ['requires_payment_method', 'failed', 'requires_action']
/** Job statuses in which the client may pay: from the offer until approval. */
const PAYABLE_JOB = ['REQUESTED', 'ACCEPTED', 'STARTED', 'COMPLETED']

export function createHolds(deps: PaymentsDeps, core: Core) {
  const { store, provider, clock, log, settings } = deps
  const { inTransaction, move, providerId } = core

  const returnUrl = () => `${settings.publicUrl}/payments/return`

  /**
   * The provider's word on an intent, applied to its job in the caller's transaction: held when
   * it succeeded (charged once, whichever of the answer, a webhook or a retry brings it first),
   * waiting for the client's action, or failed. Intents are re-read from the provider, so events
   * late or out of order can't move a payment backwards.
   */
  async function applyIntentIn(tx: PaymentTx, intent: IntentState): Promise<void> {
    const jobId = intent.job_id ?? (await store.jobOfIntent(intent.id, tx.trx))
    if (!jobId) return
    const job = await store.lockJob(tx.trx, jobId)
    if (!job || job.price_amount === null) return
    const current = job.payment_intent_id === null || job.payment_intent_id === intent.id
    if (intent.status === 'succeeded') {
      if (job.payment_charged > 0) return
      await move(tx.trx, job, 'charge', `job:${job.id}:charge`, chargeEntries(factsOf(job), intent.amount))
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
      if (RELEASED_WITH.includes(job.status) || job.status === 'COMPLETED') changes.due_at = clock.now()
      await tx.setPayment(job.id, changes)
    } else if (job.payment_charged === 0 && current && intent.status === 'requires_action') {
      if (job.payment_status === 'requires_action' && job.payment_intent_id === intent.id) return
      await tx.setPayment(job.id, {
        payment_status: 'requires_action',
        payment_intent_id: intent.id,
        payment_client_secret: intent.client_secret,
        payment_next_action: intent.next_action ? (JSON.stringify(intent.next_action) as never) : null,
      })
    } else if (job.payment_charged === 0 && current && intent.status === 'requires_payment_method' && intent.failure_code) {
      if (job.payment_status === 'failed' && job.payment_intent_id === intent.id) return
      await tx.setPayment(job.id, { payment_status: 'failed', payment_intent_id: intent.id, payment_failure_code: intent.failure_code, payment_decline_code: intent.decline_code, payment_next_action: null })
    }
  }

  const applyIntent = (intent: IntentState) => inTransaction((tx) => applyIntentIn(tx, intent))

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
      await inTransaction(async (tx) => {
        const locked = await store.lockJob(tx.trx, jobId)
        if (!locked || locked.payment_charged > 0) return
        await tx.setPayment(jobId, {
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
    if (!job || !RELEASED_WITH.includes(job.status) || job.payment_status !== 'held' || job.payment_disputed) return
    const amount = job.payment_charged - job.payment_refunded
    if (amount > 0) await provider.refund({ paymentIntent: job.payment_intent_id!, amount, reason: 'released' }, `job:${job.id}:release`)
    await inTransaction(async (tx) => {
      const locked = await store.lockJob(tx.trx, jobId)
      if (!locked || locked.payment_status !== 'held') return
      if (amount > 0) await move(tx.trx, locked, 'refund', `job:${jobId}:release`, refundEntries(factsOf(locked), amount).entries)
      await tx.setPayment(jobId, { payment_status: 'released', payment_refunded: locked.payment_charged })
      tx.say([{ from: null, to: locked.client_id, jobId, text: paymentTexts.released(locked.title, money(amount, locked.price_currency!)) }])
    })
  }

  return {
    applyIntentIn,
    applyIntent,
    charge,
    release,

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
  }
}
