// The provider's events (Stripe's webhooks, the local provider's events). Receiving one is one
// statement: the event row, inserted once by its id (ON CONFLICT DO NOTHING), which is also the
// outbox of its work; the answer goes out at once. An applier then takes the events still to
// apply in batches, oldest first: it re-reads from the provider each object the batch names (once
// per object, however many events name it, so events late or out of order end in the provider's
// current state), then applies the whole batch and marks it applied in one transaction, claiming
// its rows with FOR UPDATE SKIP LOCKED so that two appliers never apply one event. A batch that
// fails is applied again one event at a time; an event that keeps failing is tried again with
// backoff, up to a cap; then it stays unapplied, with its last error, among the failed tasks that
// admins see and retry.

import { InvalidInputError } from '../../errors.js'
import { WebhookSignatureError, type ConnectedAccount, type IntentState, type ProviderEvent } from '../../platform/payments/index.js'
import type { StopHandling } from '../../platform/queue/index.js'
import { taskIdOf, type Core, type PaymentsDeps, type PaymentTx } from './core.js'
import { RESUME_TASK, type DisputeObject } from './disputes.js'
import { createReceipts } from './receipts.js'
import type { EventObject, EventRow } from './store.js'

/** The task that applies one event: an admin's retry of one given up (and, before batches, every event). */
export const EVENT_TASK = 'payments.apply-event'
/** Events applied in one transaction at most (above what arrives in PACE_MS at a thousand a second). */
const BATCH = 500
/** Attempts before an event is left for an admin (logged as an error). */
const MAX_ATTEMPTS = 12
/**
 * Least milliseconds between the starts of two batches of the applier (see wake). Each batch
 * re-reads every object it names, so the pace sets the provider's reads under a stream of events:
 * at 100 ms, 3000 events for 50 accounts took 1,100-1,900 reads; at 200 ms, about half.
 */
const PACE_MS = 200
/** Seconds between sweeps for events left unapplied (by a failure, a crash, or another process). */
const SWEEP_MS = 5_000
const backoffMs = (attempts: number) => Math.min(1_000 * 2 ** (attempts - 1), 15 * 60_000)

/** What an event asks of the applier: the object to re-read and apply, or a dispute as the event tells it. */
type Work =
  | { kind: 'intent'; ref: string; id: string }
  | { kind: 'account'; ref: string; id: string }
  | { kind: 'dispute.created'; dispute: DisputeObject }
  | { kind: 'dispute.closed'; dispute: DisputeObject }
  | { kind: 'none' }

function workOf(event: { type: string; object: EventObject | string | null }): Work {
  // The embedded database answers JSON as its text.
  const object = (typeof event.object === 'string' ? JSON.parse(event.object) : event.object) as EventObject | null
  if (!object || typeof object.id !== 'string') return { kind: 'none' }
  if (event.type.startsWith('payment_intent.')) return { kind: 'intent', ref: `pi:${object.id}`, id: object.id }
  if (event.type === 'account.updated') return { kind: 'account', ref: `acct:${object.id}`, id: object.id }
  const amount = Number.isSafeInteger(object.amount) && (object.amount as number) > 0 ? (object.amount as number) : undefined
  const dispute = { id: object.id, payment_intent: String(object.payment_intent), status: String(object.status), amount }
  if (event.type === 'charge.dispute.created') return { kind: 'dispute.created', dispute }
  if (event.type === 'charge.dispute.closed') return { kind: 'dispute.closed', dispute }
  return { kind: 'none' }
}

type Fresh = { intent: IntentState } | { account: ConnectedAccount }

export function createWebhooks(
  deps: PaymentsDeps,
  core: Core,
  parts: {
    applyIntentIn(tx: PaymentTx, intent: IntentState): Promise<void>
    disputeOpenedIn(tx: PaymentTx, dispute: DisputeObject): Promise<void>
    prepareDisputeClose(dispute: DisputeObject): Promise<void>
    disputeClosedIn(tx: PaymentTx, dispute: DisputeObject): Promise<void>
    resume(jobId: string): Promise<void>
  },
) {
  const { store, provider, clock, log, queue } = deps
  const { inTransaction } = core

  /** Events this process applied (marked applied in a commit of its own). */
  let applied = 0

  /** Reads (and prepares) what the events need of the provider, outside any transaction: per object once. */
  async function prepare(rows: EventRow[]): Promise<{ fresh: Map<string, Fresh>; failed: Map<string, unknown> }> {
    const fresh = new Map<string, Fresh>()
    const failed = new Map<string, unknown>()
    const reads = new Map<string, Promise<Fresh>>()
    const steps = rows.map(async (row) => {
      const work = workOf(row)
      try {
        if (work.kind === 'intent' || work.kind === 'account') {
          let read = reads.get(work.ref)
          if (!read) {
            read = work.kind === 'intent' ? provider.retrievePaymentIntent(work.id).then((intent) => ({ intent })) : provider.retrieveAccount(work.id).then((account) => ({ account }))
            reads.set(work.ref, read)
          }
          fresh.set(work.ref, await read)
        } else if (work.kind === 'dispute.closed') {
          await parts.prepareDisputeClose(work.dispute)
        }
      } catch (error) {
        failed.set(row.id, error)
      }
    })
    await Promise.all(steps)
    return { fresh, failed }
  }

  /**
   * Applies events in one transaction (each re-read object once); answers the ids applied. Its
   * statements do not grow with the batch's events: one claims and marks them all, one writes all
   * the accounts they name (intents and disputes, which move money, take their own).
   */
  async function applyTogether(rows: EventRow[], fresh: Map<string, Fresh>): Promise<string[]> {
    if (rows.length === 0) return []
    return inTransaction(async (tx) => {
      const claimed = new Set(await store.claimEvents(tx.trx, rows.map((r) => r.id), clock.now()))
      const done = new Set<string>()
      const accounts: ConnectedAccount[] = []
      for (const row of rows) {
        if (!claimed.has(row.id)) continue
        const work = workOf(row)
        if (work.kind === 'intent' || work.kind === 'account') {
          const state = fresh.get(work.ref)
          if (!state) throw new Error(`object ${work.ref} was not read`)
          if (!done.has(work.ref)) {
            if ('intent' in state) await parts.applyIntentIn(tx, state.intent)
            else accounts.push(state.account)
            done.add(work.ref)
          }
        } else if (work.kind === 'dispute.created') {
          await parts.disputeOpenedIn(tx, work.dispute)
        } else if (work.kind === 'dispute.closed') {
          await parts.disputeClosedIn(tx, work.dispute)
        }
      }
      await store.updateAccounts(tx.trx, accounts, clock.now())
      return [...claimed]
    })
  }

  /**
   * An attempt failed: tried again with backoff, or, at the cap, given up: the event then joins the
   * failed tasks (as a failed `payments.apply-event`, in the transaction that gives it up), where
   * an admin sees it and retries it, audited, as any failed task.
   */
  async function failed(row: EventRow, error: unknown, options: { byTask?: boolean } = {}) {
    const attempts = row.attempts + 1
    const last = attempts >= MAX_ATTEMPTS
    const message = (error instanceof Error ? error.message : String(error)).slice(0, 1000)
    await deps.db.transaction().execute(async (trx) => {
      await store.failEvent(trx, row.id, attempts, last ? null : backoffMs(attempts), message)
      // A task's own failure is the queue's to record.
      if (last && !options.byTask) await queue.addFailed(trx, EVENT_TASK, { event_id: row.id, type: row.type }, { id: taskIdOf(EVENT_TASK, row.id), error: message, retries: attempts })
    })
    // Woken again when it is due (the sweep would, later).
    if (!last) setTimeout(() => void wake(), backoffMs(attempts) + 10).unref()
    if (last) log.error({ err: error, event_id: row.id, type: row.type, attempts }, 'a payment event failed for good; it waits for an admin in the failed tasks')
    else log.warn({ err: error, event_id: row.id, type: row.type, attempts }, 'a payment event failed; it will be tried again')
  }

  /**
   * The `payments.apply-event` task: an event applied now from its row, through the batch's path
   * (read, then claimed and applied in one transaction), whatever its attempts so far. Such tasks
   * are an admin's retry of an event given up, or were queued for each event before the batch
   * applier (drained so): an event applied meanwhile is done, one another applier holds is its.
   */
  async function applyTask(eventId: string): Promise<void> {
    const row = await store.event(eventId)
    if (!row) return log.warn({ event_id: eventId }, 'a payment event task names no recorded event; nothing to apply')
    if (row.applied_at) return
    const { fresh, failed: unread } = await prepare([row])
    try {
      if (unread.has(row.id)) throw unread.get(row.id)
      applied += (await applyTogether([row], fresh)).length
    } catch (error) {
      await failed(row, error, { byTask: true })
      throw error
    }
  }

  /** One batch of the events due: answers how many were taken. */
  async function applyBatch(): Promise<number> {
    const rows = await store.dueEvents(BATCH, MAX_ATTEMPTS)
    if (rows.length === 0) return 0
    const { fresh, failed: unread } = await prepare(rows)
    const ready = rows.filter((r) => !unread.has(r.id))
    for (const row of rows) if (unread.has(row.id)) await failed(row, unread.get(row.id))
    try {
      applied += (await applyTogether(ready, fresh)).length
    } catch {
      // One event spoiled the batch: each on its own, so the others go ahead.
      for (const row of ready) {
        try {
          applied += (await applyTogether([row], fresh)).length
        } catch (error) {
          await failed(row, error)
        }
      }
    }
    return rows.length
  }

  // One applier loop a process: woken by each event received here, and by a sweep.
  let running: Promise<void> | undefined
  let again = false
  let stopped = true
  let timer: NodeJS.Timeout | undefined
  let lastStart = 0

  const wake = (): Promise<void> => {
    if (stopped) return Promise.resolve()
    again = true
    running ??= (async () => {
      try {
        while (again && !stopped) {
          again = false
          // While events keep coming, batches start PACE_MS apart at most: each gathers more
          // events, and reads an object they share once. A lone event is applied at once. A pace,
          // not a time of day: measured on the monotonic clock, as the timer that waits it is real.
          const wait = lastStart + PACE_MS - performance.now()
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
          lastStart = performance.now()
          while (!stopped && (await applyBatch()) === BATCH) again = true
        }
      } catch (error) {
        log.warn({ err: error }, 'could not apply payment events now; the sweep will')
      } finally {
        running = undefined
      }
    })()
    return running
  }

  /** Receipts: each event recorded once, inserted together with those arriving with it. */
  const { record } = createReceipts(deps, () => void wake())
  const receiveEvent = (event: ProviderEvent) => record(event, JSON.stringify(event))

  let stopResumes: StopHandling | undefined
  let stopTasks: StopHandling | undefined

  return {
    receiveEvent,

    /** A webhook: verified on its raw body, recorded once, applied by the applier. */
    async receiveWebhook(rawBody: Buffer, signature: string | undefined) {
      let event: ProviderEvent
      try {
        event = provider.verifyWebhook(rawBody, signature)
      } catch (error) {
        if (error instanceof WebhookSignatureError) {
          log.warn({ err: error }, 'a webhook was refused: its signature does not verify')
          throw new InvalidInputError('The signature does not verify', [{ field: 'headers/stripe-signature', message: error.message.slice(0, 200) }], 'invalid_signature')
        }
        throw error
      }
      // The body as it came is the event's JSON: kept as is.
      return record(event, rawBody.toString('utf8'))
    },

    /** Applies what is due now, until nothing is (tests, and the sweep). */
    async applyEvents(): Promise<void> {
      await running
      while ((await applyBatch()) > 0) { /* until none is due */ }
    },

    /** How many events this process applied: each once, across all processes. */
    appliedCount: () => applied,

    async start() {
      stopResumes ??= await queue.handle<{ job_id: string }>(RESUME_TASK, (task) => parts.resume(task.data.job_id), { retryLimit: 10, retryDelaySeconds: 60 })
      // An admin's retry gets a few tries of its own before it is listed as failed again.
      stopTasks ??= await queue.handle<{ event_id: string }>(EVENT_TASK, (task) => applyTask(task.data.event_id), { retryLimit: 2, retryDelaySeconds: 30 })
      stopped = false
      timer ??= setInterval(() => void wake(), SWEEP_MS)
      timer.unref()
      void wake()
    },
    async stop() {
      stopped = true
      clearInterval(timer)
      timer = undefined
      await running
      await stopResumes?.()
      await stopTasks?.()
      stopResumes = undefined
      stopTasks = undefined
    },
  }
}
