// Time-driven work on jobs: expiries, reminders, auto-approvals, payment requests. What is due on
// one job is handleDue (in the transaction that holds the job) then finishDue (after its commit);
// the sweep below finds due jobs through their `due_at` and runs both on each. The job's `due_at`,
// written with every change, is what makes the work durable; the sweep itself is a queue task (one
// a slot of time, whichever process runs it), and a payment request is a queue task added in the
// transaction that hands it over, retried with backoff up to a cap.

import type { Transaction } from 'kysely'
import { v5 as uuidv5 } from 'uuid'
import type { Database } from '../../platform/db/index.js'
import type { StopHandling } from '../../platform/queue/index.js'
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
  /** The payment task added for the job, run at once after the commit. */
  pay?: { jobId: string; taskId: string | null }
  /** The task that gives the job's held money back, run at once after the commit. */
  release?: { jobId: string; taskId: string | null }
}

const DUE_WORK_BATCH = 500
/** The tasks: one sweep a slot of time, and a job's payment request. */
export const SWEEP_TASK = 'jobs.sweep'
export const PAY_TASK = 'jobs.request-payment'
export const RELEASE_TASK = 'jobs.release-payment'
/**
 * Tasks' ids made from what they are about: the sweep of a slot of time (so that the processes add
 * one between them), a job's payment (so that a job never has two payment tasks).
 */
const TASK_IDS = '6f1e2d4c-9a4b-4c1e-8f3a-2b7d5e0c9a11'
/** A payment request retried with backoff from a minute: 10 times over about 17 hours, then an admin's. */
const PAY_RETRIES = { retryLimit: 10, retryDelaySeconds: 60 }

const asksForPayment = (followUps: FollowUp[]) => followUps.some((f) => f.do === 'request_payment')
const asksForRelease = (followUps: FollowUp[]) => followUps.some((f) => f.do === 'release_payment')

export function createDueWork(deps: Pick<JobsDeps, 'db' | 'store' | 'clock' | 'settings' | 'log' | 'messages' | 'queue' | 'escrow'> & { pushes: Pushes; payment: JobPayment }) {
  const { db, store, clock, settings, log, queue } = deps

  /** Hands a job's payment to a payment task, in the transaction of the change that asks for it. */
  const payTask = async (trx: Transaction<Database>, jobId: string) => ({
    jobId,
    taskId: await queue.add(trx, PAY_TASK, { job_id: jobId }, { id: uuidv5(`${PAY_TASK}:${jobId}`, TASK_IDS), runsNow: true }),
  })

  /** Hands the release of a job's held money to a task, in the transaction that asks for it. */
  const releaseTask = async (trx: Transaction<Database>, jobId: string) => ({
    jobId,
    taskId: await queue.add(trx, RELEASE_TASK, { job_id: jobId }, { id: uuidv5(`${RELEASE_TASK}:${jobId}`, TASK_IDS), runsNow: true }),
  })

  /** The work due on a job at `now`, decided (decideDue) and written in the transaction that holds the job. */
  const handleDue = async (trx: Transaction<Database>, job: JobWithParties, now: Date): Promise<DueDone> => {
    const decision = decideDue(job, now, settings)
    if (decision.kind === 'move') {
      const committed = await writeLocked(store, trx, job, decision.plan)
      const { followUps } = decision.plan
      return {
        committed,
        pay: asksForPayment(followUps) ? await payTask(trx, job.id) : undefined,
        release: asksForRelease(followUps) ? await releaseTask(trx, job.id) : undefined,
      }
    }
    const { touch } = decision
    const release = asksForRelease(touch.followUps) ? await releaseTask(trx, job.id) : undefined
    // The release is the task's now (retried with backoff): the job itself has nothing more due.
    await store.setDue(trx, job.id, release ? { due_at: null, remind_at: null } : touch.changes)
    const messages = touch.notes.length > 0 ? await deps.messages.insert(trx, messagesOf(job.id, touch.notes, touch.at)) : undefined
    return { messages, pay: asksForPayment(touch.followUps) ? await payTask(trx, job.id) : undefined, release }
  }

  /** What due work leaves to do once committed: push it, and ask for a payment. */
  const finishDue = async (done: DueDone): Promise<void> => {
    if (done.committed) deps.pushes.job(done.committed)
    if (done.messages) deps.pushes.messages(done.messages)
    if (done.pay) await queue.runNow(PAY_TASK, done.pay.taskId, () => deps.payment.payOrFail(done.pay!.jobId))
    if (done.release) await queue.runNow(RELEASE_TASK, done.release.taskId, () => deps.escrow.release(done.release!.jobId))
  }

  let stopPayments: StopHandling | undefined
  let stopReleases: StopHandling | undefined
  let stopSweeps: StopHandling | undefined
  let timer: NodeJS.Timeout | undefined

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

    /**
     * Runs this process's share of the jobs' tasks: payment requests always, and with `intervalMs`
     * above 0 the sweep. Every `intervalMs` each process adds the sweep of the current slot of
     * time; those of one slot share an id, so one sweep runs a slot, in whichever process claims
     * it, and a sweep that fails is retried like any task.
     */
    async start(intervalMs: number) {
      stopPayments ??= await queue.handle<{ job_id: string }>(PAY_TASK, (task) => deps.payment.payOrFail(task.data.job_id), PAY_RETRIES)
      stopReleases ??= await queue.handle<{ job_id: string }>(RELEASE_TASK, (task) => deps.escrow.release(task.data.job_id), PAY_RETRIES)
      if (intervalMs <= 0 || timer) return
      stopSweeps = await queue.handle(SWEEP_TASK, async () => {
        await runDueWork()
      }, { retryLimit: 3, retryDelaySeconds: 5 })
      const addSweep = () => {
        const slot = Math.floor(clock.now().getTime() / intervalMs) * intervalMs
        queue.add(db, SWEEP_TASK, { slot }, { id: uuidv5(`${SWEEP_TASK}:${intervalMs}:${slot}`, TASK_IDS) }).catch((error: unknown) => log.warn({ err: error }, 'could not add the sweep of due jobs; the next slot will'))
      }
      addSweep()
      timer = setInterval(addSweep, intervalMs)
      timer.unref()
    },

    /** Stops this process's share of the jobs' tasks, waiting for those under way. */
    async stop() {
      clearInterval(timer)
      timer = undefined
      await stopSweeps?.()
      await stopPayments?.()
      await stopReleases?.()
      stopSweeps = stopPayments = stopReleases = undefined
    },
  }
}
