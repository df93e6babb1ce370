import { sql } from 'kysely'
import { UnavailableError } from '../../../errors.js'
import type { DatabaseHandle } from '../../db/index.js'
import { withSubscriptionsClosedOnClose } from '../subscriptions.js'
import type { LiveStore } from '../types.js'
import { createPostgresCounterStore } from './counters.js'
import { createPostgresEventBus } from './events.js'
import { createPostgresLocationStore } from './locations.js'
import { createPostgresTicketStore } from './tickets.js'

const SWEEP_INTERVAL_MS = 60_000

/**
 * The live store on PostgreSQL, in the same database as everything else. Reads never trust a
 * row past its expiry; a sweep deletes expired rows now and then so the tables stay small.
 */
export function createPostgresLiveStore(database: DatabaseHandle): LiveStore {
  const { db } = database
  const locations = createPostgresLocationStore(db)
  const sweep = async () => {
    await db.deleteFrom('live_counters').where('expires_at', '<=', sql<Date>`now()`).execute()
    await db.deleteFrom('live_tickets').where('expires_at', '<=', sql<Date>`now()`).execute()
    await locations.sweep()
  }
  const timer = setInterval(() => void sweep().catch(() => {}), SWEEP_INTERVAL_MS)
  timer.unref()
  const bus = createPostgresEventBus(db, database.listen)
  const { events, closeAll } = withSubscriptionsClosedOnClose(bus)

  return {
    kind: 'postgres',
    counters: createPostgresCounterStore(db),
    tickets: createPostgresTicketStore(db),
    locations,
    events,
    async ping() {
      await sql`SELECT 1`.execute(db)
      if (!bus.listening()) throw new UnavailableError('its events connection (LISTEN) dropped and is being made again')
    },
    async close() {
      clearInterval(timer)
      await closeAll()
    },
  }
}
