import { sql, type Transaction } from 'kysely'
import type { DB, Database } from '../../platform/db/index.js'
import { cellsOfPoint } from './grid.js'

declare module '../../platform/db/types.js' {
  interface Database {
    saved_alerts: SavedAlertRow
    saved_alert_cells: { cell: string | number; category_id: string; alert_id: string }
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
        await trx.insertInto('saved_alert_cells').values(cells.flatMap((cell) => row.category_ids.map((category_id) => ({ cell, category_id, alert_id: row.id })))).execute()
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
     * The workers whose saved alerts hold the point, in one of the categories: the point's cells (one
     * a grid size) in those categories are read by the index (never every alert), then each alert
     * found there is measured. Workers deleted,
     * suspended, without the WORKER role, the client itself and those blocked by or blocking the
     * client are left out. Nearest alert first, at most `limit` workers.
     */
    async matching(query: { lat: number; lon: number; categoryIds: string[]; clientId: string; limit: number }): Promise<AlertMatch[]> {
      if (query.categoryIds.length === 0) return []
      const here = sql`ll_to_earth(${query.lat}::float8, ${query.lon}::float8)`
      // The cells first, always (materialized): whatever the planner thinks of the other tables, the
      // alerts read are those filed under the place's cells in the categories, never all of them.
      const { rows } = await sql<{ worker_id: string; distance_m: number }>`
        WITH filed AS MATERIALIZED (
          SELECT DISTINCT c.alert_id FROM saved_alert_cells c
           WHERE c.cell = ANY (ARRAY[${sql.join(cellsOfPoint(query.lat, query.lon))}]::bigint[])
             AND c.category_id = ANY (ARRAY[${sql.join(query.categoryIds)}]::uuid[])
        ), near AS MATERIALIZED (
          SELECT a.worker_id, earth_distance(ll_to_earth(a.lat, a.lon), ${here}) AS distance_m
            FROM filed f JOIN saved_alerts a ON a.id = f.alert_id
           WHERE earth_distance(ll_to_earth(a.lat, a.lon), ${here}) <= a.radius_m AND a.worker_id <> ${query.clientId}
        )
        SELECT n.worker_id, min(n.distance_m) AS distance_m
          FROM near n
          JOIN users u ON u.id = n.worker_id AND u.deleted_at IS NULL AND u.suspended_at IS NULL AND 'WORKER' = ANY (u.roles)
         WHERE NOT EXISTS (SELECT 1 FROM blocks b
                            WHERE (b.blocker_id = ${query.clientId} AND b.blocked_id = n.worker_id)
                               OR (b.blocker_id = n.worker_id AND b.blocked_id = ${query.clientId}))
         GROUP BY n.worker_id
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
