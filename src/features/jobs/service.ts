// The jobs service: reads through the store, decides with decide.ts (pure), writes the decided
// plan with the versioned loop (or on a locked row), then pushes what committed and runs the
// follow-ups a change asked for.

import type { Transaction } from 'kysely'
import { Type } from 'typebox'
import { v7 as uuidv7 } from 'uuid'
import { InvalidInputError, NotFoundError } from '../../errors.js'
import { decodeCursor, pageOf } from '../../http/cursor.js'
import type { Database } from '../../platform/db/index.js'
import { changeVersioned } from '../../platform/db/versioned.js'
import { checkEdit, checkMove, checkOffer, checkQuote } from './checks.js'
import { messagesOf, writeLocked, writePlan, type Committed } from './commit.js'
import { decideCancelForDeletion, decideEdit, decideExpiry, decideMove, decideQuote, isStale, type Decision, type Plan } from './decide.js'
import { decideOffer, decideOfferParties, decideOpenRequest, decideOpenRequestClient } from './decide-offer.js'
import type { JobsDeps } from './deps.js'
import { createDueWork } from './due.js'
import { createJobPayment } from './payment.js'
import { createPushes } from './pushes.js'
import type { JobInput, JobListInput, JobView, QuoteInput, StatusInput } from './schemas.js'
import type { JobRow, JobWithParties } from './store.js'
import type { Nearby } from './texts.js'
import { etagOf, view, withClientSecret } from './view.js'

export type { JobsDeps, JobsSettings, MessageSink, WorkerLocator } from './deps.js'
export { etagOf, ifMatchHolds } from './view.js'

const CursorPosition = Type.Object({ id: Type.String({ format: 'uuid' }) })
/** How many times a change is decided again when others changed the job first. */
const CHANGE_ATTEMPTS = 5

/** The plan of a decision, or its refusal thrown. */
function planOrThrow<P>(decision: Decision<P>): Extract<Decision<P>, { ok: true }> {
  if (!decision.ok) throw decision.refusal
  return decision
}

export function createJobsService(deps: JobsDeps) {
  const { db, store, clock, settings, log } = deps
  const pushes = createPushes({ ...deps, alertedOf: (jobId) => store.alertedOf(jobId) })
  const payment = createJobPayment({ ...deps, pushes })
  const due = createDueWork({ ...deps, pushes, payment })

  /** A category a job is to take, when one is named. */
  const checkCategory = async (id: string | null | undefined) => {
    if (id === undefined || id === null) return
    if (!deps.checkCategory) throw new InvalidInputError('No such category', [{ field: 'body/category_id', message: 'is not a category' }], 'category_not_found')
    await deps.checkCategory(id, 'body/category_id')
  }

  /**
   * A user's change to a job: read the job, decide, and write if nobody changed it meanwhile (the
   * version guards the write, so no lock is held while deciding); when someone did, decide again
   * on what they left. An offer found past its expiry is expired (and pushed) before the refusal.
   * When `confirm` answers a check for what was read, the write is a transaction that first
   * confirms, under a hold it takes, what the decision read beside the job (a block between its
   * users): when that no longer holds, nothing is written and the change is read and decided again.
   */
  const changeJob = async <R extends { job: JobWithParties | undefined }>(
    read: () => Promise<R>,
    decide: (read: R, now: Date) => Decision<Plan>,
    confirm?: (read: R) => ((trx: Transaction<Database>) => Promise<boolean>) | undefined,
  ): Promise<{ committed: Committed; plan: Plan }> => {
    const { committed, decided } = await changeVersioned({
      read,
      decide: (state) => planOrThrow(decide(state, clock.now())),
      write: async (state, decided) => {
        // A plan is decided only on a job that was found.
        const confirming = confirm?.(state)
        const committed = confirming
          ? await db.transaction().execute(async (trx) => ((await confirming(trx)) ? writePlan(store, trx, state.job!, decided.plan) : undefined))
          : await writePlan(store, db, state.job!, decided.plan)
        return committed && { committed, decided }
      },
      attempts: CHANGE_ATTEMPTS,
      busy: { code: 'job_busy', detail: 'The job kept changing while you changed it; read it again' },
    })
    if (decided.refusalAfter) {
      pushes.job(committed)
      throw decided.refusalAfter
    }
    return { committed, plan: decided.plan }
  }

  /** Pushes a committed change, runs the follow-ups it asked for now (a payment) and answers the job as it is then. */
  const finish = async (committed: Committed, plan: Plan): Promise<JobView> => {
    const job = pushes.job(committed)
    const withWarnings = plan.warnings && plan.warnings.length > 0 ? { ...job, warnings: plan.warnings } : job
    if (plan.followUps.some((f) => f.do === 'request_payment')) return (await payment.requestPayment(committed.row)) ?? withWarnings
    if (plan.followUps.some((f) => f.do === 'release_payment')) {
      // Released now; should that fail, the job stays due and the sweep hands it to a task.
      const released = await deps.escrow.release(committed.row.id).then(() => true, (error: unknown) => {
        log.warn({ err: error, job_id: committed.row.id }, 'could not release the held payment now; the sweep will')
        return false
      })
      if (released) {
        await store.setDue(db, committed.row.id, { due_at: null })
        return { ...withWarnings, payment: (await service.get(committed.row.client_id, committed.row.id)).payment }
      }
    }
    return withWarnings
  }

  /** Expires an offer found stale at read time (unless someone got there first). */
  const expireNow = async (jobId: string): Promise<void> => {
    const committed = await db.transaction().execute(async (trx) => {
      const job = await store.lock(trx, jobId)
      const plan = decideExpiry(job, clock.now(), settings)
      return job && plan ? writeLocked(store, trx, job, plan) : undefined
    })
    if (committed) pushes.job(committed)
  }

  const partyOf = (row: JobRow, userId: string) => row.client_id === userId || row.worker_id === userId
  /** Who may read a job: its client and worker, and while an open request waits (REQUESTED, nobody's), the workers alerted to it. */
  const mayRead = async (row: JobRow, userId: string) =>
    partyOf(row, userId) || (row.open_request && row.worker_id === null && row.status === 'REQUESTED' && (await store.wasAlerted(row.id, userId)))

  /**
   * A new open request: the audience is found (the live map and saved alerts), then the job, its
   * alerts and one system message to each alerted worker are stored in one transaction; after it,
   * each gets a `job.alert` event, and the price is charged into escrow as with an offer.
   */
  const createOpen = async (actorId: string, input: JobInput): Promise<JobView> => {
    const now = clock.now()
    const missing = (['title', 'category_id', 'location'] as const).filter((f) => input[f] === undefined || input[f] === null)
    if (missing.length > 0) {
      throw new InvalidInputError(`An open request (no worker_id) needs ${missing.join(' and ')}`, missing.map((f) => ({ field: `body/${f}`, message: 'is required for an open request' })), 'open_request_incomplete')
    }
    checkEdit(input, now)
    await checkCategory(input.category_id)
    if (input.payment_method !== undefined && !input.price) {
      throw new InvalidInputError('A payment method goes with a priced offer; for a quote, pay with POST /job/{id}/payment', [{ field: 'body/payment_method', message: 'needs a price' }], 'payment_method_not_expected')
    }
    const location = input.location!
    const categoryId = input.category_id!
    const found = ((await deps.audience?.({ clientId: actorId, lat: location.lat, lon: location.lon, categoryId })) ?? []).filter((a) => a.workerId !== actorId)
    const { plan, created, client, audience } = await db.transaction().execute(async (trx) => {
      const client = planOrThrow(decideOpenRequestClient(await store.clientOf(trx, actorId))).plan
      // An alert is a message to the worker: the audience was found without a hold, so the blocks
      // between the client and each worker are read again here, each pair held, and a block
      // committed first wins.
      const blocked = await store.blockedAmong(trx, actorId, found.map((a) => a.workerId))
      const audience = found.filter((a) => !blocked.has(a.workerId))
      const plan = decideOpenRequest({ id: uuidv7(), client, input: { ...input, title: input.title!, category_id: categoryId, location }, audience }, now, settings)
      const created = await store.create(trx, plan.row, plan.entry, messagesOf(plan.row.id, plan.notes, plan.at))
      await store.recordAlerts(trx, plan.row.id, audience, now)
      return { plan, created, client, audience }
    })
    let job = pushes.job({ row: created.row, log: [plan.entry], messages: created.messages, parties: [client] })
    if (audience.length > 0) {
      await deps.events.publish({ to: audience.map((a) => a.workerId), type: 'job.alert', data: job }).catch((error: unknown) => log.warn({ err: error, job_id: job.id }, 'could not push job alerts'))
    }
    if (input.price && input.payment_method) {
      await deps.escrow.charge(created.row.id, input.payment_method)
      job = await service.get(actorId, created.row.id)
    }
    return job
  }

  /** Workers near a job the caller declines, from the live map, read before the job is; null when unknown. */
  const nearbyForDecline = async (actorId: string, jobId: string): Promise<Nearby[] | null> => {
    if (!deps.locator) return null
    const peek = await store.findById(jobId)
    if (!peek || peek.worker_id !== actorId || peek.location_lat === null || peek.location_lon === null) return null
    return deps.locator
      .nearbyWorkers({ lat: peek.location_lat, lon: peek.location_lon }, { viewerId: peek.client_id, exclude: [peek.worker_id], limit: 3 })
      .catch((error: unknown) => {
        log.warn({ err: error, job_id: jobId }, 'could not search for workers nearby')
        return null
      })
  }

  const service = {
    view,
    etagOf,

    /** A new offer from a client to a worker, in REQUESTED; the worker is told. */
    async create(actorId: string, input: JobInput): Promise<JobView> {
      // No worker named, but a category or a place: an open request to the workers near it.
      if (input.worker_id === undefined && ((input.category_id ?? null) !== null || (input.location ?? null) !== null)) return createOpen(actorId, input)
      const now = clock.now()
      checkOffer(input, now)
      await checkCategory(input.category_id)
      if (input.payment_method !== undefined && !input.price) {
        throw new InvalidInputError('A payment method goes with a priced offer; for a quote, pay with POST /job/{id}/payment', [{ field: 'body/payment_method', message: 'needs a price' }], 'payment_method_not_expected')
      }
      if (input.price) await deps.escrow.checkCurrency(input.worker_id, input.price.currency)
      const location = input.location ?? null
      const distanceM = location && deps.locator ? await deps.locator.distanceTo(input.worker_id, location).catch(() => null) : null
      // An offer is a message to the worker: both users and the blocks between them are read in
      // the transaction that stores it, after holding the pair, so a block committed first wins.
      const { plan, created, parties } = await db.transaction().execute(async (trx) => {
        const { client, worker } = planOrThrow(decideOfferParties(await deps.messages.contextOf(actorId, input.worker_id, trx), actorId, input.worker_id)).plan
        const plan = decideOffer({ id: uuidv7(), client, worker, input, distanceM }, now, settings)
        return { plan, created: await store.create(trx, plan.row, plan.entry, messagesOf(plan.row.id, plan.notes, plan.at)), parties: [client, worker] }
      })
      let job = pushes.job({ row: created.row, log: [plan.entry], messages: created.messages, parties })
      // The client's money is held before the worker commits: charged now, into the platform's balance.
      if (input.price && input.payment_method) {
        await deps.escrow.charge(created.row.id, input.payment_method)
        job = await service.get(actorId, created.row.id)
      }
      return plan.warnings && plan.warnings.length > 0 ? { ...job, warnings: plan.warnings } : job
    },

    /** The client changes its offer while it is REQUESTED; the worker is told. */
    async edit(actorId: string, input: JobInput & { id: string }, ifMatch: string | undefined): Promise<JobView> {
      checkEdit(input, clock.now())
      await checkCategory(input.category_id)
      if (input.payment_method !== undefined) {
        throw new InvalidInputError('An offer\'s payment is changed with POST /job/{id}/payment', [{ field: 'body/payment_method', message: 'is not taken with an edit' }], 'payment_method_not_expected')
      }
      // An edit is a message to the worker: none across a block (asked only of the offer's client).
      const blockedIn = async (job: JobWithParties | undefined, trx?: Transaction<Database>) =>
        job?.client_id === actorId && job.worker_id !== null && (await deps.messages.contextOf(actorId, job.worker_id, trx)).blockerId !== null
      const { committed, plan } = await changeJob(
        async () => {
          const job = await store.findWithParties(input.id)
          return { job, blocked: await blockedIn(job) }
        },
        (read, now) => decideEdit(read, { actorId, input, ifMatch }, now, settings),
        // Confirmed under the hold on the pair, in the transaction that writes the edit.
        (read) => async (trx) => (await blockedIn(read.job, trx)) === read.blocked,
      )
      return finish(committed, plan)
    },

    /** One job, to its client and worker; an offer past its expiry is expired first. */
    async get(actorId: string, jobId: string): Promise<JobView> {
      let row = await store.findById(jobId)
      if (!row || !(await mayRead(row, actorId))) throw new NotFoundError('No such job', 'job_not_found')
      if (isStale(row, clock.now())) {
        await expireNow(jobId)
        row = (await store.findById(jobId))!
      }
      return withClientSecret(view(row, (await store.logsOf(db, [jobId])).get(jobId) ?? []), row, actorId)
    },

    /** The caller's jobs, newest first. Offers past their expiry are expired before they are listed. */
    async list(actorId: string, query: JobListInput) {
      const limit = query.limit ?? 20
      const after = decodeCursor(query.cursor, CursorPosition)
      for (const id of await store.staleOffersOf(actorId, clock.now())) await expireNow(id)
      const rows = await store.list({ userId: actorId, role: query.role, status: query.status, limit, beforeId: after?.id })
      const page = pageOf(rows, limit, (last) => ({ id: last.id }))
      const logs = await store.logsOf(db, page.items.map((r) => r.id))
      return { items: page.items.map((r) => withClientSecret(view(r, logs.get(r.id) ?? []), r, actorId)), next_cursor: page.next_cursor }
    },

    /** A move by the job's client or worker, checked against the workflow table. */
    async move(actorId: string, jobId: string, input: StatusInput, ifMatch: string | undefined): Promise<JobView> {
      checkMove(input)
      // Suggestions for a decline come from the live map, read before the job is.
      const nearby = input.status === 'DECLINED' ? await nearbyForDecline(actorId, jobId) : null
      // Taking an open request makes the worker the client's: none across a block, either way.
      const blockedWith = async (clientId: string, trx?: Transaction<Database>) => (await deps.messages.contextOf(clientId, actorId, trx)).blockerId !== null
      const { committed, plan } = await changeJob(
        async () => {
          const job = await store.findWithParties(jobId)
          // A worker alerted to an open request may take it: read as the job's worker would be.
          const alerted = job?.open_request && job.client_id !== actorId && job.worker_id !== actorId ? await store.candidate(jobId, actorId) : undefined
          const candidate = alerted && { ...alerted, blocked: await blockedWith(job!.client_id) }
          if (candidate && !candidate.blocked && job?.worker_id === null && input.status === 'ACCEPTED' && job.price_currency !== null) await deps.escrow.checkCurrency(actorId, job.price_currency)
          return { job, candidate }
        },
        ({ job, candidate }, now) => decideMove(job, { actorId, status: input.status, reason: input.reason, nearby, ifMatch, candidate }, now, settings),
        // An accept is confirmed under the hold on the pair, in the transaction that writes it, as an edit is.
        ({ job, candidate }) => (candidate ? async (trx) => (await blockedWith(job!.client_id, trx)) === candidate.blocked : undefined),
      )
      return finish(committed, plan)
    },

    /** The worker quotes the price of a job that has none; the client is told, and approves that price. */
    async quote(actorId: string, jobId: string, input: QuoteInput, ifMatch: string | undefined): Promise<JobView> {
      checkQuote(input)
      const { committed, plan } = await changeJob(
        async () => ({ job: await store.findWithParties(jobId) }),
        ({ job }, now) => decideQuote(job, { actorId, price: input.price, ifMatch }, now, settings),
      )
      return finish(committed, plan)
    },

    /**
     * An account was deleted: its jobs that have not started (REQUESTED, ACCEPTED) are canceled on
     * its behalf, and the other party is told. Jobs under way or being paid stay as they are.
     */
    /**
     * In the caller's transaction: cancels the user's open jobs (REQUESTED or ACCEPTED), each with
     * its system message to the other side; what to push after the commit is answered.
     */
    async cancelOpenJobsIn(trx: Transaction<Database>, userId: string, reason: string): Promise<Committed[]> {
      const open = await trx.selectFrom('jobs').select('id').where((eb) => eb.or([eb('client_id', '=', userId), eb('worker_id', '=', userId)])).where('status', 'in', ['REQUESTED', 'ACCEPTED']).orderBy('id').execute()
      const committed: Committed[] = []
      for (const { id } of open) {
        const job = await store.lock(trx, id)
        const plan = decideCancelForDeletion(job, userId, clock.now(), settings, reason)
        if (job && plan) committed.push(await writeLocked(store, trx, job, plan))
      }
      return committed
    },

    /** Pushes what cancelOpenJobsIn changed, once its transaction committed. */
    pushCommitted(committed: readonly Committed[]): void {
      for (const c of committed) pushes.job(c)
    },

    async cancelOpenJobsOf(userId: string): Promise<void> {
      for (const jobId of await store.openJobsOf(userId)) {
        const committed = await db.transaction().execute(async (trx) => {
          const job = await store.lock(trx, jobId)
          const plan = decideCancelForDeletion(job, userId, clock.now(), settings)
          return job && plan ? writeLocked(store, trx, job, plan) : undefined
        })
        if (committed) pushes.job(committed)
      }
    },

    /** The payment provider confirmed a job's payment (the local provider at once; others by webhook). */
    confirmPayment: payment.confirmPayment,

    /** Pays a PENDING_PAYMENT job's worker now (a payout a won dispute let go); throws until it is paid, for a task to retry. */
    payOrFail: payment.payOrFail,

    /**
     * Does the time-driven work due at `now`: expiries, reminders, auto-approvals, payment retries.
     * Each job is claimed with FOR UPDATE SKIP LOCKED in its own transaction, so any number of
     * processes may sweep at once without doing one job twice. Answers how many jobs it handled.
     */
    runDueWork: (now?: Date): Promise<number> => due.runDueWork(now),

    /** Runs payment requests, and with `intervalMs` above 0 sweeps for due work that often, until stop(). */
    start: (intervalMs: number): Promise<void> => due.start(intervalMs),

    /** Stops the sweep, waiting for a run under way and for pushes in flight. */
    async stop() {
      await due.stop()
      await pushes.settled()
    },
  }
  return service
}

export type JobsService = ReturnType<typeof createJobsService>
