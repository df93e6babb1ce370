// Refunds and disputes. An admin refunds fully or in part (a paid worker's transfer and the fee
// reversed in proportion). A dispute (chargeback) from the provider marks the payment disputed and
// holds the payout; an admin answers it with evidence; its close decides: won, the money comes
// back and the payout goes ahead (or the held money is released, for a job that ended without
// work); lost, the chargeback stands as a refund to the client, and a worker paid already gives
// their share back as for a refund.

import { ConflictError, ForbiddenError, InvalidInputError, NotFoundError } from '../../errors.js'
import type { AdminContext } from '../admin/index.js'
import { factsOf, RELEASED_WITH, taskIdOf, type Core, type PaymentsDeps, type PaymentTx } from './core.js'
import { disputeEntries, disputeLostEntries, disputeWonEntries, refundEntries } from './movements.js'
import type { JobPaymentRow } from './store.js'
import { money, paymentTexts } from './texts.js'

/** The task that lets a payout (or a release) go ahead once a dispute was won. */
export const RESUME_TASK = 'payments.dispute-won'

/** Dispute statuses that close it for the platform (an inquiry closed without a chargeback counts as won). */
const WON = ['won', 'warning_closed']
const LOST = ['lost']

export interface DisputeObject {
  id: string
  payment_intent: string
  status: string
  /** What the bank claims, in minor units, when the event says. */
  amount?: number
}

export function createDisputes(deps: PaymentsDeps, core: Core, hooks: { release(jobId: string): Promise<void>; payout(): ((jobId: string) => Promise<void>) | undefined }) {
  const { store, provider, clock, queue } = deps
  const { inTransaction, move, paymentView } = core

  /** What a payment not paid out is again once its dispute is won: as it stood before it. */
  const settled = (job: JobPaymentRow) =>
    job.payment_refunded === 0 ? 'held' as const
      : job.payment_refunded < job.payment_charged ? 'partially_refunded' as const
      : RELEASED_WITH.includes(job.status) ? 'released' as const : 'refunded' as const
  const amountOf = (job: JobPaymentRow) => money(job.payment_charged - job.payment_refunded, job.price_currency!)
  const adminNotes = async (tx: PaymentTx, job: JobPaymentRow, text: string) => (await store.adminIds(tx.trx)).map((admin) => ({ from: null, to: admin, jobId: job.id, text }))

  /**
   * A dispute opened, whatever the job's status: the payment disputed, the payout held (or, made
   * already, the chargeback on the platform), both parties and the admins told.
   */
  async function openedIn(tx: PaymentTx, dispute: DisputeObject): Promise<void> {
    const disputeId = dispute.id
    const jobId = await store.jobOfIntent(dispute.payment_intent, tx.trx)
    if (!jobId) throw new Error(`no job pays with the disputed intent ${dispute.payment_intent} yet`)
    const job = await store.lockJob(tx.trx, jobId)
    // Seen before (open, or closed already): nothing again.
    if (!job || job.payment_dispute_id === disputeId) return
    // A charge is disputed once (Stripe's rule): another id on a disputed payment is not ours to apply.
    if (job.payment_disputed) throw new Error(`job ${jobId}'s payment is under dispute ${job.payment_dispute_id} already, not ${disputeId}`)
    if (job.payment_charged === 0) throw new Error(`the disputed payment of job ${jobId} is not recorded yet`)
    await move(tx.trx, job, 'dispute', `dispute:${disputeId}`, disputeEntries(factsOf(job)))
    await tx.setPayment(jobId, { payment_status: 'disputed', payment_disputed: true, payment_dispute_id: disputeId })
    // The bank's claim, which may be the whole charge though some of it came back already.
    const amount = dispute.amount !== undefined ? money(dispute.amount, job.price_currency!) : amountOf(job)
    tx.say([
      { from: null, to: job.client_id, jobId, text: paymentTexts.disputed(job.title, amount, true) },
      ...(job.worker_id ? [{ from: null, to: job.worker_id, jobId, text: paymentTexts.disputed(job.title, amount, false) }] : []),
      ...(await adminNotes(tx, job, paymentTexts.disputedToAdmin(job.title, amount, jobId))),
    ])
  }

  /**
   * What a lost dispute needs of the provider before its transaction: the worker's share of a
   * payout made, reversed (keyed by the dispute, so once whatever the retries).
   */
  async function prepareClose(dispute: DisputeObject): Promise<void> {
    if (!LOST.includes(dispute.status)) return
    const jobId = await store.jobOfIntent(dispute.payment_intent)
    const job = jobId ? await store.job(jobId) : undefined
    if (!job || !job.payment_transfer_id || (job.payment_dispute_id === dispute.id && !job.payment_disputed)) return
    const { fromWorker } = disputeLostEntries({ ...factsOf(job), disputed: true })
    if (fromWorker > 0) await provider.reverseTransfer({ transfer: job.payment_transfer_id, amount: fromWorker }, `dispute:${dispute.id}:reversal`)
  }

  /** A dispute closed, won or lost (an earlier `created` that never came is applied first). */
  async function closedIn(tx: PaymentTx, dispute: DisputeObject): Promise<void> {
    const won = WON.includes(dispute.status)
    if (!won && !LOST.includes(dispute.status)) return
    const jobId = await store.jobOfIntent(dispute.payment_intent, tx.trx)
    if (!jobId) throw new Error(`no job pays with the disputed intent ${dispute.payment_intent} yet`)
    let job = await store.lockJob(tx.trx, jobId)
    if (job && job.payment_dispute_id !== dispute.id) {
      await openedIn(tx, dispute)
      job = await store.lockJob(tx.trx, jobId)
    }
    if (!job || !job.payment_disputed || job.payment_dispute_id !== dispute.id) return
    const facts = factsOf(job)
    const amount = amountOf(job)
    const key = `dispute:${dispute.id}:${won ? 'won' : 'lost'}`
    if (won) {
      if (!(await move(tx.trx, job, 'dispute', key, disputeWonEntries(facts)))) return
      const transferred = job.payment_transfer_id !== null
      await tx.setPayment(jobId, {
        payment_disputed: false,
        payment_status: transferred ? 'paid_out' : settled(job),
        // A completed job may be approved now (the sweep does it).
        ...(job.status === 'COMPLETED' ? { due_at: clock.now() } : {}),
      })
      if (!transferred && (job.status === 'PENDING_PAYMENT' || RELEASED_WITH.includes(job.status))) {
        // The payout (or the release) goes ahead: a task added with the change, run at once after it.
        const taskId = await queue.add(tx.trx, RESUME_TASK, { job_id: jobId }, { id: taskIdOf(RESUME_TASK, dispute.id), runsNow: true })
        tx.after(() => queue.runNow(RESUME_TASK, taskId, () => resume(jobId)))
      }
    } else {
      if (!(await move(tx.trx, job, 'dispute', key, disputeLostEntries(facts).entries))) return
      // Still marked disputed: nothing is refunded or paid out of it any more.
      await tx.setPayment(jobId, { payment_status: 'refunded', payment_refunded: job.payment_charged })
    }
    const texts = won ? paymentTexts.disputeWon : paymentTexts.disputeLost
    tx.say([
      { from: null, to: job.client_id, jobId, text: texts(job.title, amount, true) },
      ...(job.worker_id ? [{ from: null, to: job.worker_id, jobId, text: texts(job.title, amount, false) }] : []),
      ...(await adminNotes(tx, job, paymentTexts.disputeClosedToAdmin(job.title, amount, jobId, won ? 'won' : 'lost'))),
    ])
  }

  /** After a won dispute: the held money of a job that ended without work goes back; a job waiting for its payout is paid. */
  async function resume(jobId: string): Promise<void> {
    const job = await store.job(jobId)
    if (!job) return
    if (RELEASED_WITH.includes(job.status)) return hooks.release(jobId)
    const payout = hooks.payout()
    if (job.status === 'PENDING_PAYMENT' && payout) await payout(jobId)
  }

  return {
    openedIn,
    prepareClose,
    closedIn,
    resume,

    /** An admin answers a job's open dispute with evidence; the outcome arrives as the dispute's close. */
    async respond(context: AdminContext, jobId: string, evidence: string) {
      if (!(await deps.isAdmin(context.actorId))) throw new ForbiddenError('Only admins answer disputes', 'not_an_admin')
      const job = await store.job(jobId)
      if (!job) throw new NotFoundError('No such job', 'job_not_found')
      if (!job.payment_disputed || !job.payment_dispute_id || job.payment_status !== 'disputed') throw new ConflictError(`The job's payment is ${job.payment_status ?? 'none'}: no dispute waits for evidence`, 'no_open_dispute')
      await deps.db.transaction().execute((trx) => deps.audit.record(trx, context, { action: 'payment.dispute_evidence', targetType: 'job', targetId: jobId, reason: evidence.slice(0, 500), details: { dispute_id: job.payment_dispute_id } }, clock.now()))
      const answer = await provider.submitDisputeEvidence(job.payment_dispute_id, evidence).catch((error: unknown) => {
        deps.log.warn({ err: error, job_id: jobId }, 'the provider did not take the dispute evidence')
        throw new ConflictError('The provider did not take the evidence: the dispute may be closed already', 'dispute_not_open')
      })
      return { ...paymentView((await store.job(jobId))!, job.client_id), dispute_status: answer.status }
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
      await inTransaction(async (tx) => {
        const locked = await store.lockJob(tx.trx, jobId)
        if (!locked || locked.payment_refunded !== job.payment_refunded) return
        await move(tx.trx, locked, fromWorker > 0 ? 'reversal' : 'refund', step, refundEntries(factsOf(locked), amount).entries)
        const refunded = locked.payment_refunded + amount
        await tx.setPayment(jobId, { payment_refunded: refunded, payment_status: refunded === locked.payment_charged ? 'refunded' : 'partially_refunded' })
        await deps.audit.record(tx.trx, context, {
          action: 'payment.refund',
          targetType: 'job',
          targetId: jobId,
          reason: input.reason,
          details: { amount, currency: locked.price_currency, refunded_total: refunded, charged: locked.payment_charged, reversed_from_worker: fromWorker },
        }, clock.now())
        const shown = money(amount, locked.price_currency!)
        tx.say([
          { from: null, to: locked.client_id, jobId, text: paymentTexts.refunded(locked.title, shown, input.reason, true) },
          ...(locked.worker_id ? [{ from: null, to: locked.worker_id, jobId, text: paymentTexts.refunded(locked.title, shown, input.reason, false) }] : []),
        ])
      })
      return paymentView((await store.job(jobId))!, job.client_id)
    },
  }
}
