// What the jobs feature needs from the rest of the app, given to createJobsService.

import type { Transaction } from 'kysely'
import type { Clock } from '../../platform/clock.js'
import type { DB, Database } from '../../platform/db/index.js'
import type { EventBus } from '../../platform/live/index.js'
import type { PaymentProvider } from '../../platform/payments/index.js'
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
  payments: PaymentProvider
  /** Background tasks: the sweep of due work, payment requests. */
  queue: Queue
  /** Absent until the location feature is wired in: then declines suggest no one, offers say no distance. */
  locator?: WorkerLocator
  settings: JobsSettings
  log: Logger
  /** Hears each committed change after it is pushed, with the status the job had before (live tracking ends with the job). */
  onChanged?: (row: JobRow, before: JobStatus | undefined) => Promise<void>
  /** Checks a category a job is to take: it exists (400) and is offered (409). Absent: any id is refused. */
  checkCategory?: (id: string, field: string) => Promise<void>
}
