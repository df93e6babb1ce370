// A job's payment: asking the provider for it, and recording its confirmation.

import type { PaymentOutcome } from '../../platform/payments/index.js'
import { recordSettlement } from '../../platform/payments/ledger.js'
import { writeLocked } from './commit.js'
import { decidePaid } from './decide.js'
import type { JobsDeps } from './deps.js'
import type { Pushes } from './pushes.js'
import type { JobView } from './schemas.js'
import type { JobRow } from './store.js'

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
