// A job's payment: asking the provider for it, and recording its confirmation.

import type { PaymentOutcome } from '../../platform/payments/index.js'
import { recordSettlement } from '../../platform/payments/ledger.js'
import { writeLocked } from './commit.js'
import { decidePaid } from './decide.js'
import type { JobsDeps } from './deps.js'
import type { Pushes } from './pushes.js'
import type { JobView } from './schemas.js'
import type { JobRow } from './store.js'

/** A provider's answer as PaymentOutcome documents it: a known status, a provider name and a reference of sane length. */
function isOutcome(answer: unknown): answer is PaymentOutcome {
  const a = answer as Partial<Record<keyof PaymentOutcome, unknown>> | null
  const text = (value: unknown, max: number) => typeof value === 'string' && value.length > 0 && value.length <= max
  return typeof a === 'object' && a !== null && (a.status === 'confirmed' || a.status === 'pending') && text(a.provider, 100) && text(a.reference, 500)
}

export function createJobPayment(deps: Pick<JobsDeps, 'db' | 'store' | 'clock' | 'payments' | 'settings' | 'log'> & { pushes: Pushes }) {
  const { db, store, clock, log } = deps

  /** The provider confirmed a job's payment: record it in the ledger and mark the job PAID, as one. */
  const confirmPayment = async (jobId: string, outcome: { provider: string; reference: string }): Promise<JobView | undefined> => {
    const committed = await db.transaction().execute(async (trx) => {
      const job = await store.lock(trx, jobId)
      const now = clock.now()
      // Already PAID (a retried confirmation) or no longer waiting: nothing to do.
      const plan = decidePaid(job, now, deps.settings)
      if (!job || !plan) return undefined
      await recordSettlement(trx, {
        jobId,
        clientId: job.client_id,
        workerId: job.worker_id,
        amount: job.price_amount!,
        currency: job.price_currency!,
        provider: outcome.provider,
        reference: outcome.reference,
        at: now,
      })
      return writeLocked(store, trx, job, plan)
    })
    return committed ? deps.pushes.job(committed) : undefined
  }

  /**
   * Asks the provider for a PENDING_PAYMENT job's payment (the request_payment follow-up); marks
   * it PAID when confirmed. A provider that fails is asked again by the due work.
   */
  const requestPayment = async (row: JobRow): Promise<JobView | undefined> => {
    if (row.status !== 'PENDING_PAYMENT' || row.price_amount === null || row.price_currency === null) return undefined
    let outcome: PaymentOutcome
    try {
      outcome = await deps.payments.requestPayment({
        jobId: row.id,
        amount: row.price_amount,
        currency: row.price_currency,
        clientId: row.client_id,
        workerId: row.worker_id,
      })
    } catch (error) {
      log.warn({ err: error, job_id: row.id }, 'the payment provider failed; the payment will be tried again')
      return undefined
    }
    // The provider's answer is checked before it is recorded: one not in its documented shape
    // counts as a failure (asked again later), never as a payment, nor a 500 for the approval.
    if (!isOutcome(outcome)) {
      log.warn({ job_id: row.id, answer: JSON.stringify(outcome)?.slice(0, 200) }, 'the payment provider answered in no known shape; the payment will be tried again')
      return undefined
    }
    return outcome.status === 'confirmed' ? confirmPayment(row.id, outcome) : undefined
  }

  /**
   * The payment task's work: asks for a job's payment while it waits in PENDING_PAYMENT, and fails
   * (so the task is retried with backoff, then kept for an admin) until the provider confirms.
   */
  const payOrFail = async (jobId: string): Promise<void> => {
    const row = await store.findById(jobId)
    if (!row || row.status !== 'PENDING_PAYMENT') return
    const paid = await requestPayment(row)
    if (!paid) throw new Error(`the payment of job ${jobId} is not confirmed yet`)
  }

  return { confirmPayment, requestPayment, payOrFail }
}

export type JobPayment = ReturnType<typeof createJobPayment>
