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
    // No auto-pipelining: commands already go out as they come, and batching them per tick cost
    // more CPU than it saved (bench:location: GET /search 2.5-2.9k -> 3.6-3.8k req/s without it).
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
