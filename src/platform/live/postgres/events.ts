import { sql } from 'kysely'
import type { DB, Listen } from '../../db/index.js'
import type { EventBus, LiveEvent } from '../types.js'

const CHANNEL = 'live_events'

/** Events travel by NOTIFY on one channel; each process LISTENs and hands them to its sockets. */
export function createPostgresEventBus(db: DB, listen: Listen): EventBus {
  let unlisten: Promise<() => Promise<void>> | undefined
  const handlers = new Set<(event: LiveEvent) => void>()

  return {
    async publish(event) {
      await sql`SELECT pg_notify(${CHANNEL}, ${JSON.stringify(event)})`.execute(db)
    },
    async subscribe(handler) {
      unlisten ??= listen(CHANNEL, (payload) => {
        const event = JSON.parse(payload) as LiveEvent
        for (const h of handlers) h(event)
      })
      await unlisten
      handlers.add(handler)
      return async () => {
        handlers.delete(handler)
        if (handlers.size === 0 && unlisten) {
          const stopping = unlisten
          unlisten = undefined
          await (await stopping)()
        }
      }
    },
  }
}
