import { Cluster, Redis, type RedisOptions } from 'ioredis'

/** One Redis server, or a Redis Cluster: the live store sends both the same commands. */
export type RedisClient = Redis | Cluster

// No auto-pipelining: commands already go out as they come, and batching them per tick cost
// more CPU than it saved (bench:location: GET /search 2.5-2.9k -> 3.6-3.8k req/s without it).
const OPTIONS = {
  maxRetriesPerRequest: 2,
  connectTimeout: 5_000,
  enableAutoPipelining: false,
} satisfies RedisOptions

/**
 * Connects to the server `url` names or, with `cluster`, to the Redis Cluster that node belongs
 * to (the other nodes are found from it).
 */
export async function connectRedis(url: string, cluster: boolean): Promise<RedisClient> {
  const redis = cluster ? clusterClient(url) : new Redis(url, { ...OPTIONS, lazyConnect: true })
  redis.on('error', () => {}) // reconnects by itself; /ready reports the outage
  try {
    await redis.connect()
  } catch (error) {
    redis.disconnect()
    throw error
  }
  return redis
}

function clusterClient(url: string): Cluster {
  // The credentials and TLS of the URL go to every node: ioredis would give them to the node
  // named only, not to the ones it discovers.
  const parsed = new URL(url)
  const { enableAutoPipelining, ...perNode } = OPTIONS
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1') // an IPv6 address, without its brackets
  return new Cluster([{ host, port: Number(parsed.port || 6379) }], {
    lazyConnect: true,
    enableAutoPipelining,
    // Events go by sharded pub/sub (see events.ts), which needs a subscriber on the channel's node.
    shardedSubscribers: true,
    redisOptions: {
      ...perNode,
      username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
      password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
      tls: parsed.protocol === 'rediss:' ? {} : undefined,
    },
  })
}
