import type { EventBus } from '../../platform/live/index.js'
import type { MessageRow } from '../messaging/index.js'
import type { Committed } from './commit.js'
import type { JobsDeps } from './deps.js'
import type { JobView } from './schemas.js'
import { view } from './view.js'

/**
 * Pushes what commits changed, without holding up the answers: all is stored before it is pushed,
 * so a push that fails loses nothing (the inbox and GET /job have it). Pushes under way are
 * tracked, so that stopping the service lets them finish.
 */
export function createPushes(deps: {
  events: EventBus
  messages: Pick<JobsDeps['messages'], 'publish'>
  log: JobsDeps['log']
  onChanged?: JobsDeps['onChanged']
  /** The workers alerted to an open request (told when it closes: taken, canceled, expired). */
  alertedOf?: (jobId: string) => Promise<string[]>
}) {
  const pushing = new Set<Promise<unknown>>()

  function track(push: Promise<unknown>, failure: string) {
    const tracked: Promise<unknown> = push.catch((error: unknown) => deps.log.warn({ err: error }, failure)).finally(() => pushing.delete(tracked))
    pushing.add(tracked)
  }

  return {
    /** Pushes the job to both its users and its messages to theirs; answers the job as it is now. */
    job(committed: Committed): JobView {
      const job = view(committed.row, committed.log)
      const { row } = committed
      // An open request leaving REQUESTED: the other alerted workers' apps drop it (`job.closed`).
      const closing = row.open_request && row.status !== 'REQUESTED' && committed.log.at(-2)?.status === 'REQUESTED'
      track(
        Promise.all([
          deps.events.publish({ to: row.worker_id ? [row.client_id, row.worker_id] : [row.client_id], type: 'job.updated', data: job }),
          closing && deps.alertedOf
            ? deps.alertedOf(row.id).then((ids) => {
              const to = ids.filter((id) => id !== row.worker_id)
              return to.length > 0 ? deps.events.publish({ to, type: 'job.closed', data: { job_id: row.id, status: row.status } }) : undefined
            })
            : undefined,
          committed.messages.length > 0 ? deps.messages.publish(committed.messages, committed.parties) : undefined,
          deps.onChanged?.(committed.row, committed.log.at(-2)?.status),
        ]),
        'could not push a job update',
      )
      return job
    },

    /** Pushes messages that came with no change to the job (a reminder). */
    messages(messages: MessageRow[]) {
      track(deps.messages.publish(messages), 'could not push messages')
    },

    /** Waits for the pushes under way. */
    async settled() {
      await Promise.all(pushing)
    },
  }
}

export type Pushes = ReturnType<typeof createPushes>
