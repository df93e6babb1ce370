// Deciding a change to a job: pure functions of the job as read (with its users), the command and
// the time. Each answers a refusal (the error the caller gets) or a plan: the row's changes, the
// status-log entry, the notes to each side and the follow-ups the change asks for. What each move
// does comes from the workflow table (workflow.ts); storing a plan is the service's business.

import { ConflictError, ForbiddenError, InvalidInputError, NotFoundError, PreconditionFailedError, PreconditionRequiredError, UnauthenticatedError } from '../../errors.js'
import type { JobInput, JobView, MoneyInput } from './schemas.js'
import type { JobChanges, JobRow, JobWithParties, StatusLogRow } from './store.js'
import { texts, type Nearby } from './texts.js'
import { ifMatchHolds, namesVersion, view } from './view.js'
import type { SenderRow } from '../messaging/index.js'
import { CHANGES, judge, moveOf, NOBODY, RELEASES_PAYMENT, WORKFLOW, type FollowUpKind, type JobStatus, type Mover, type Note, type Party } from './workflow.js'

export interface JobsSettings {
  /** A COMPLETED job the client neither approves nor disputes moves on after this long. */
  autoApproveAfterMs: number
  /** The worker is reminded this long before an offer expires (at most half its life). */
  reminderBeforeMs: number
  /** A payment the provider could not take is tried again after this long. */
  paymentRetryMs: number
  /** The platform's fee, in basis points of the price (PLATFORM_FEE_BPS). */
  feeBps: number
}

/** The platform's fee on a price, rounded down. */
export const platformFee = (amount: number, settings: Pick<JobsSettings, 'feeBps'>) => Math.floor((amount * settings.feeBps) / 10_000)

/** A follow-up with its time: when to remind, expire or approve; for a payment, when to ask again should asking now fail. */
export type FollowUp = { do: FollowUpKind; at: Date }

export type Refusal = NotFoundError | ForbiddenError | ConflictError | InvalidInputError | PreconditionFailedError | PreconditionRequiredError | UnauthenticatedError

export type Decision<P> =
  /** `refusalAfter`: the caller is refused once the plan is written (an offer found past its expiry is expired instead). */
  | { ok: true; plan: P; refusalAfter?: Refusal }
  | { ok: false; refusal: Refusal }

/** A decided change, written only if the job is still at the version it was decided on. */
export interface Plan {
  /** When the change happens: its log entry's and its messages' time. */
  at: Date
  changes: JobChanges
  /** The log entry of a move; none for an edit. */
  entry?: StatusLogRow
  notes: Note[]
  followUps: FollowUp[]
  /** What the client should know with the answer. */
  warnings?: NonNullable<JobView['warnings']>
}
export type MovePlan = Plan & { entry: StatusLogRow }

/** Due work that is no move: bookkeeping (no new version), maybe notes (a reminder) or a payment to ask for again. */
export interface Touch {
  at: Date
  changes: Pick<JobChanges, 'due_at' | 'remind_at'>
  notes: Note[]
  followUps: FollowUp[]
}
export type DueDecision = { kind: 'move'; plan: MovePlan } | { kind: 'touch'; touch: Touch }

export interface MoveCommand {
  actorId: string
  status: JobStatus
  reason?: string
  /** Workers near the job now, for a decline's suggestions; null when unknown. */
  nearby?: Nearby[] | null
  /** The If-Match header the move came with: the version of the job the mover read. */
  ifMatch?: string
  /**
   * The mover as a worker alerted to the job, an open request: the user, whether its payouts are
   * enabled and whether a block stands between it and the client (either way). Absent when the
   * mover was not alerted to it.
   */
  candidate?: { worker: SenderRow; payoutsEnabled: boolean; blocked?: boolean }
}

export interface QuoteCommand {
  actorId: string
  price: MoneyInput
  ifMatch?: string
}

export interface EditCommand {
  actorId: string
  input: JobInput
  ifMatch?: string
}

export const addMs = (at: Date, ms: number) => new Date(at.getTime() + ms)
export const refuse = (refusal: Refusal) => ({ ok: false, refusal }) as const
const partiesOf = (job: JobWithParties): { client: Party; worker: Party } => ({
  client: { id: job.client_id, name: job.client_name },
  worker: { id: job.worker_id ?? NOBODY, name: job.worker_name },
})
/** Notes to somebody: those to the worker of an open request nobody took are dropped. */
const toSomebody = (notes: Note[]): Note[] => notes.filter((n) => n.to !== NOBODY)
export const noPictureWarning = (workerName: string) => ({ code: 'worker_has_no_picture', detail: texts.noPictureWarning(workerName) })

export const isStale = (job: JobRow, now: Date) => job.status === 'REQUESTED' && job.expires_at.getTime() <= now.getTime()

/** When to remind the worker of an offer: `reminderBeforeMs` before it expires, at most half its life. */
export const remindAt = (now: Date, expiresAt: Date, reminderBeforeMs: number) =>
  new Date(expiresAt.getTime() - Math.min(reminderBeforeMs, (expiresAt.getTime() - now.getTime()) / 2))

/** The follow-ups a change asks for, dated from the change's time and the offer's expiry. */
export function followUpsOf(kinds: readonly FollowUpKind[], now: Date, expiresAt: Date, settings: JobsSettings): FollowUp[] {
  const at: Record<FollowUpKind, () => Date> = {
    remind: () => remindAt(now, expiresAt, settings.reminderBeforeMs),
    expire: () => expiresAt,
    auto_approve: () => addMs(now, settings.autoApproveAfterMs),
    request_payment: () => addMs(now, settings.paymentRetryMs),
    release_payment: () => now,
  }
  return kinds.map((kind) => ({ do: kind, at: at[kind]() }))
}

/** The row's bookkeeping for follow-ups: the sweep comes by at the first, and the reminder is marked. */
export function scheduleOf(followUps: FollowUp[]): { due_at: Date | null; remind_at: Date | null } {
  const first = followUps.reduce<Date | null>((min, f) => (min === null || f.at < min ? f.at : min), null)
  return { due_at: first, remind_at: followUps.find((f) => f.do === 'remind')?.at ?? null }
}

/** Whether the money held for a job goes back to the client when it is in (or moves to) `status`. */
export const releasesPayment = (job: Pick<JobRow, 'payment_status'>, status: JobStatus) => RELEASES_PAYMENT.includes(status) && job.payment_status === 'held'

/** Whether a priced job's money is held, so that the worker may commit to it or it may be approved. */
export const paymentHeld = (job: Pick<JobRow, 'price_amount' | 'payment_status' | 'payment_disputed'>) =>
  job.price_amount === null || ((job.payment_status === 'held' || job.payment_status === 'partially_refunded') && !job.payment_disputed)

/** A move of the job to `to` by `mover`, as the workflow table says it goes; no checks. */
export function planMove(
  job: JobWithParties,
  to: JobStatus,
  mover: Mover,
  now: Date,
  settings: JobsSettings,
  extra: { reason?: string; nearby?: Nearby[] | null } = {},
): MovePlan {
  const move = moveOf(job.status, to)
  if (!move) throw new Error(`The workflow has no move from ${job.status} to ${to}`)
  const followUps = followUpsOf([...(move.then ?? []), ...(releasesPayment(job, to) ? ['release_payment' as const] : [])], now, job.expires_at, settings)
  const changes: JobChanges = { status: to, updated_at: now, ...scheduleOf(followUps) }
  if (move.stamps) changes[move.stamps] = now
  const by = mover === 'client' ? job.client_id : mover === 'worker' ? job.worker_id : null
  const notes = toSomebody(move.tells({
    job: { ...job, ...changes },
    mover,
    ...partiesOf(job),
    reason: extra.reason,
    nearby: extra.nearby ?? null,
    autoApproveAt: followUps.find((f) => f.do === 'auto_approve')?.at ?? null,
  }))
  return { at: now, changes, entry: { job_id: job.id, status: to, by, at: now, reason: extra.reason ?? null }, notes, followUps }
}

const partyOf = (job: JobWithParties | undefined, userId: string): job is JobWithParties =>
  job !== undefined && (job.client_id === userId || job.worker_id === userId)

/** An offer found past its expiry is expired, and the change asked for refused after. */
const expiredFirst = (job: JobWithParties, now: Date, settings: JobsSettings): Decision<MovePlan> => ({
  ok: true,
  plan: planMove(job, 'EXPIRED', 'time', now, settings),
  refusalAfter: new ConflictError('The offer has expired', 'job_expired'),
})

/** The If-Match version is not the job's: the problem carries the job as it is now (`job`), so the caller sees what changed. */
const versionMismatch = (job: JobWithParties) =>
  new PreconditionFailedError('The job has changed since you read it: `job` is the job as it is now', 'version_mismatch', { job: view(job, job.status_log) })
const versionRequired = (to: JobStatus) =>
  new PreconditionRequiredError(`Moving a job to ${to} binds you to its terms as you read them: name that version, with the job's ETag in an If-Match header`, 'version_required')
export const blocked = () => new ForbiddenError('You and this worker have blocked one another: no offers between you', 'blocked')
const blockedClient = () => new ForbiddenError('You and this client have blocked one another: you can\'t take their open request', 'blocked')

/** What the mover may do next from this status, as the end of a sentence. */
const nextMoves = (from: JobStatus, mover: Mover) => {
  const next = WORKFLOW.filter((m) => m.from === from && m.by.includes(mover)).map((m) => m.to)
  return next.length > 0 ? ` (the ${mover} may move it to ${next.join(' or ')})` : ''
}

/**
 * A worker alerted to an open request moves it: once another worker took it, 409 `job_taken`;
 * while nobody has, the worker may only accept it (403 `blocked` across a block with the client),
 * and then decides as the job's worker would.
 * Answers the job as that worker would have it, or a refusal; undefined when this is no such case.
 */
function asCandidate(job: JobWithParties | undefined, command: MoveCommand): JobWithParties | { refusal: Refusal } | undefined {
  if (!job?.open_request || !command.candidate || job.client_id === command.actorId || job.worker_id === command.actorId) return undefined
  if (job.worker_id !== null) return { refusal: new ConflictError('Another worker took this open request first', 'job_taken') }
  if (job.status !== 'REQUESTED') return { refusal: new ConflictError(`The open request is ${job.status}: nobody can take it now`, 'move_not_allowed') }
  if (command.status !== 'ACCEPTED') {
    return { refusal: new ForbiddenError('An open request is taken by accepting it (status ACCEPTED); to pass on it, leave it: it leaves your list once taken or expired', 'not_your_move') }
  }
  // Taking it makes the worker the client's, and tells the client: none across a block.
  if (command.candidate.blocked) return { refusal: blockedClient() }
  const { worker, payoutsEnabled } = command.candidate
  return {
    ...job,
    worker_id: command.actorId,
    worker,
    worker_name: `${worker.first_name} ${worker.last_name}`.trim(),
    worker_has_picture: worker.picture_etag !== null,
    worker_payouts_enabled: payoutsEnabled,
  }
}

/** A move by the job's client or worker (or a worker alerted to an open request, taking it), checked against the workflow table. */
export function decideMove(read: JobWithParties | undefined, command: MoveCommand, now: Date, settings: JobsSettings): Decision<MovePlan> {
  const { status: to } = command
  // Who was too late hears so before anything else: their If-Match is stale by then too.
  const candidate = asCandidate(read, command)
  if (candidate && 'refusal' in candidate) return refuse(candidate.refusal)
  if (candidate && isStale(candidate, now)) return expiredFirst(read!, now, settings)
  const job = candidate ?? read
  if (!partyOf(job, command.actorId)) return refuse(new NotFoundError('No such job', 'job_not_found'))
  if (isStale(job, now)) return expiredFirst(job, now, settings)
  if (!ifMatchHolds(command.ifMatch, job.version)) return refuse(versionMismatch(job))
  const mover: Mover = job.client_id === command.actorId ? 'client' : 'worker'
  const verdict = judge(job.status, to, mover)
  if (!verdict.ok) {
    return refuse(verdict.why === 'not_yours'
      ? new ForbiddenError(`Moving a job to ${to} is not the ${mover}'s move`, 'not_your_move')
      : new ConflictError(`The job is ${job.status}, and can't move to ${to} from there${nextMoves(job.status, mover)}`, 'move_not_allowed'))
  }
  const { move } = verdict
  if (move.reasonRequired && !command.reason) {
    return refuse(new InvalidInputError(`Say why: moving the job from ${job.status} to ${to} needs a reason`, [{ field: 'body/reason', message: 'is required for this move' }], 'reason_required'))
  }
  if (move.bindsTerms) {
    if (!namesVersion(command.ifMatch)) return refuse(versionRequired(to))
    if (!ifMatchHolds(command.ifMatch, job.version, true)) return refuse(versionMismatch(job))
  }
  if (move.pictureRequired && !job.worker_has_picture) {
    return refuse(new ConflictError('Add a profile picture before accepting a job: clients want to see who they hire', 'worker_has_no_picture'))
  }
  // The price is the offer's or the worker's quote; the client approves it, and never names one.
  if (move.priceRequired && job.price_amount === null) {
    return refuse(new ConflictError('The job has no price yet: its worker quotes one (POST /job/{id}/quote), and then it can be approved', 'quote_required'))
  }
  if (move.paymentHeld && job.price_amount !== null && !paymentHeld(job)) {
    return refuse(new ConflictError(
      `The job's price is not held (its payment is ${job.payment_status ?? 'not started'}): the client pays first, with POST /job/{id}/payment`,
      'payment_not_held',
    ))
  }
  if (move.payoutsRequired && job.price_amount !== null && !job.worker_payouts_enabled) {
    return refuse(new ConflictError('You can\'t be paid yet: set up payouts first (POST /payments/account, then follow its onboarding link)', 'payouts_not_enabled'))
  }
  const plan = planMove(job, to, mover, now, settings, { reason: command.reason, nearby: command.nearby })
  // Taking an open request: the write sets the worker only where none is set yet.
  if (candidate) plan.changes.worker_id = command.actorId
  return { ok: true, plan }
}

/** What an edit changes of an offer, in words, in the order of its fields. */
function changedTerms(job: JobRow, changes: JobChanges): string[] {
  const value = (v: unknown) => (v instanceof Date ? v.getTime() : (v ?? null))
  const differs = (...columns: (keyof JobChanges & keyof JobRow)[]) => columns.some((c) => c in changes && value(changes[c]) !== value(job[c]))
  const terms: [string, boolean][] = [
    ['the title', differs('title')],
    ['the description', differs('description')],
    ['the price', differs('price_amount', 'price_currency')],
    ['the date', differs('scheduled_at')],
    ['the place', differs('location_lat', 'location_lon', 'location_address')],
    ['the expiry', differs('expires_at')],
  ]
  return terms.filter(([, changed]) => changed).map(([term]) => term)
}

/** The client changes its offer while it is REQUESTED; `blocked`: a block stands between the two. */
export function decideEdit(read: { job: JobWithParties | undefined; blocked: boolean }, command: EditCommand, now: Date, settings: JobsSettings): Decision<Plan> {
  const { job } = read
  const { input } = command
  if (!partyOf(job, command.actorId)) return refuse(new NotFoundError('No such job', 'job_not_found'))
  if (job.client_id !== command.actorId) return refuse(new ForbiddenError('Only the client who made the offer may change it', 'not_your_offer'))
  // An edit is a message to the worker: none across a block.
  if (read.blocked) return refuse(blocked())
  if (isStale(job, now)) return expiredFirst(job, now, settings)
  if (!ifMatchHolds(command.ifMatch, job.version)) return refuse(versionMismatch(job))
  if (job.status !== 'REQUESTED') return refuse(new ConflictError(`An offer can be changed only while REQUESTED; it is ${job.status}`, 'job_not_editable'))
  if (input.worker_id !== undefined && input.worker_id !== job.worker_id) {
    return refuse(new InvalidInputError('The worker of an offer can\'t change: cancel it and make a new offer', [{ field: 'body/worker_id', message: 'can\'t change' }], 'worker_fixed'))
  }
  const changes: JobChanges = { updated_at: now }
  if (input.title !== undefined) changes.title = input.title.trim()
  if (input.description !== undefined) changes.description = input.description
  if (input.price !== undefined) {
    const same = input.price?.amount === job.price_amount && input.price?.currency === job.price_currency
    // Money taken (or being taken) for the price fixes it: a new price is a new offer.
    if (!same && (job.payment_charged > 0 || job.payment_status === 'requires_action')) {
      return refuse(new ConflictError('The offer\'s price is held from your card and can\'t change: cancel the offer (the money is released) and make a new one', 'payment_price_locked'))
    }
    Object.assign(changes, { price_amount: input.price?.amount ?? null, price_currency: input.price?.currency ?? null })
    if (!same) Object.assign(changes, { payment_status: input.price ? 'requires_payment_method' : null, payment_fee: input.price ? platformFee(input.price.amount, settings) : null, payment_failure_code: null, payment_decline_code: null })
  }
  if (input.category_id !== undefined) changes.category_id = input.category_id
  if (input.scheduled_at !== undefined) changes.scheduled_at = input.scheduled_at === null ? null : new Date(input.scheduled_at)
  if (input.location !== undefined) {
    Object.assign(changes, { location_lat: input.location?.lat ?? null, location_lon: input.location?.lon ?? null, location_address: input.location?.address ?? null })
  }
  let followUps: FollowUp[] = []
  if (input.expires_in !== undefined) {
    changes.expires_at = addMs(now, input.expires_in * 1000)
    followUps = followUpsOf(CHANGES.edit.thenWithNewExpiry, now, changes.expires_at, settings)
    Object.assign(changes, scheduleOf(followUps))
  }
  const notes = toSomebody(CHANGES.edit.tells({ job: { ...job, ...changes }, ...partiesOf(job), changed: changedTerms(job, changes) }))
  const warnings = job.worker_has_picture || job.worker === null ? [] : [noPictureWarning(job.worker_name)]
  return { ok: true, plan: { at: now, changes, notes, followUps, warnings } }
}

/**
 * The worker quotes the price of a job that has none, from the offer until the client approves
 * (CHANGES.quote): the client is told, and approves that price. On a COMPLETED job the approval
 * period starts again from the quote.
 */
export function decideQuote(job: JobWithParties | undefined, command: QuoteCommand, now: Date, settings: JobsSettings): Decision<Plan> {
  if (!partyOf(job, command.actorId)) return refuse(new NotFoundError('No such job', 'job_not_found'))
  if (job.worker_id !== command.actorId) return refuse(new ForbiddenError('Only the job\'s worker quotes its price; a client names it with the offer', 'not_your_quote'))
  if (isStale(job, now)) return expiredFirst(job, now, settings)
  if (!ifMatchHolds(command.ifMatch, job.version)) return refuse(versionMismatch(job))
  const status = CHANGES.quote.while.find((s) => s === job.status)
  if (!status) return refuse(new ConflictError(`The job is ${job.status}: it takes no quote, its price is settled from approval on`, 'job_not_quotable'))
  if (job.price_amount !== null) {
    return refuse(new ConflictError('The job has a price already (the offer\'s, or your earlier quote), and it does not change', 'price_already_set'))
  }
  // The client pays the quote (POST /job/{id}/payment) before approving it.
  const changes: JobChanges = { updated_at: now, price_amount: command.price.amount, price_currency: command.price.currency, payment_status: 'requires_payment_method', payment_fee: platformFee(command.price.amount, settings) }
  const followUps = status === 'COMPLETED' ? followUpsOf(CHANGES.quote.thenWhenCompleted, now, job.expires_at, settings) : []
  if (status === 'COMPLETED') Object.assign(changes, scheduleOf(followUps))
  const autoApproveAt = followUps.find((f) => f.do === 'auto_approve')?.at ?? null
  const notes = CHANGES.quote.tells({ job: { ...job, ...changes }, ...partiesOf(job), status, autoApproveAt })
  return { ok: true, plan: { at: now, changes, notes, followUps } }
}

/** What time does to a job that is due: expire it, remind its worker, approve it, ask for its payment again, or nothing. */
export function decideDue(job: JobWithParties, now: Date, settings: JobsSettings): DueDecision {
  const touch = (followUps: FollowUp[], notes: Note[] = []): DueDecision => ({ kind: 'touch', touch: { at: now, changes: scheduleOf(followUps), notes, followUps } })
  const parties = partiesOf(job)
  switch (job.status) {
    case 'REQUESTED': {
      if (isStale(job, now)) return { kind: 'move', plan: planMove(job, 'EXPIRED', 'time', now, settings) }
      if (job.remind_at && job.remind_at <= now) {
        return touch(followUpsOf(CHANGES.reminder.then, now, job.expires_at, settings), toSomebody(CHANGES.reminder.tells({ job, ...parties })))
      }
      // Not due yet (the sweep came early): come back at the reminder, or at the expiry.
      const expire: FollowUp = { do: 'expire', at: job.expires_at }
      return touch(job.remind_at ? [{ do: 'remind', at: job.remind_at }, expire] : [expire])
    }
    case 'COMPLETED': {
      // The approval period counts from the completion, or from a quote given after it: a
      // COMPLETED job changes only by a quote (which stamps updated_at).
      const since = job.completed_at && job.completed_at > job.updated_at ? job.completed_at : job.updated_at
      const approveAt = addMs(since, settings.autoApproveAfterMs)
      if (approveAt > now) return touch([{ do: 'auto_approve', at: approveAt }])
      // Nothing to pay: the worker is asked for a quote, which asks for the approval again.
      if (job.price_amount === null) return touch(followUpsOf(CHANGES.quoteAsked.then, now, job.expires_at, settings), CHANGES.quoteAsked.tells({ job, ...parties }))
      // Nothing held to pay out (a quote not paid for yet, a dispute): the client's payment brings the approval back.
      if (!paymentHeld(job)) return touch([])
      return { kind: 'move', plan: planMove(job, 'PENDING_PAYMENT', 'time', now, settings) }
    }
    case 'PENDING_PAYMENT':
      // Handed to a payment task now, which asks again with backoff a capped number of times
      // (then an admin sees it failed): nothing more is due on the job itself.
      return { kind: 'touch', touch: { at: now, changes: { due_at: null, remind_at: null }, notes: [], followUps: [{ do: 'request_payment', at: now }] } }
    default:
      // Money still held for a job that ended without work goes back to the client.
      return touch(releasesPayment(job, job.status) ? [{ do: 'release_payment', at: now }] : [])
  }
}

/** An offer found past its expiry when read: its expiry, or nothing when it is not stale (anymore). */
export const decideExpiry = (job: JobWithParties | undefined, now: Date, settings: JobsSettings): MovePlan | undefined =>
  job && isStale(job, now) ? planMove(job, 'EXPIRED', 'time', now, settings) : undefined

/** The provider confirmed the payment: the move to PAID, or nothing when the job no longer waits for it (already PAID). */
export const decidePaid = (job: JobWithParties | undefined, now: Date, settings: JobsSettings): MovePlan | undefined =>
  job && judge(job.status, 'PAID', 'payments').ok && job.price_amount !== null && job.price_currency !== null
    ? planMove(job, 'PAID', 'payments', now, settings)
    : undefined

/** A user's account was deleted: a job of theirs that has not started is canceled on their behalf. */
export function decideCancelForDeletion(job: JobWithParties | undefined, userId: string, now: Date, settings: JobsSettings, reason = 'The account was deleted'): MovePlan | undefined {
  if (!job || (job.status !== 'REQUESTED' && job.status !== 'ACCEPTED')) return undefined
  const mover: Mover = job.client_id === userId ? 'client' : 'worker'
  return planMove(job, 'CANCELED', mover, now, settings, { reason })
}
