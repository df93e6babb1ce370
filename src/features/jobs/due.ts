// Time-driven work on jobs: expiries, reminders, auto-approvals, payment retries. What is due on
// one job is handleDue (in the transaction that holds the job) then finishDue (after its commit);
// the sweep below finds due jobs through their `due_at` and runs both on each.

import type { Transaction } from 'kysely'
import type { Database } from '../../platform/db/index.js'
import type { MessageRow } from '../messaging/index.js'
import { messagesOf, writeLocked, type Committed } from './commit.js'
import { addMs, decideDue, type FollowUp } from './decide.js'
import type { JobsDeps } from './deps.js'
import type { JobPayment } from './payment.js'
import type { Pushes } from './pushes.js'
import type { JobRow, JobWithParties } from './store.js'

/** What one piece of due work leaves to do after its commit. */
export interface DueDone {
  committed?: Committed
  /** Messages that came with no change to the job (a reminder). */
  messages?: MessageRow[]
  /** A job to ask the payment provider about. */
  pay?: JobRow
}

const DUE_WORK_BATCH = 500

const asksForPayment = (followUps: FollowUp[]) => followUps.some((f) => f.do === 'request_payment')

export function createDueWork(deps: Pick<JobsDeps, 'db' | 'store' | 'clock' | 'settings' | 'log' | 'messages'> & { pushes: Pushes; payment: JobPayment }) {
  const { db, store, clock, settings, log } = deps

  /** The work due on a job at `now`, decided (decideDue) and written in the transaction that holds the job. */
  const handleDue = async (trx: Transaction<Database>, job: JobWithParties, now: Date): Promise<DueDone> => {
    const decision = decideDue(job, now, settings)
    if (decision.kind === 'move') {
      const committed = await writeLocked(store, trx, job, decision.plan)
      return { committed, pay: asksForPayment(decision.plan.followUps) ? committed.row : undefined }
    }
    const { touch } = decision
    await store.setDue(trx, job.id, touch.changes)
    const messages = touch.notes.length > 0 ? await deps.messages.insert(trx, messagesOf(job.id, touch.notes, touch.at)) : undefined
    return { messages, pay: asksForPayment(touch.followUps) ? job : undefined }
  }

  /** What due work leaves to do once committed: push it, and ask for a payment. */
  const finishDue = async (done: DueDone): Promise<void> => {
    if (done.committed) deps.pushes.job(done.committed)
    if (done.messages) deps.pushes.messages(done.messages)
    if (done.pay) await deps.payment.requestPayment(done.pay)
  }

  let timer: NodeJS.Timeout | undefined
  let running: Promise<number> | undefined

  /**
   * Does the time-driven work due at `now`. Each job is claimed with FOR UPDATE SKIP LOCKED in its
   * own transaction, so any number of processes may sweep at once without doing one job twice.
   * Answers how many jobs it handled.
   */
  async function runDueWork(now: Date = clock.now()): Promise<number> {
    let handled = 0
    while (handled < DUE_WORK_BATCH) {
      let claimed: string | undefined
      let done: DueDone | undefined
      try {
        done = await db.transaction().execute(async (trx) => {
          const job = await store.claimDue(trx, now)
          if (!job) return undefined
          claimed = job.id
          return handleDue(trx, job, now)
        })
      } catch (error) {
        if (claimed === undefined) throw error
        // This job fails (and rolled back): put it aside for a while so the others go on.
        log.error({ err: error, job_id: claimed }, 'due work on a job failed; it will be tried again')
        await store.setDue(db, claimed, { due_at: addMs(now, settings.paymentRetryMs) })
        handled++
        continue
      }
      if (!done) break
      handled++
      await finishDue(done)
    }
    return handled
  }

  return {
    handleDue,
    finishDue,
    runDueWork,

    /** Sweeps for due work every `intervalMs` until stop(). */
    start(intervalMs: number) {
      if (timer || intervalMs <= 0) return
      timer = setInterval(() => {
        if (running) return
        running = runDueWork().catch((error: unknown) => {
          log.error({ err: error }, 'the due-work sweep failed')
          return 0
        })
        void running.finally(() => {
          running = undefined
        })
      }, intervalMs)
      timer.unref()
    },

    /** Stops the sweep, waiting for a run under way. */
    async stop() {
      if (timer) clearInterval(timer)
      timer = undefined
      await running
    },
  }
}
