// Deciding a new offer: pure functions of the two users as read, the request and the time (see
// decide.ts for changes to a job).

import { ForbiddenError, InvalidInputError, NotFoundError, UnauthenticatedError } from '../../errors.js'
import type { SenderRow } from '../messaging/index.js'
import { addMs, blocked, followUpsOf, noPictureWarning, platformFee, refuse, scheduleOf, type Decision, type JobsSettings, type Plan } from './decide.js'
import { EXPIRES_DEFAULT, type JobInput } from './schemas.js'
import type { JobRow, StatusLogRow } from './store.js'
import { texts } from './texts.js'
import { CHANGES } from './workflow.js'

export interface OfferCommand {
  id: string
  client: SenderRow
  worker: SenderRow
  input: JobInput & { worker_id: string; title: string }
  /** Meters from the worker to the job's location; null when unknown. */
  distanceM: number | null
}

/** What a new offer writes: the whole row and its first log entry. */
export type OfferPlan = Omit<Plan, 'changes'> & { row: JobRow; entry: StatusLogRow }

const nameOf = (user: SenderRow) => `${user.first_name} ${user.last_name}`.trim()

/** What a new job's kind decides (who, where, when it is due); the rest is as every new job starts. */
type NewJobFields = Pick<JobRow, 'id' | 'client_id' | 'worker_id' | 'open_request' | 'location_lat' | 'location_lon' | 'location_address' | 'category_id' | 'expires_at' | 'remind_at' | 'due_at'>

/** A new job's row, in REQUESTED. A priced one waits for the client's money; the service charges it right after. */
function newJobRow(input: JobInput & { title: string }, now: Date, settings: JobsSettings, fields: NewJobFields): JobRow {
  return {
    ...fields,
    title: input.title.trim(),
    description: input.description ?? '',
    status: 'REQUESTED',
    price_amount: input.price?.amount ?? null,
    price_currency: input.price?.currency ?? null,
    scheduled_at: input.scheduled_at ? new Date(input.scheduled_at) : null,
    completed_at: null,
    payment_status: input.price ? 'requires_payment_method' : null,
    payment_fee: input.price ? platformFee(input.price.amount, settings) : null,
    payment_intent_id: null,
    payment_client_secret: null,
    payment_next_action: null,
    payment_failure_code: null,
    payment_decline_code: null,
    payment_attempts: 0,
    payment_charged: 0,
    payment_refunded: 0,
    payment_transfer_id: null,
    payment_disputed: false,
    payment_dispute_id: null,
    version: 1,
    created_at: now,
    updated_at: now,
  }
}

/** Who a new offer is between: the caller must be a client, the worker a worker, with no block between them. */
export function decideOfferParties(
  context: { users: (SenderRow & { roles: readonly string[] })[]; blockerId: string | null },
  actorId: string,
  workerId: string,
): Decision<{ client: SenderRow; worker: SenderRow }> {
  const users = new Map(context.users.filter((u) => u.deleted_at === null).map((u) => [u.id, u]))
  const client = users.get(actorId)
  const worker = users.get(workerId)
  if (!client) return refuse(new UnauthenticatedError())
  if (!client.roles.includes('CLIENT')) return refuse(new ForbiddenError('Only users with the CLIENT role offer jobs', 'not_a_client'))
  if (workerId === actorId) return refuse(new InvalidInputError('You can\'t offer a job to yourself', [{ field: 'body/worker_id', message: 'is you' }], 'offer_to_self'))
  if (!worker) return refuse(new NotFoundError('No such worker', 'worker_not_found'))
  if (!worker.roles.includes('WORKER')) {
    return refuse(new InvalidInputError('This user is not a worker', [{ field: 'body/worker_id', message: 'does not have the WORKER role' }], 'not_a_worker'))
  }
  // An offer is a message to the worker: none across a block.
  if (context.blockerId !== null) return refuse(blocked())
  return { ok: true, plan: { client, worker } }
}

/** A new offer, in REQUESTED: the worker is told, reminded later, and the offer expires unless answered. */
export function decideOffer(command: OfferCommand, now: Date, settings: JobsSettings): OfferPlan {
  const { id, input, client, worker } = command
  const location = input.location ?? null
  const expiresAt = addMs(now, (input.expires_in ?? EXPIRES_DEFAULT) * 1000)
  const followUps = followUpsOf(CHANGES.offer.then, now, expiresAt, settings)
  const { due_at, remind_at } = scheduleOf(followUps)
  const row = newJobRow(input, now, settings, {
    id,
    client_id: client.id,
    worker_id: worker.id,
    open_request: false,
    location_lat: location?.lat ?? null,
    location_lon: location?.lon ?? null,
    location_address: location?.address ?? null,
    category_id: input.category_id ?? null,
    expires_at: expiresAt,
    remind_at,
    due_at,
  })
  const workerHasPicture = worker.picture_etag !== null
  const parties = { client: { id: client.id, name: nameOf(client) }, worker: { id: worker.id, name: nameOf(worker) } }
  const notes = CHANGES.offer.tells({ job: row, ...parties, workerHasPicture, distanceM: command.distanceM })
  const entry = { job_id: id, status: 'REQUESTED' as const, by: client.id, at: now, reason: null }
  return { at: now, row, entry, notes, followUps, warnings: workerHasPicture ? [] : [noPictureWarning(parties.worker.name)] }
}

export interface OpenRequestCommand {
  id: string
  client: SenderRow & { roles: readonly string[] }
  input: JobInput & { title: string; category_id: string; location: { lat: number; lon: number; address?: string } }
  /** The workers to alert, each with how far the request is from it (its map point or its saved alert's place). */
  audience: { workerId: string; distanceM: number | null }[]
}

/** Who may post an open request: a client. */
export function decideOpenRequestClient(client: (SenderRow & { roles: readonly string[] }) | undefined): Decision<SenderRow & { roles: readonly string[] }> {
  if (!client) return refuse(new UnauthenticatedError())
  if (!client.roles.includes('CLIENT')) return refuse(new ForbiddenError('Only users with the CLIENT role offer jobs', 'not_a_client'))
  return { ok: true, plan: client }
}

/**
 * A new open request, in REQUESTED with no worker: each worker of the audience is alerted (a
 * system message from the client), any of them may take it, and it expires unless one does. No
 * reminder: there is no one worker to remind.
 */
export function decideOpenRequest(command: OpenRequestCommand, now: Date, settings: JobsSettings): OfferPlan {
  const { id, input, client } = command
  const expiresAt = addMs(now, (input.expires_in ?? EXPIRES_DEFAULT) * 1000)
  const followUps = followUpsOf(['expire'], now, expiresAt, settings)
  const { due_at, remind_at } = scheduleOf(followUps)
  const row = newJobRow(input, now, settings, {
    id,
    client_id: client.id,
    worker_id: null,
    open_request: true,
    location_lat: input.location.lat,
    location_lon: input.location.lon,
    location_address: input.location.address ?? null,
    category_id: input.category_id,
    expires_at: expiresAt,
    remind_at,
    due_at,
  })
  const clientName = nameOf(client)
  const notes = command.audience.map((a) => ({ from: client.id, to: a.workerId, text: texts.alert(row, clientName, a.distanceM) }))
  const entry = { job_id: id, status: 'REQUESTED' as const, by: client.id, at: now, reason: null }
  return { at: now, row, entry, notes, followUps, warnings: [] }
}
