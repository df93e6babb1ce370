import { sql, type Transaction } from 'kysely'
import type { DB, Database } from '../../platform/db/index.js'
import { cellOf } from './grid.js'

declare module '../../platform/db/types.js' {
  interface Database {
    saved_alerts: SavedAlertRow
    saved_alert_cells: { cell: string | number; alert_id: string }
  }
}

export interface SavedAlertRow {
  id: string
  worker_id: string
  lat: number
  lon: number
  radius_m: number
  category_ids: string[]
  created_at: Date
}

/** A worker a request reaches, and how far the request is from the place it watches. */
export interface AlertMatch {
  workerId: string
  distanceM: number
}

/** The one advisory lock key space of saved alerts: a worker's alerts are counted under it. */
const ALERTS_LOCK = 0x616c7274

export function createAlertsStore(db: DB) {
  return {
    /** Adds an alert filed under its cells if the worker keeps fewer than `max`; false when it keeps that many. */
    async insert(row: SavedAlertRow, cells: number[], max: number): Promise<boolean> {
      return db.transaction().execute(async (trx: Transaction<Database>) => {
        // Two adds at once must not both pass the count.
        await sql`SELECT pg_advisory_xact_lock(${ALERTS_LOCK}, hashtext(${row.worker_id}))`.execute(trx)
        const { n } = await trx.selectFrom('saved_alerts').select(sql<string>`count(*)`.as('n')).where('worker_id', '=', row.worker_id).executeTakeFirstOrThrow()
        if (Number(n) >= max) return false
        await trx.insertInto('saved_alerts').values(row).execute()
        await trx.insertInto('saved_alert_cells').values(cells.map((cell) => ({ cell, alert_id: row.id }))).execute()
        return true
      })
    },

    /** The worker's alerts, newest first. */
    async list(workerId: string, options: { limit: number; beforeId?: string }): Promise<SavedAlertRow[]> {
      let select = db.selectFrom('saved_alerts').selectAll().where('worker_id', '=', workerId)
      if (options.beforeId) select = select.where('id', '<', options.beforeId)
      return select.orderBy('id', 'desc').limit(options.limit + 1).execute()
    },

    /** Removes one of the worker's alerts (its cells go with it); false when it has none of that id. */
    async remove(workerId: string, id: string): Promise<boolean> {
      const rows = await db.deleteFrom('saved_alerts').where('id', '=', id).where('worker_id', '=', workerId).returning('id').execute()
      return rows.length > 0
    },

    /**
     * The workers whose saved alerts hold the point, in one of the categories: the point's cell is
     * read by the index (never every alert), then each alert there is measured. Workers deleted,
     * suspended, without the WORKER role, the client itself and those blocked by or blocking the
     * client are left out. Nearest alert first, at most `limit` workers.
     */
    async matching(query: { lat: number; lon: number; categoryIds: string[]; clientId: string; limit: number }): Promise<AlertMatch[]> {
      if (query.categoryIds.length === 0) return []
      const here = sql`ll_to_earth(${query.lat}::float8, ${query.lon}::float8)`
      const { rows } = await sql<{ worker_id: string; distance_m: number }>`
        SELECT a.worker_id, min(earth_distance(ll_to_earth(a.lat, a.lon), ${here})) AS distance_m
          FROM saved_alert_cells c
          JOIN saved_alerts a ON a.id = c.alert_id
          JOIN users u ON u.id = a.worker_id AND u.deleted_at IS NULL AND u.suspended_at IS NULL AND 'WORKER' = ANY (u.roles)
         WHERE c.cell = ${cellOf(query.lat, query.lon)}
           AND a.category_ids && ARRAY[${sql.join(query.categoryIds)}]::uuid[]
           AND earth_distance(ll_to_earth(a.lat, a.lon), ${here}) <= a.radius_m
           AND a.worker_id <> ${query.clientId}
           AND NOT EXISTS (SELECT 1 FROM blocks b
                            WHERE (b.blocker_id = ${query.clientId} AND b.blocked_id = a.worker_id)
                               OR (b.blocker_id = a.worker_id AND b.blocked_id = ${query.clientId}))
         GROUP BY a.worker_id
         ORDER BY 2, 1
         LIMIT ${query.limit}`.execute(db)
      return rows.map((r) => ({ workerId: r.worker_id, distanceM: Number(r.distance_m) }))
    },

    /** An account deleted: its saved alerts go (their cells with them). */
    async forgetUser(workerId: string): Promise<void> {
      await db.deleteFrom('saved_alerts').where('worker_id', '=', workerId).execute()
    },

    /** The service radius of each worker that set one (the profiles feature's column). */
    async serviceRadii(userIds: readonly string[]): Promise<Map<string, number | null>> {
      if (userIds.length === 0) return new Map()
      const rows = await db.selectFrom('profiles').select(['user_id', 'service_radius_m']).where('user_id', 'in', [...userIds]).execute()
      return new Map(rows.map((r) => [r.user_id, r.service_radius_m]))
    },
  }
}

export type AlertsStore = ReturnType<typeof createAlertsStore>
