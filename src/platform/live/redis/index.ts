import { UnavailableError } from '../../../errors.js'
import { withSubscriptionsClosedOnClose } from '../subscriptions.js'
import type { LiveStore } from '../types.js'
import { connectRedis, DEFAULT_REDIS_SETTINGS, failingAsUnavailable, isRedisUnavailable, type RedisSettings } from './client.js'
import { createRedisCounterStore } from './counters.js'
import { createRedisEventBus } from './events.js'
import { createRedisLocationStore } from './locations.js'
import { createRedisTicketStore } from './tickets.js'

/**
 * The live store on one Redis server, or with `cluster` on the Redis Cluster that `url` is a node
 * of. Where Redis is out of reach, its stores fail StoreUnavailableError (503 store_unavailable).
 */
export async function createRedisLiveStore(url: string, prefix: string, cluster = false, settings: RedisSettings = DEFAULT_REDIS_SETTINGS): Promise<LiveStore> {
  const redis = await connectRedis(url, cluster, settings)
  const bus = createRedisEventBus(redis, prefix)
  const { events, closeAll } = withSubscriptionsClosedOnClose(failingAsUnavailable(bus))
  const locations = createRedisLocationStore(redis, prefix)
  return {
    kind: 'redis',
    counters: failingAsUnavailable(createRedisCounterStore(redis, prefix)),
    tickets: failingAsUnavailable(createRedisTicketStore(redis, prefix)),
    locations: failingAsUnavailable(locations),
    events,
    async ping() {
      // Bounded by the command timeout: a stalled server fails it too.
      await redis.ping().catch((error: unknown) => {
        throw isRedisUnavailable(error) ? new UnavailableError('Redis does not answer') : error
      })
      if (!bus.listening()) throw new UnavailableError('its events connection dropped and is being made again')
    },
    async close() {
      locations.stop()
      await closeAll()
      await redis.quit().catch(() => redis.disconnect())
    },
  }
}
