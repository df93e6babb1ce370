import type { Transaction } from 'kysely'
import type { DB, Database } from '../../platform/db/index.js'
import type { MessageRow, NewMessage, SenderRow } from '../messaging/index.js'
import type { Plan } from './decide.js'
import type { JobRow, JobsStore, JobWithParties, StatusLogRow } from './store.js'
import type { Note } from './workflow.js'

/** What a committed change leaves to do: push the job and its messages to the users. */
export interface Committed {
  row: JobRow
  log: StatusLogRow[]
  messages: MessageRow[]
  /** The job's two users, the senders of its messages. */
  parties: SenderRow[]
}

/** The notes of a change as the system messages of its job. */
export const messagesOf = (jobId: string, notes: Note[], at: Date): NewMessage[] => notes.map((note) => ({ ...note, kind: 'system', jobId, at }))

/** Writes a plan if the job is still at the version it was decided on; undefined when someone changed it first. */
export async function writePlan(store: JobsStore, trx: DB | Transaction<Database>, job: JobWithParties, plan: Plan): Promise<Committed | undefined> {
  const written = await store.write(trx, { id: job.id, version: job.version, changes: plan.changes, entry: plan.entry, messages: messagesOf(job.id, plan.notes, plan.at) })
  return written && { row: written.row, log: plan.entry ? [...job.status_log, plan.entry] : job.status_log, messages: written.messages, parties: job.worker ? [job.client, job.worker] : [job.client] }
}

/** Writes a plan on a job locked in the caller's transaction (the sweeps, payments): nobody can have changed it. */
export async function writeLocked(store: JobsStore, trx: Transaction<Database>, job: JobWithParties, plan: Plan): Promise<Committed> {
  const committed = await writePlan(store, trx, job, plan)
  if (!committed) throw new Error(`job ${job.id} changed while locked`)
  return committed
}
