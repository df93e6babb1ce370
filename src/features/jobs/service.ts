import type { Transaction } from 'kysely'
import { Type } from 'typebox'
import { v7 as uuidv7 } from 'uuid'
import { ConflictError, ForbiddenError, InvalidInputError, NotFoundError, PreconditionFailedError, UnauthenticatedError } from '../../errors.js'
import { decodeCursor, pageOf } from '../../http/cursor.js'
import type { Clock } from '../../platform/clock.js'
import type { DB, Database } from '../../platform/db/index.js'
import type { EventBus } from '../../platform/live/index.js'
import { recordSettlement } from '../../platform/payments/ledger.js'
import type { PaymentOutcome, PaymentProvider } from '../../platform/payments/index.js'
import type { MessageRow, NewMessage, ParticipantRow, SenderRow } from '../messaging/store.js'
import { EXPIRES_DEFAULT, type JobInput, type JobListInput, type JobView, type MoneyInput, type StatusInput } from './schemas.js'
import type { JobChanges, JobRow, JobsStore, JobWithParties, StatusLogRow } from './store.js'
import { texts, type Nearby } from './texts.js'
import { judge, type JobStatus, type Mover } from './workflow.js'

/** Where workers are: the location feature's live map. */
export interface WorkerLocator {
  /** Up to `limit` users with the WORKER role live near the point now, nearest first, as `viewerId` may see them, without `exclude`. */
  nearbyWorkers(point: { lat: number; lon: number }, options: { viewerId: string; exclude: string[]; limit: number }): Promise<Nearby[]>
  /** Meters from the user's live location to the point; null when the user is not on the map. */
  distanceTo(userId: string, point: { lat: number; lon: number }): Promise<number | null>
}

/** The messaging feature, as the workflow uses it: who may write to whom, storing notes, pushing after commit. */
export interface MessageSink {
  /** Both users (deleted ones as tombstones) and which of them blocked the other, if either did, in one read. */
  contextOf(senderId: string, recipientId: string): Promise<{ users: ParticipantRow[]; blockerId: string | null }>
  insert(trx: Transaction<Database>, messages: NewMessage[]): Promise<MessageRow[]>
  /** Pushes stored messages; `senders` at hand spare reading them again. */
  publish(messages: MessageRow[], senders?: SenderRow[]): Promise<void>
}

export interface JobsSettings {
  /** A COMPLETED job the client neither approves nor disputes moves on after this long. */
  autoApproveAfterMs: number
  /** The worker is reminded this long before an offer expires (at most half its life). */
  reminderBeforeMs: number
  /** A payment the provider could not take is tried again after this long. */
  paymentRetryMs: number
}

interface Logger {
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export interface JobsDeps {
  db: DB
  store: JobsStore
  clock: Clock
  events: EventBus
  messages: MessageSink
  payments: PaymentProvider
  /** Absent until the location feature is wired in: then declines suggest no one, offers say no distance. */
  locator?: WorkerLocator
  settings: JobsSettings
  log: Logger
}

/** What a committed change leaves to do: push the job and its messages to the users. */
interface Committed {
  row: JobRow
  log: StatusLogRow[]
  messages: MessageRow[]
  /** The job's two users, the senders of its messages. */
  parties: SenderRow[]
}

type Note = { from: string | null; to: string; text: string }

/** What one piece of due work leaves to do after its commit. */
interface DueDone {
  committed?: Committed
  /** Messages that came with no change to the job (a reminder). */
  messages?: MessageRow[]
  /** A job to ask the payment provider about. */
  pay?: JobRow
}

/** A change decided on a job as read: written only if the job is still at that version. */
interface Plan {
  changes: JobChanges
  /** The log entry of a move; none for an edit. */
  entry?: StatusLogRow
  notes: Note[]
}

const CursorPosition = Type.Object({ id: Type.String({ format: 'uuid' }) })
const CURRENCIES = new Set(Intl.supportedValuesOf('currency'))
const DUE_WORK_BATCH = 500
/** How many times a change is decided again when others changed the job first. */
const CHANGE_ATTEMPTS = 5

const parties = (job: JobRow) => [job.client_id, job.worker_id]
const addMs = (at: Date, ms: number) => new Date(at.getTime() + ms)
const isStale = (job: JobRow, now: Date) => job.status === 'REQUESTED' && job.expires_at.getTime() <= now.getTime()

/** How far ahead a job may be scheduled. */
const MAX_SCHEDULE_AHEAD_MS = 10 * 365 * 24 * 3_600_000

export const etagOf = (version: number) => `"${version}"`

/** Whether an If-Match header names this version (strong comparison; `*` matches any). */
export function ifMatchHolds(header: string | undefined, version: number): boolean {
  if (header === undefined) return true
  const tags = header.split(',').map((t) => t.trim())
  return tags.includes('*') || tags.includes(etagOf(version))
}

function checkMoney(price: MoneyInput | null | undefined, field: string) {
  if (price && !CURRENCIES.has(price.currency)) {
    throw new InvalidInputError(`${price.currency} is not an ISO 4217 currency`, [{ field: `${field}/currency`, message: 'is not an ISO 4217 currency code' }], 'unknown_currency')
  }
}

export function createJobsService(deps: JobsDeps) {
  const { db, store, clock, settings, log } = deps

  const view = (row: JobRow, statusLog: StatusLogRow[], warnings?: JobView['warnings']): JobView => ({
    id: row.id,
    client_id: row.client_id,
    worker_id: row.worker_id,
    title: row.title,
    description: row.description,
    status: row.status,
    price: row.price_amount !== null && row.price_currency !== null ? { amount: row.price_amount, currency: row.price_currency } : null,
    scheduled_at: row.scheduled_at?.toISOString() ?? null,
    location:
      row.location_lat !== null && row.location_lon !== null
        ? { lat: row.location_lat, lon: row.location_lon, ...(row.location_address !== null ? { address: row.location_address } : {}) }
        : null,
    expires_at: row.expires_at.toISOString(),
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    version: row.version,
    status_log: statusLog.map((e) => ({ status: e.status, by: e.by, at: e.at.toISOString(), ...(e.reason !== null ? { reason: e.reason } : {}) })),
    ...(warnings && warnings.length > 0 ? { warnings } : {}),
  })

  const noPictureWarning = (workerName: string) => ({
    code: 'worker_has_no_picture',
    detail: `${workerName} has no profile picture yet, and can't accept the job until they add one; they have been asked to.`,
  })

  /** When to remind the worker of an offer: `reminderBeforeMs` before it expires, at most half its life. */
  const remindAt = (now: Date, expiresAt: Date) => {
    const life = expiresAt.getTime() - now.getTime()
    return new Date(expiresAt.getTime() - Math.min(settings.reminderBeforeMs, life / 2))
  }

  /** Pushes under way, so that stop() lets them finish. */
  const pushing = new Set<Promise<unknown>>()

  /**
   * Pushes what a commit changed, the job to both its users and the messages to theirs, without
   * holding up the answer: all is stored before it is pushed, so a push that fails loses nothing
   * (the inbox and GET /job have it). Answers the job as it is now.
   */
  const publish = (committed: Committed): JobView => {
    const job = view(committed.row, committed.log)
    track(
      Promise.all([
        deps.events.publish({ to: parties(committed.row), type: 'job.updated', data: job }),
        committed.messages.length > 0 ? deps.messages.publish(committed.messages, committed.parties) : undefined,
      ]),
      'could not push a job update',
    )
    return job
  }

  function track(push: Promise<unknown>, failure: string) {
    const tracked: Promise<unknown> = push.catch((error: unknown) => log.warn({ err: error }, failure)).finally(() => pushing.delete(tracked))
    pushing.add(tracked)
  }

  /** The workflow's notes as the system messages of a job. */
  const messagesOf = (jobId: string, notes: Note[], at: Date): NewMessage[] => notes.map((note) => ({ ...note, kind: 'system', jobId, at }))

  /** Notes with no change to the job (a reminder), in the caller's transaction. */
  const say = (trx: Transaction<Database>, jobId: string, notes: Note[], at: Date) => deps.messages.insert(trx, messagesOf(jobId, notes, at))

  /** Writes a plan if the job is still at the version it was read at; undefined when someone changed it first. */
  const commit = async (trx: DB | Transaction<Database>, job: JobWithParties, plan: Plan): Promise<Committed | undefined> => {
    const written = await store.write(trx, {
      id: job.id,
      version: job.version,
      changes: plan.changes,
      entry: plan.entry,
      messages: messagesOf(job.id, plan.notes, plan.changes.updated_at ?? clock.now()),
    })
    return written && { row: written.row, log: plan.entry ? [...job.status_log, plan.entry] : job.status_log, messages: written.messages, parties: [job.client, job.worker] }
  }

  /**
   * The move of a job to `to`: the status, its log entry and the messages to the other party
   * (note 3), which commit together or not at all.
   */
  const planMove = (
    job: JobWithParties,
    to: JobStatus,
    mover: Mover,
    now: Date,
    extra: { reason?: string; price?: MoneyInput; nearby?: Nearby[] | null } = {},
  ): Plan => {
    const byUser = mover === 'client' ? job.client_id : mover === 'worker' ? job.worker_id : null
    const changes: JobChanges = { status: to, updated_at: now, due_at: null, remind_at: null }
    if (to === 'COMPLETED') {
      changes.completed_at = now
      changes.due_at = addMs(now, settings.autoApproveAfterMs)
    }
    if (to === 'PENDING_PAYMENT') {
      // The payment is asked for right after this commits; if that fails, the sweep tries again.
      changes.due_at = addMs(now, settings.paymentRetryMs)
      if (extra.price) Object.assign(changes, { price_amount: extra.price.amount, price_currency: extra.price.currency })
    }
    const entry = { job_id: job.id, status: to, by: byUser, at: now, reason: extra.reason ?? null }
    // The job as the move leaves it, for the texts.
    const row: JobRow = { ...job, ...changes, version: job.version + 1 }

    const client = job.client_id
    const worker = job.worker_id
    let notes: Note[]
    switch (to) {
      case 'ACCEPTED':
        notes = [{ from: worker, to: client, text: texts.accepted(row, job.worker_name) }]
        break
      case 'DECLINED':
        notes = [{ from: worker, to: client, text: texts.declined(row, job.worker_name, extra.reason, extra.nearby ?? null) }]
        break
      case 'CANCELED':
        notes = mover === 'client'
          ? [{ from: client, to: worker, text: texts.canceled(row, job.client_name, extra.reason) }]
          : [{ from: worker, to: client, text: texts.canceled(row, job.worker_name, extra.reason) }]
        break
      case 'EXPIRED':
        notes = [{ from: null, to: client, text: texts.expired(row, job.worker_name) }]
        break
      case 'STARTED':
        notes = [{ from: worker, to: client, text: texts.started(row, job.worker_name) }]
        break
      case 'COMPLETED':
        notes = [{ from: worker, to: client, text: texts.completed(row, job.worker_name, changes.due_at as Date) }]
        break
      case 'PENDING_PAYMENT':
        notes = mover === 'client'
          ? [{ from: client, to: worker, text: texts.approved(row, job.client_name) }]
          : [
              { from: null, to: worker, text: texts.autoApproved(row, false) },
              { from: null, to: client, text: texts.autoApproved(row, true) },
            ]
        break
      case 'PAID':
        notes = [
          { from: null, to: worker, text: texts.paid(row, false) },
          { from: null, to: client, text: texts.paid(row, true) },
        ]
        break
      default:
        notes = []
    }
    return { changes, entry, notes }
  }

  /** A move of a job locked in the caller's transaction (the sweeps, payments). */
  const applyMove = async (trx: Transaction<Database>, job: JobWithParties, to: JobStatus, mover: Mover, now: Date, extra: { reason?: string } = {}): Promise<Committed> => {
    const committed = await commit(trx, job, planMove(job, to, mover, now, extra))
    if (!committed) throw new Error(`job ${job.id} changed while locked`)
    return committed
  }

  const expireLocked = (trx: Transaction<Database>, job: JobWithParties, now: Date) => applyMove(trx, job, 'EXPIRED', 'time', now)

  /** Expires an offer found stale at read time (unless someone got there first). */
  const expireNow = async (jobId: string): Promise<void> => {
    const committed = await db.transaction().execute(async (trx) => {
      const job = await store.lock(trx, jobId)
      const now = clock.now()
      return job && isStale(job, now) ? expireLocked(trx, job, now) : undefined
    })
    if (committed) publish(committed)
  }

  /** The job if the user is one of its two; otherwise as if there were none. */
  const partyOf = (job: JobRow | undefined, userId: string): job is JobRow => job !== undefined && (job.client_id === userId || job.worker_id === userId)

  /** Offers and their edits are messages too: none between users who blocked one another. */
  const blockedError = () => new ForbiddenError('You and this worker have blocked one another: no offers between you', 'blocked')

  const checkScheduledAt = (scheduledAt: string | null | undefined, now: Date) => {
    if (!scheduledAt) return
    const at = Date.parse(scheduledAt)
    // The format check lets through a leap second (":60") and far years no database date holds.
    if (!Number.isFinite(at) || at > now.getTime() + MAX_SCHEDULE_AHEAD_MS) {
      throw new InvalidInputError('scheduled_at must be a real time within 10 years', [{ field: 'body/scheduled_at', message: 'must be a real time within 10 years' }], 'invalid_scheduled_at')
    }
    if (at <= now.getTime()) {
      throw new InvalidInputError('scheduled_at must be in the future', [{ field: 'body/scheduled_at', message: 'must be in the future' }], 'scheduled_in_past')
    }
  }

  /**
   * A user's change to a job: read the job, decide, and write if nobody changed it meanwhile (the
   * version guards the write, so no lock is held while deciding); when someone did, decide again
   * on what they left. Of racing changes one wins, the others are judged on the job it left. An
   * offer found past its expiry is expired (and committed) before the 409.
   */
  const changeJob = async (
    jobId: string,
    actorId: string,
    decide: (job: JobWithParties, now: Date) => Plan,
    mayChange?: (job: JobWithParties) => Promise<void>,
  ): Promise<Committed> => {
    for (let attempt = 1; ; attempt++) {
      const job = await store.findWithParties(jobId)
      if (!partyOf(job, actorId)) throw new NotFoundError('No such job', 'job_not_found')
      await mayChange?.(job)
      const now = clock.now()
      if (isStale(job, now)) {
        const expired = await commit(db, job, planMove(job, 'EXPIRED', 'time', now))
        if (expired) {
          publish(expired)
          throw new ConflictError('The offer has expired', 'job_expired')
        }
      } else {
        const committed = await commit(db, job, decide(job, now))
        if (committed) return committed
      }
      if (attempt === CHANGE_ATTEMPTS) throw new ConflictError('The job kept changing while you changed it; read it again', 'job_busy')
    }
  }

  /** Asks the provider for a PENDING_PAYMENT job's payment; marks it PAID when confirmed. */
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

  /** The provider confirmed a job's payment: record it in the ledger and mark the job PAID, as one. */
  const confirmPayment = async (jobId: string, outcome: { provider: string; reference: string }): Promise<JobView | undefined> => {
    const committed = await db.transaction().execute(async (trx) => {
      const job = await store.lock(trx, jobId)
      // Already PAID (a retried confirmation) or no longer waiting: nothing to do.
      if (!job || !judge(job.status, 'PAID', 'payments').ok || job.price_amount === null || job.price_currency === null) return undefined
      const now = clock.now()
      await recordSettlement(trx, {
        jobId,
        clientId: job.client_id,
        workerId: job.worker_id,
        amount: job.price_amount,
        currency: job.price_currency,
        provider: outcome.provider,
        reference: outcome.reference,
        at: now,
      })
      return applyMove(trx, job, 'PAID', 'payments', now)
    })
    return committed ? publish(committed) : undefined
  }

  /** One piece of due work on a claimed job, in the claiming transaction. */
  const handleDue = async (trx: Transaction<Database>, job: JobWithParties, now: Date): Promise<DueDone> => {
    const t = now.getTime()
    switch (job.status) {
      case 'REQUESTED': {
        if (job.expires_at.getTime() <= t) return { committed: await expireLocked(trx, job, now) }
        if (job.remind_at && job.remind_at.getTime() <= t) {
          await store.setDue(trx, job.id, { remind_at: null, due_at: job.expires_at })
          return { messages: await say(trx, job.id, [{ from: null, to: job.worker_id, text: texts.reminder(job, job.client_name) }], now) }
        }
        await store.setDue(trx, job.id, { due_at: job.remind_at && job.remind_at < job.expires_at ? job.remind_at : job.expires_at })
        return {}
      }
      case 'COMPLETED': {
        const approveAt = job.completed_at ? job.completed_at.getTime() + settings.autoApproveAfterMs : t
        if (approveAt > t) {
          await store.setDue(trx, job.id, { due_at: new Date(approveAt) })
          return {}
        }
        if (job.price_amount === null) {
          // Nothing to pay: the client is asked to approve with the price; nothing more is due.
          await store.setDue(trx, job.id, { due_at: null })
          return { messages: await say(trx, job.id, [{ from: null, to: job.client_id, text: texts.approvalNeedsPrice(job) }], now) }
        }
        const committed = await applyMove(trx, job, 'PENDING_PAYMENT', 'time', now)
        return { committed, pay: committed.row }
      }
      case 'PENDING_PAYMENT':
        // Tried again now; should this attempt fail too, the next comes after paymentRetryMs.
        await store.setDue(trx, job.id, { due_at: addMs(now, settings.paymentRetryMs) })
        return { pay: job }
      default:
        await store.setDue(trx, job.id, { due_at: null })
        return {}
    }
  }

  let timer: NodeJS.Timeout | undefined
  let running: Promise<number> | undefined

  const service = {
    view,
    etagOf,

    /** A new offer from a client to a worker, in REQUESTED; the worker is told. */
    async create(actorId: string, input: JobInput): Promise<JobView> {
      const missing = (['worker_id', 'title'] as const).filter((f) => input[f] === undefined)
      if (missing.length > 0) {
        throw new InvalidInputError(`A new offer needs ${missing.join(' and ')}`, missing.map((f) => ({ field: `body/${f}`, message: 'is required' })))
      }
      const workerId = input.worker_id!
      const now = clock.now()
      checkMoney(input.price, 'body/price')
      checkScheduledAt(input.scheduled_at, now)
      // An offer is a message to the worker: both users and the blocks between them, in one read.
      const context = await deps.messages.contextOf(actorId, workerId)
      const users = new Map(context.users.filter((u) => u.deleted_at === null).map((u) => [u.id, u]))
      const me = users.get(actorId)
      const worker = users.get(workerId)
      if (!me) throw new UnauthenticatedError()
      if (!me.roles.includes('CLIENT')) throw new ForbiddenError('Only users with the CLIENT role offer jobs', 'not_a_client')
      if (workerId === actorId) {
        throw new InvalidInputError('You can\'t offer a job to yourself', [{ field: 'body/worker_id', message: 'is you' }], 'offer_to_self')
      }
      if (!worker) throw new NotFoundError('No such worker', 'worker_not_found')
      if (!worker.roles.includes('WORKER')) {
        throw new InvalidInputError('This user is not a worker', [{ field: 'body/worker_id', message: 'does not have the WORKER role' }], 'not_a_worker')
      }
      if (context.blockerId !== null) throw blockedError()
      const location = input.location ?? null
      const distance = location && deps.locator ? await deps.locator.distanceTo(workerId, location).catch(() => null) : null
      const expiresAt = addMs(now, (input.expires_in ?? EXPIRES_DEFAULT) * 1000)
      const reminder = remindAt(now, expiresAt)
      const clientName = `${me.first_name} ${me.last_name}`.trim()
      const workerName = `${worker.first_name} ${worker.last_name}`.trim()
      const hasPicture = worker.picture_etag !== null

      const id = uuidv7()
      const entry = { job_id: id, status: 'REQUESTED' as const, by: actorId, at: now, reason: null }
      const offer: JobRow = {
        id,
        client_id: actorId,
        worker_id: workerId,
        title: input.title!.trim(),
        description: input.description ?? '',
        status: 'REQUESTED',
        price_amount: input.price?.amount ?? null,
        price_currency: input.price?.currency ?? null,
        scheduled_at: input.scheduled_at ? new Date(input.scheduled_at) : null,
        location_lat: location?.lat ?? null,
        location_lon: location?.lon ?? null,
        location_address: location?.address ?? null,
        expires_at: expiresAt,
        remind_at: reminder,
        completed_at: null,
        due_at: reminder,
        version: 1,
        created_at: now,
        updated_at: now,
      }
      const notes: Note[] = [{ from: actorId, to: workerId, text: texts.offer(offer, clientName, distance) }]
      if (!hasPicture) notes.push({ from: null, to: workerId, text: texts.addPicture() })
      const created = await store.create(db, offer, entry, messagesOf(id, notes, now))
      const committed = { row: created.row, log: [entry], messages: created.messages, parties: [me, worker] }
      const job = publish(committed)
      return hasPicture ? job : { ...job, warnings: [noPictureWarning(workerName)] }
    },

    /** The client changes its offer while it is REQUESTED; the worker is told. */
    async edit(actorId: string, input: JobInput & { id: string }, ifMatch: string | undefined): Promise<JobView> {
      const now = clock.now()
      checkMoney(input.price, 'body/price')
      checkScheduledAt(input.scheduled_at, now)
      let workerName = ''
      let workerHasPicture = true
      const committed = await changeJob(
        input.id,
        actorId,
        (job, now) => {
          if (!ifMatchHolds(ifMatch, job.version)) throw new PreconditionFailedError('The job has changed since you read it; read it again', 'version_mismatch')
          if (job.status !== 'REQUESTED') throw new ConflictError(`An offer can be changed only while REQUESTED; it is ${job.status}`, 'job_not_editable')
          if (input.worker_id !== undefined && input.worker_id !== job.worker_id) {
            throw new InvalidInputError('The worker of an offer can\'t change: cancel it and make a new offer', [{ field: 'body/worker_id', message: 'can\'t change' }], 'worker_fixed')
          }
          workerName = job.worker_name
          workerHasPicture = job.worker_has_picture
          const changes: JobChanges = { updated_at: now }
          if (input.title !== undefined) changes.title = input.title.trim()
          if (input.description !== undefined) changes.description = input.description
          if (input.price !== undefined) Object.assign(changes, { price_amount: input.price?.amount ?? null, price_currency: input.price?.currency ?? null })
          if (input.scheduled_at !== undefined) changes.scheduled_at = input.scheduled_at === null ? null : new Date(input.scheduled_at)
          if (input.location !== undefined) {
            Object.assign(changes, { location_lat: input.location?.lat ?? null, location_lon: input.location?.lon ?? null, location_address: input.location?.address ?? null })
          }
          if (input.expires_in !== undefined) {
            changes.expires_at = addMs(now, input.expires_in * 1000)
            changes.remind_at = remindAt(now, changes.expires_at)
            changes.due_at = changes.remind_at
          }
          const row: JobRow = { ...job, ...changes, version: job.version + 1 }
          return { changes, notes: [{ from: actorId, to: job.worker_id, text: texts.edited(row, job.client_name) }] }
        },
        async (job) => {
          if (job.client_id !== actorId) throw new ForbiddenError('Only the client who made the offer may change it', 'not_your_offer')
          // An edit is a message to the worker: none across a block.
          if ((await deps.messages.contextOf(actorId, job.worker_id)).blockerId !== null) throw blockedError()
        },
      )
      const job = publish(committed)
      return workerHasPicture ? job : { ...job, warnings: [noPictureWarning(workerName)] }
    },

    /** One job, to its client and worker; an offer past its expiry is expired first. */
    async get(actorId: string, jobId: string): Promise<JobView> {
      let row = await store.findById(jobId)
      if (!partyOf(row, actorId)) throw new NotFoundError('No such job', 'job_not_found')
      if (isStale(row, clock.now())) {
        await expireNow(jobId)
        row = (await store.findById(jobId))!
      }
      return view(row, (await store.logsOf(db, [jobId])).get(jobId) ?? [])
    },

    /** The caller's jobs, newest first. Offers past their expiry are expired before they are listed. */
    async list(actorId: string, query: JobListInput) {
      const limit = query.limit ?? 20
      const after = decodeCursor(query.cursor, CursorPosition)
      for (const id of await store.staleOffersOf(actorId, clock.now())) await expireNow(id)
      const rows = await store.list({ userId: actorId, role: query.role, status: query.status, limit, beforeId: after?.id })
      const page = pageOf(rows, limit, (last) => ({ id: last.id }))
      const logs = await store.logsOf(db, page.items.map((r) => r.id))
      return { items: page.items.map((r) => view(r, logs.get(r.id) ?? [])), next_cursor: page.next_cursor }
    },

    /** A move by the job's client or worker, checked against the workflow table. */
    async move(actorId: string, jobId: string, input: StatusInput, ifMatch: string | undefined): Promise<JobView> {
      if (input.price !== undefined && input.status !== 'PENDING_PAYMENT') {
        throw new InvalidInputError('A price goes only with PENDING_PAYMENT', [{ field: 'body/price', message: 'only with status PENDING_PAYMENT' }], 'price_not_expected')
      }
      checkMoney(input.price, 'body/price')
      // Suggestions for a decline come from the live map, read before the row is locked.
      let nearby: Nearby[] | null = null
      if (input.status === 'DECLINED' && deps.locator) {
        const peek = await store.findById(jobId)
        if (peek && peek.worker_id === actorId && peek.location_lat !== null && peek.location_lon !== null) {
          nearby = await deps.locator
            .nearbyWorkers({ lat: peek.location_lat, lon: peek.location_lon }, { viewerId: peek.client_id, exclude: [peek.worker_id], limit: 3 })
            .catch((error: unknown) => {
              log.warn({ err: error, job_id: jobId }, 'could not search for workers nearby')
              return null
            })
        }
      }
      const committed = await changeJob(jobId, actorId, (job, now) => {
        if (!ifMatchHolds(ifMatch, job.version)) throw new PreconditionFailedError('The job has changed since you read it; read it again', 'version_mismatch')
        const mover: Mover = job.client_id === actorId ? 'client' : 'worker'
        const verdict = judge(job.status, input.status, mover)
        if (!verdict.ok) {
          if (verdict.why === 'not_yours') throw new ForbiddenError(`Moving a job to ${input.status} is not the ${mover}'s move`, 'not_your_move')
          throw new ConflictError(`A ${job.status} job can't move to ${input.status}`, 'move_not_allowed')
        }
        if (verdict.move.reasonRequired && !input.reason) {
          throw new InvalidInputError(`Say why: moving a ${job.status} job to ${input.status} needs a reason`, [{ field: 'body/reason', message: 'is required for this move' }], 'reason_required')
        }
        if (input.status === 'ACCEPTED' && !job.worker_has_picture) {
          throw new ConflictError('Add a profile picture before accepting a job: clients want to see who they hire', 'worker_has_no_picture')
        }
        if (input.status === 'PENDING_PAYMENT') {
          if (job.price_amount === null && !input.price) {
            throw new ConflictError('The job has no price: give the agreed price with the approval', 'price_required')
          }
          if (job.price_amount !== null && input.price && (input.price.amount !== job.price_amount || input.price.currency !== job.price_currency)) {
            throw new ConflictError('The job\'s price was agreed with the offer and can\'t change now', 'price_already_set')
          }
        }
        const price = input.status === 'PENDING_PAYMENT' && job.price_amount === null ? input.price : undefined
        return planMove(job, input.status, mover, now, { reason: input.reason, price, nearby })
      })
      const job = publish(committed)
      if (committed.row.status === 'PENDING_PAYMENT') return (await requestPayment(committed.row)) ?? job
      return job
    },

    /**
     * An account was deleted: its jobs that have not started (REQUESTED, ACCEPTED) are canceled on
     * its behalf, and the other party is told. Jobs under way or being paid stay as they are.
     */
    async cancelOpenJobsOf(userId: string): Promise<void> {
      for (const jobId of await store.openJobsOf(userId)) {
        const committed = await db.transaction().execute(async (trx) => {
          const job = await store.lock(trx, jobId)
          if (!job || (job.status !== 'REQUESTED' && job.status !== 'ACCEPTED')) return undefined
          const mover: Mover = job.client_id === userId ? 'client' : 'worker'
          return applyMove(trx, job, 'CANCELED', mover, clock.now(), { reason: 'The account was deleted' })
        })
        if (committed) publish(committed)
      }
    },

    /** The payment provider confirmed a job's payment (the local provider at once; others by webhook). */
    confirmPayment,

    /**
     * Does the time-driven work due at `now`: expiries, reminders, auto-approvals, payment retries.
     * Each job is claimed with FOR UPDATE SKIP LOCKED in its own transaction, so any number of
     * processes may sweep at once without doing one job twice. Answers how many jobs it handled.
     */
    async runDueWork(now: Date = clock.now()): Promise<number> {
      let handled = 0
      while (handled < DUE_WORK_BATCH) {
        let claimed: string | undefined
        let result: DueDone | undefined
        try {
          result = await db.transaction().execute(async (trx) => {
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
        if (!result) break
        handled++
        if (result.committed) publish(result.committed)
        if (result.messages) track(deps.messages.publish(result.messages), 'could not push messages')
        if (result.pay) await requestPayment(result.pay)
      }
      return handled
    },

    /** Sweeps for due work every `intervalMs` until stop(). */
    start(intervalMs: number) {
      if (timer || intervalMs <= 0) return
      timer = setInterval(() => {
        if (running) return
        running = service.runDueWork().catch((error: unknown) => {
          log.error({ err: error }, 'the due-work sweep failed')
          return 0
        })
        void running.finally(() => {
          running = undefined
        })
      }, intervalMs)
      timer.unref()
    },

    /** Stops the sweep, waiting for a run under way and for pushes in flight. */
    async stop() {
      if (timer) clearInterval(timer)
      timer = undefined
      await running
      await Promise.all(pushing)
    },
  }
  return service
}

export type JobsService = ReturnType<typeof createJobsService>
