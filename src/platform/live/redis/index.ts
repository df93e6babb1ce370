import { withSubscriptionsClosedOnClose } from '../subscriptions.js'
import type { LiveStore } from '../types.js'
import { connectRedis } from './client.js'
import { createRedisCounterStore } from './counters.js'
import { createRedisEventBus } from './events.js'
import { createRedisLocationStore } from './locations.js'
import { createRedisTicketStore } from './tickets.js'

/** The live store on one Redis server, or with `cluster` on the Redis Cluster that `url` is a node of. */
export async function createRedisLiveStore(url: string, prefix: string, cluster = false): Promise<LiveStore> {
  const redis = await connectRedis(url, cluster)
  const { events, closeAll } = withSubscriptionsClosedOnClose(createRedisEventBus(redis, prefix))
  const locations = createRedisLocationStore(redis, prefix)
  return {
    kind: 'redis',
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
