// A job's payout: the transfer of the worker's share of the held money at approval, and the
// move to PAID once the provider made it, with its ledger movement, in one transaction.

import { writeLocked } from './commit.js'
import { decidePaid } from './decide.js'
import type { JobsDeps } from './deps.js'
import type { Pushes } from './pushes.js'
import type { JobView } from './schemas.js'
import type { JobRow } from './store.js'

export function createJobPayment(deps: Pick<JobsDeps, 'db' | 'store' | 'clock' | 'escrow' | 'settings' | 'log'> & { pushes: Pushes }) {
  const { db, store, clock, log, escrow } = deps

  /** The provider made the transfer: record it in the ledger and mark the job PAID, as one. */
  const confirmPayment = async (jobId: string, transferId: string): Promise<JobView | undefined> => {
    const committed = await db.transaction().execute(async (trx) => {
      const job = await store.lock(trx, jobId)
      // Already PAID (a retried confirmation) or no longer waiting: nothing to do.
      const plan = decidePaid(job, clock.now(), deps.settings)
      if (!job || !plan) return undefined
      await escrow.recordTransfer(trx, jobId, transferId)
      return writeLocked(store, trx, job, plan)
    })
    return committed ? deps.pushes.job(committed) : undefined
  }

  /**
   * Pays a PENDING_PAYMENT job's worker (the request_payment follow-up); marks it PAID when the
   * provider made the transfer. A provider that fails is asked again by the payment task.
   */
  const requestPayment = async (row: JobRow): Promise<JobView | undefined> => {
    if (row.status !== 'PENDING_PAYMENT' || row.price_amount === null || row.price_currency === null) return undefined
    let transfer: { transferId: string } | undefined
    try {
      transfer = await escrow.transfer(row)
    } catch (error) {
      log.warn({ err: error, job_id: row.id }, 'the payout failed; it will be tried again')
      return undefined
    }
    return transfer ? confirmPayment(row.id, transfer.transferId) : undefined
  }

  /**
   * The payment task's work: pays a job while it waits in PENDING_PAYMENT, and fails (so the task
   * is retried with backoff, then kept for an admin) until it is paid. A payout held by a
   * dispute rests: the dispute's outcome decides.
   */
  const payOrFail = async (jobId: string): Promise<void> => {
    const row = await store.findById(jobId)
    if (!row || row.status !== 'PENDING_PAYMENT') return
    if (await escrow.payoutHeld(jobId)) return
    const paid = await requestPayment(row)
    if (!paid) throw new Error(`the payment of job ${jobId} is not confirmed yet`)
  }

  return { confirmPayment, requestPayment, payOrFail }
}

export type JobPayment = ReturnType<typeof createJobPayment>
