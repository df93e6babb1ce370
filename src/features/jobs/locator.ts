import type { LocationStore } from '../../platform/live/index.js'
import type { LocationService } from '../location/index.js'
import type { WorkerLocator } from './deps.js'

/** How far from a job its suggestions and distances look (the location search's own limit). */
const SEARCH_RADIUS_M = 50_000
/** How many of the nearest workers are looked through for one worker's distance. */
const DISTANCE_SCAN = 100

/**
 * Workers on the live map, as the job workflow asks about them. Suggestions come from the
 * location feature's search, seen by the client (so whoever the search hides from the client
 * stays hidden); positions there are blurred to about 100 m, so distances are "about".
 */
export function createWorkerLocator(deps: { locations: LocationStore; search: LocationService['search'] }): WorkerLocator {
  return {
    async nearbyWorkers(point, { viewerId, exclude, limit }) {
      const page = await deps.search(viewerId, { lat: point.lat, lon: point.lon, radius: SEARCH_RADIUS_M, role: 'WORKER', limit: limit + exclude.length })
      return page.items
        .filter((hit) => !exclude.includes(hit.user.id))
        .slice(0, limit)
        .map((hit) => ({ userId: hit.user.id, name: `${hit.user.first_name} ${hit.user.last_name}`.trim(), distanceM: hit.distance_m }))
    },

    async distanceTo(userId, point) {
      // The live map answers nearest first and never one user's position by itself: the worker
      // is looked for among the workers nearest the point.
      const hits = await deps.locations.nearby({ lat: point.lat, lon: point.lon, radiusM: SEARCH_RADIUS_M, limit: DISTANCE_SCAN, role: 'WORKER' })
      return hits.find((h) => h.userId === userId)?.distanceM ?? null
    },
  }
}
