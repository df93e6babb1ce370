import { CompiledQuery, sql } from 'kysely'
import type { DB } from '../../db/index.js'
import type { CounterStore } from '../types.js'
import './tables.js'

const HIT = `
  INSERT INTO live_counters (key, count, expires_at) VALUES ($1, $3, now() + make_interval(secs => $2))
  ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN live_counters.expires_at <= now() THEN excluded.count ELSE live_counters.count + excluded.count END,
    expires_at = CASE WHEN live_counters.expires_at <= now() THEN excluded.expires_at ELSE live_counters.expires_at END
  RETURNING count, (extract(epoch FROM expires_at - now()) * 1000)::int AS reset_ms`

export function createPostgresCounterStore(db: DB): CounterStore {
  return {
    async hit(key, windowMs, by = 1) {
      // One statement (the global rate limit runs it on every request, so its text is fixed
      // rather than built each time): a new or expired window starts at 1, a running one counts up.
      const result = await db.executeQuery<{ count: number; reset_ms: number }>(CompiledQuery.raw(HIT, [key, windowMs / 1000, by]))
      const row = result.rows[0]!
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
