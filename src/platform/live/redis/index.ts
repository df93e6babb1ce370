import { Redis } from 'ioredis'
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
  const events = createRedisEventBus(redis, prefix)
  const locations = createRedisLocationStore(redis, prefix)
  const unsubscribes: (() => Promise<void>)[] = []
  return {
    kind: 'redis',
    sessions: createRedisSessionStore(redis, prefix),
    counters: createRedisCounterStore(redis, prefix),
    tickets: createRedisTicketStore(redis, prefix),
    locations,
    events: {
      publish: events.publish,
      async subscribe(handler) {
        const unsubscribe = await events.subscribe(handler)
        unsubscribes.push(unsubscribe)
        return unsubscribe
      },
    },
    async ping() {
      await redis.ping()
    },
    async close() {
      locations.stop()
      await Promise.all(unsubscribes.splice(0).map((u) => u()))
      await redis.quit().catch(() => redis.disconnect())
    },
  }
}
