import { sql } from 'kysely'
import type { DB } from '../../db/index.js'
import type { TicketStore } from '../types.js'

declare module '../../db/types.js' {
  interface Database {
    live_tickets: { key: string; value: string; expires_at: Date }
  }
}

export function createPostgresTicketStore(db: DB): TicketStore {
  return {
    async put(key, value, ttlMs) {
      await db
        .insertInto('live_tickets')
        .values({ key, value, expires_at: sql<Date>`now() + make_interval(secs => ${ttlMs / 1000})` })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value, expires_at: sql<Date>`excluded.expires_at` }))
        .execute()
    },
    async take(key) {
      // DELETE ... RETURNING: of two racing takers, only one gets the row.
      const row = await db
        .deleteFrom('live_tickets')
        .where('key', '=', key)
        .where('expires_at', '>', sql<Date>`now()`)
        .returning('value')
        .executeTakeFirst()
      return row?.value ?? null
    },
  }
}
