import { Redis } from 'ioredis'
import { withSubscriptionsClosedOnClose } from '../subscriptions.js'
import type { LiveStore } from '../types.js'
import { createRedisCounterStore } from './counters.js'
import { createRedisEventBus } from './events.js'
import { createRedisLocationStore } from './locations.js'
import { createRedisSessionStore } from './sessions.js'
import { createRedisTicketStore } from './tickets.js'

export async function createRedisLiveStore(url: string, prefix: string): Promise<LiveStore> {
  const redis = new Redis(url, {
    // Many requests at once share round trips instead of each paying its own.
    enableAutoPipelining: true,
    maxRetriesPerRequest: 2,
    connectTimeout: 5_000,
    lazyConnect: true,
  })
  redis.on('error', () => {}) // reconnects by itself; /ready reports the outage
  await redis.connect()
  const { events, closeAll } = withSubscriptionsClosedOnClose(createRedisEventBus(redis, prefix))
  const locations = createRedisLocationStore(redis, prefix)
  return {
    kind: 'redis',
    sessions: createRedisSessionStore(redis, prefix),
    counters: createRedisCounterStore(redis, prefix),
    tickets: createRedisTicketStore(redis, prefix),
    locations,
    events,
    async ping() {
      await redis.ping()
    },
    async close() {
      locations.stop()
      await closeAll()
      await redis.quit().catch(() => redis.disconnect())
    },
  }
}
