import { getDistance } from 'geolib'
import { ConflictError, ForbiddenError, NotFoundError } from '../../errors.js'
import type { Clock } from '../../platform/clock.js'
import type { EventBus } from '../../platform/live/index.js'
import { createSharedCache } from '../../platform/live/shared-cache.js'
import { TRACKABLE, type TrackedJob, type TrackingStore } from './store.js'

// Live job tracking: while a job is ACCEPTED or STARTED its worker may share its exact position
// with that job's client, and no one else. The position is the one the worker posts to
// POST /location (whose map shows only a blurred point); it is kept only while the sharing lasts.

export interface TrackingView {
  job_id: string
  on: boolean
  position: { lat: number; lon: number; at: string } | null
  /** Seconds since the position was posted. */
  age_s: number | null
  /** Meters from the position to the job's place, as the crow flies; null without either. */
  distance_m: number | null
}

export function createTrackingService(deps: { store: TrackingStore; events: EventBus; clock: Clock; log: { warn(obj: object, msg: string): void } }) {
  const { store, events, clock } = deps
  // Whether a worker shares its position with a job: asked on every location post, so kept in
  // each process and dropped everywhere when the worker turns a sharing on or off. One kept true
  // after a job's move ended its sharing costs an update that finds nothing, for a minute at most.
  const sharing = createSharedCache<boolean>({ events, name: 'tracking', max: 100_000, ttlMs: 60_000 })

  /** The job for one of its users; anyone else is told there is no such job. */
  const jobOf = async (userId: string, jobId: string): Promise<TrackedJob> => {
    const job = await store.find(jobId)
    if (!job || (job.client_id !== userId && job.worker_id !== userId)) throw new NotFoundError('No such job', 'job_not_found')
    return job
  }

  const viewOf = (job: TrackedJob): TrackingView => {
    const t = job.tracking
    const position = t && t.lat !== null && t.lon !== null && t.at ? { lat: t.lat, lon: t.lon, at: t.at.toISOString() } : null
    const distance =
      position && job.location_lat !== null && job.location_lon !== null
        ? getDistance({ latitude: position.lat, longitude: position.lon }, { latitude: job.location_lat, longitude: job.location_lon })
        : null
    return {
      job_id: job.id,
      on: t !== null,
      position,
      age_s: position ? Math.max(0, Math.round((clock.now().getTime() - t!.at!.getTime()) / 1000)) : null,
      distance_m: distance,
    }
  }

  const tell = (clientId: string, data: unknown) =>
    events.publish({ to: [clientId], type: 'job.tracking', data }).catch((error: unknown) => deps.log.warn({ err: error }, 'could not push a tracking change'))

  return {
    /** The sharing of a job, to its client and its worker. */
    async get(userId: string, jobId: string): Promise<TrackingView> {
      return viewOf(await jobOf(userId, jobId))
    },

    /** The job's worker turns sharing on or off; the client hears of it. */
    async set(userId: string, jobId: string, on: boolean): Promise<TrackingView> {
      const job = await jobOf(userId, jobId)
      if (job.worker_id !== userId) throw new ForbiddenError('Only the job\'s worker shares its position', 'not_your_tracking')
      if (on) {
        if (!(TRACKABLE as readonly string[]).includes(job.status) || !(await store.start(jobId, userId, clock.now()))) {
          throw new ConflictError('A position is shared only while the job is ACCEPTED or STARTED', 'job_not_trackable')
        }
      } else {
        await store.stop(jobId, userId)
      }
      await sharing.changed([userId])
      const now = await jobOf(userId, jobId)
      await tell(job.client_id, viewOf(now))
      return viewOf(now)
    },

    /** A worker posted its position: each job it shares with gets it, and its client a `job.location` event. */
    async position(workerId: string, point: { lat: number; lon: number }): Promise<void> {
      if (!(await sharing.get(workerId, (id) => store.sharing(id)))) return
      const at = clock.now()
      const jobs = await store.position(workerId, point, at)
      await Promise.all(
        jobs.map((j) =>
          events
            .publish({ to: [j.client_id], type: 'job.location', data: { job_id: j.job_id, lat: point.lat, lon: point.lon, at: at.toISOString() } })
            .catch((error: unknown) => deps.log.warn({ err: error }, 'could not push a tracked position')),
        ),
      )
    },

    /** A job changed: when it left the trackable statuses its sharing ended (the database dropped it), and the client hears of it. */
    async jobChanged(job: { id: string; client_id: string; status: string }, before: string | undefined): Promise<void> {
      const trackable = (status: string | undefined) => (TRACKABLE as readonly string[]).includes(status ?? '')
      if (trackable(job.status) || !trackable(before)) return
      await tell(job.client_id, { job_id: job.id, on: false, position: null, age_s: null, distance_m: null })
    },

    /** The worker signed out or went: its sharings end. */
    async stopAllOf(userId: string): Promise<void> {
      const stopped = await store.stopAllOf(userId)
      await sharing.changed([userId])
      for (const j of stopped) await tell(j.client_id, { job_id: j.job_id, on: false, position: null, age_s: null, distance_m: null })
    },

    start: () => sharing.start(),
    close: () => sharing.close(),
  }
}

export type TrackingService = ReturnType<typeof createTrackingService>
