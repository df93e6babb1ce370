import type { DatabaseHandle } from '../db/index.js'
import { createPostgresLiveStore } from './postgres/index.js'
import type { RedisSettings } from './redis/client.js'
import { createRedisLiveStore } from './redis/index.js'
import type { LiveStore } from './types.js'

export type * from './types.js'

export interface LiveStoreOptions {
  redisUrl: string | undefined
  redisPrefix: string
  /** redisUrl names one node of a Redis Cluster. */
  redisCluster?: boolean
  /** Command timeout and reconnection delays (defaults: DEFAULT_REDIS_SETTINGS). */
  redis?: RedisSettings
}

/** Redis when a URL is given; otherwise PostgreSQL, in the application's own database. */
export async function openLiveStore(options: LiveStoreOptions, database: DatabaseHandle): Promise<LiveStore> {
  return options.redisUrl
    ? createRedisLiveStore(options.redisUrl, options.redisPrefix, options.redisCluster, options.redis)
    : createPostgresLiveStore(database)
}
