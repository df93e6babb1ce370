// Job alerts: who an open request reaches. Workers live on the map within their service radius
// of the request's place, in its category (as GET /search finds them, seen by the client: blocks
// either way, deleted and suspended users left out), and workers whose saved alert holds the place
// in one of its categories, whether or not they are on the map. Saved alerts are the routes here.

import { Type } from 'typebox'
import { v7 as uuidv7 } from 'uuid'
import { ConflictError, ForbiddenError, NotFoundError } from '../../errors.js'
import { decodeCursor, pageOf } from '../../http/cursor.js'
import type { Clock } from '../../platform/clock.js'
import { cellsOfCircle } from './grid.js'
import type { AlertsStore, SavedAlertRow } from './store.js'

/** Saved alerts one worker keeps at most. */
export const MAX_ALERTS_PER_WORKER = 20
/** Radius bounds of a saved alert, meters (the upper one is the map search's). */
export const ALERT_RADIUS_MIN = 100
export const ALERT_RADIUS_MAX = 50_000
/** How far from a request live workers are looked for (the map search's limit). */
const LIVE_SEARCH_RADIUS_M = 50_000
/** A live worker who set no service radius is alerted within this distance. */
export const DEFAULT_SERVICE_RADIUS_M = 10_000
/** Workers one open request alerts at most (nearest first), live and saved alike. */
export const MAX_ALERTED = 500
const LIVE_PAGE = 100

const Cursor = Type.Object({ id: Type.String({ format: 'uuid' }) })

export interface AlertInput {
  lat: number
  lon: number
  radius: number
  category_ids: string[]
}

export interface AlertView {
  id: string
  lat: number
  lon: number
  radius: number
  category_ids: string[]
  created_at: string
}

/** The map search, as the alerts use it (the location feature's, as the client sees it). */
type Search = (viewerId: string, query: { lat: number; lon: number; radius: number; role: 'WORKER'; category: string; limit: number; cursor?: string }) =>
  Promise<{ items: { user: { id: string }; distance_m: number }[]; next_cursor: string | null }>

export function createAlertsService(deps: {
  store: AlertsStore
  clock: Clock
  search: Search
  /** Whether the user has the WORKER role now. */
  isWorker: (userId: string) => Promise<boolean>
  /** Checks categories an alert names: each exists (400) and is offered (409). */
  checkCategories: (ids: readonly string[], field: string) => Promise<void>
  /**
   * The categories a request in `categoryId` reaches in saved alerts: itself, its subcategories
   * (as search takes them in) and its parent (an alert for a category takes in its subcategories).
   */
  reachOf: (categoryId: string) => Promise<Set<string>>
  log: { warn(obj: object, msg: string): void }
}) {
  const { store } = deps

  const view = (row: SavedAlertRow): AlertView => ({
    id: row.id,
    lat: row.lat,
    lon: row.lon,
    radius: row.radius_m,
    category_ids: row.category_ids,
    created_at: row.created_at.toISOString(),
  })

  /** Live workers within their service radius of the place, in the category, as the client's search finds them. */
  const liveAudience = async (request: { clientId: string; lat: number; lon: number; categoryId: string }) => {
    const hits: { workerId: string; distanceM: number }[] = []
    let cursor: string | undefined
    do {
      const page = await deps.search(request.clientId, { lat: request.lat, lon: request.lon, radius: LIVE_SEARCH_RADIUS_M, role: 'WORKER', category: request.categoryId, limit: LIVE_PAGE, cursor })
      hits.push(...page.items.map((i) => ({ workerId: i.user.id, distanceM: i.distance_m })))
      cursor = page.next_cursor ?? undefined
    } while (cursor && hits.length < MAX_ALERTED)
    const radii = await store.serviceRadii(hits.map((h) => h.workerId))
    return hits.filter((h) => h.distanceM <= (radii.get(h.workerId) ?? DEFAULT_SERVICE_RADIUS_M))
  }

  return {
    async create(workerId: string, input: AlertInput): Promise<AlertView> {
      if (!(await deps.isWorker(workerId))) throw new ForbiddenError('Only workers save job alerts: the caller has no WORKER role', 'forbidden')
      const categoryIds = [...new Set(input.category_ids)]
      await deps.checkCategories(categoryIds, 'body/category_ids')
      const row: SavedAlertRow = { id: uuidv7(), worker_id: workerId, lat: input.lat, lon: input.lon, radius_m: input.radius, category_ids: categoryIds, created_at: deps.clock.now() }
      if (!(await store.insert(row, cellsOfCircle(row.lat, row.lon, row.radius_m), MAX_ALERTS_PER_WORKER))) {
        throw new ConflictError(`A worker keeps at most ${MAX_ALERTS_PER_WORKER} saved alerts: delete one first`, 'too_many_alerts')
      }
      return view(row)
    },

    async list(workerId: string, query: { limit?: number; cursor?: string }) {
      const limit = query.limit ?? 20
      const after = decodeCursor(query.cursor, Cursor)
      const page = pageOf(await store.list(workerId, { limit, beforeId: after?.id }), limit, (last) => ({ id: last.id }))
      return { items: page.items.map(view), next_cursor: page.next_cursor }
    },

    /** An account deleted: its saved alerts go. */
    forgetUser: (userId: string) => store.forgetUser(userId),

    async remove(workerId: string, id: string): Promise<void> {
      if (!(await store.remove(workerId, id))) throw new NotFoundError('You have no saved alert of this id', 'alert_not_found')
    },

    /**
     * Who an open request alerts, nearest first, each once (at its smaller distance), at most
     * MAX_ALERTED. The live map failing (a store down) leaves the saved alerts to answer.
     */
    async audience(request: { clientId: string; lat: number; lon: number; categoryId: string }): Promise<{ workerId: string; distanceM: number | null }[]> {
      const [live, saved] = await Promise.all([
        liveAudience(request).catch((error: unknown) => {
          deps.log.warn({ err: error }, 'could not read the live map for an open request; saved alerts only')
          return []
        }),
        deps.reachOf(request.categoryId).then((categoryIds) => store.matching({ lat: request.lat, lon: request.lon, categoryIds: [...categoryIds], clientId: request.clientId, limit: MAX_ALERTED })),
      ])
      const nearest = new Map<string, number>()
      for (const { workerId, distanceM } of [...live, ...saved]) {
        if (workerId === request.clientId) continue
        const known = nearest.get(workerId)
        if (known === undefined || distanceM < known) nearest.set(workerId, distanceM)
      }
      return [...nearest].sort((a, b) => a[1] - b[1]).slice(0, MAX_ALERTED).map(([workerId, distanceM]) => ({ workerId, distanceM }))
    },
  }
}

export type AlertsService = ReturnType<typeof createAlertsService>
