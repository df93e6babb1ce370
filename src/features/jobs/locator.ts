import type { LocationStore } from '../../platform/live/index.js'
import type { AccountsStore } from '../accounts/store.js'
import type { WorkerLocator } from './service.js'

/** How far from a job its suggestions and distances look. */
const SEARCH_RADIUS_M = 50_000
/** How many of the nearest workers are looked through for one worker's distance. */
const DISTANCE_SCAN = 100

/**
 * Workers on the live map (the location feature's store), as the job workflow asks about them.
 * Positions there are blurred to about 100 m, so distances are "about".
 */
export function createWorkerLocator(deps: { locations: LocationStore; accounts: AccountsStore }): WorkerLocator {
  const { locations, accounts } = deps
  return {
    async nearbyWorkers(point, { exclude, limit }) {
      const hits = await locations.nearby({ lat: point.lat, lon: point.lon, radiusM: SEARCH_RADIUS_M, limit: limit + 5, role: 'WORKER', exclude: new Set(exclude) })
      const found = []
      for (const hit of hits) {
        if (found.length >= limit) break
        // Deleted since, or no longer a worker: left out.
        const user = await accounts.findById(hit.userId)
        if (!user || !user.roles.includes('WORKER')) continue
        found.push({ userId: user.id, name: `${user.first_name} ${user.last_name}`.trim(), distanceM: hit.distanceM })
      }
      return found
    },

    async distanceTo(userId, point) {
      // The store answers nearest first and never one user's position by itself: the worker is
      // looked for among the workers nearest the point.
      const hits = await locations.nearby({ lat: point.lat, lon: point.lon, radiusM: SEARCH_RADIUS_M, limit: DISTANCE_SCAN, role: 'WORKER' })
      return hits.find((h) => h.userId === userId)?.distanceM ?? null
    },
  }
}
