// What the jobs feature needs from the rest of the app, given to createJobsService.

import type { Transaction } from 'kysely'
import type { Clock } from '../../platform/clock.js'
import type { DB, Database } from '../../platform/db/index.js'
import type { EventBus } from '../../platform/live/index.js'
import type { Queue } from '../../platform/queue/index.js'
import type { MessageRow, NewMessage, ParticipantRow, SenderRow } from '../messaging/index.js'
import type { JobsSettings } from './decide.js'
import type { JobRow, JobsStore } from './store.js'
import type { JobStatus } from './workflow.js'
import type { Nearby } from './texts.js'

export type { JobsSettings } from './decide.js'

/** Where workers are: the location feature's live map. */
export interface WorkerLocator {
  /** Up to `limit` users with the WORKER role live near the point now, nearest first, as `viewerId` may see them, without `exclude`. */
  nearbyWorkers(point: { lat: number; lon: number }, options: { viewerId: string; exclude: string[]; limit: number }): Promise<Nearby[]>
  /** Meters from the user's live location to the point; null when the user is not on the map. */
  distanceTo(userId: string, point: { lat: number; lon: number }): Promise<number | null>
}

/** The messaging feature, as the workflow uses it: who may write to whom, storing notes, pushing after commit. */
export interface MessageSink {
  /**
   * Both users (deleted ones as tombstones) and which of them blocked the other, if either did, in
   * one read. With `trx`, read in it after holding the pair of users, so that no block between
   * them can commit until it ends: what stores a message to the worker reads it so.
   */
  contextOf(senderId: string, recipientId: string, trx?: Transaction<Database>): Promise<{ users: ParticipantRow[]; blockerId: string | null }>
  insert(trx: Transaction<Database>, messages: NewMessage[]): Promise<MessageRow[]>
  /** Pushes stored messages; `senders` at hand spare reading them again. */
  publish(messages: MessageRow[], senders?: SenderRow[]): Promise<void>
}

/**
 * The escrow (the payments feature), as jobs use it: the client's money is charged with a
 * priced offer (or for a quote), released when the job ends without work, and transferred to the
 * worker when it is approved.
 */
export interface JobEscrow {
  /** 400 when the worker's payout account does not take the currency. */
  checkCurrency(workerId: string, currency: string): Promise<void>
  /** Charges the job's price; 402 on a decline (the job stays, waiting for another payment method). */
  charge(jobId: string, paymentMethod: string): Promise<void>
  /** Gives the held money back in full (declined, canceled before the work, expired). */
  release(jobId: string): Promise<void>
  /** Pays the worker (the same transfer whatever the retries); undefined while it can't. */
  transfer(row: JobRow): Promise<{ transferId: string } | undefined>
  /** Records the transfer in the transaction that marks the job PAID. */
  recordTransfer(trx: Transaction<Database>, jobId: string, transferId: string): Promise<void>
  /** The payout waits on a dispute. */
  payoutHeld(jobId: string): Promise<boolean>
}

export interface Logger {
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
}

export interface JobsDeps {
  db: DB
  store: JobsStore
  clock: Clock
  events: EventBus
  messages: MessageSink
  escrow: JobEscrow
  /** Background tasks: the sweep of due work, payment requests. */
  queue: Queue
  /** Absent until the location feature is wired in: then declines suggest no one, offers say no distance. */
  locator?: WorkerLocator
  settings: JobsSettings
  log: Logger
  /** Hears each committed change after it is pushed, with the status the job had before (live tracking ends with the job). */
  onChanged?: (row: JobRow, before: JobStatus | undefined) => Promise<void>
  /**
   * The workers an open request alerts, each with how far the request is from it: those live on
   * the map within their service radius of the place and those with a saved alert covering it, in
   * the category, not blocked by or blocking the client (the alerts feature's). Absent: nobody.
   */
  audience?: (request: { clientId: string; lat: number; lon: number; categoryId: string }) => Promise<{ workerId: string; distanceM: number | null }[]>
  /** Checks a category a job is to take: it exists (400) and is offered (409). Absent: any id is refused. */
  checkCategory?: (id: string, field: string) => Promise<void>
}
