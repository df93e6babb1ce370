import { sql } from 'kysely'
import type { DB } from '../../db/index.js'
import type { CounterStore } from '../types.js'
import './tables.js'

export function createPostgresCounterStore(db: DB): CounterStore {
  return {
    async hit(key, windowMs) {
      // One statement: a new or expired window starts at 1, a running one counts up.
      const row = await db
        .insertInto('live_counters')
        .values({ key, count: 1, expires_at: sql<Date>`now() + make_interval(secs => ${windowMs / 1000})` })
        .onConflict((oc) =>
          oc.column('key').doUpdateSet({
            count: sql<number>`CASE WHEN live_counters.expires_at <= now() THEN 1 ELSE live_counters.count + 1 END`,
            expires_at: sql<Date>`CASE WHEN live_counters.expires_at <= now() THEN excluded.expires_at ELSE live_counters.expires_at END`,
          }),
        )
        .returning(['count', sql<number>`(extract(epoch from expires_at - now()) * 1000)::int`.as('reset_ms')])
        .executeTakeFirstOrThrow()
      return { count: row.count, resetMs: Math.max(row.reset_ms, 0) }
    },
    async peek(key) {
      const row = await db
        .selectFrom('live_counters')
        .select(['count', sql<number>`(extract(epoch from expires_at - now()) * 1000)::int`.as('reset_ms')])
        .where('key', '=', key)
        .where('expires_at', '>', sql<Date>`now()`)
        .executeTakeFirst()
      return row ? { count: row.count, resetMs: row.reset_ms } : { count: 0, resetMs: 0 }
    },
    async reset(key) {
      await db.deleteFrom('live_counters').where('key', '=', key).execute()
    },
  }
}
