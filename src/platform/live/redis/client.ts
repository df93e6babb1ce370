import { Cluster, Redis, ReplyError, type RedisOptions } from 'ioredis'
import { StoreUnavailableError } from '../../../errors.js'
import { DEFAULT_RECONNECT, reconnectDelay, type ReconnectDelays } from '../../reconnect.js'

/** One Redis server, or a Redis Cluster: the live store sends both the same commands. */
export type RedisClient = Redis | Cluster

export interface RedisSettings {
  /** Milliseconds a command waits for its answer before it fails (a paused or stalled server). */
  commandTimeoutMs: number
  /** How a lost connection is made again. */
  reconnect: ReconnectDelays
}

export const DEFAULT_REDIS_SETTINGS: RedisSettings = { commandTimeoutMs: 500, reconnect: DEFAULT_RECONNECT }

/**
 * When Redis is gone or stalls, a command fails at once or within the command timeout, never
 * waits for the server to come back: a request that needs Redis is answered 503 within a second
 * and the rest go on. No command is queued while the connection is down (enableOfflineQueue),
 * and one whose connection closed under it fails (maxRetriesPerRequest 0) rather than be sent
 * again (autoResendUnfulfilledCommands): it may have run, and a counter's INCRBY must not run
 * twice. The connection itself is made again with a growing delay, for as long as it takes.
 */
function options(settings: RedisSettings) {
  return {
    connectTimeout: 5_000,
    commandTimeout: settings.commandTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt: number) => reconnectDelay(attempt, settings.reconnect),
    // No auto-pipelining: commands already go out as they come, and batching them per tick cost
    // more CPU than it saved (bench:location: GET /search 2.5-2.9k -> 3.6-3.8k req/s without it).
    enableAutoPipelining: false,
  } satisfies RedisOptions
}

/**
 * Connects to the server `url` names or, with `cluster`, to the Redis Cluster that node belongs
 * to (the other nodes are found from it).
 */
export async function connectRedis(url: string, cluster: boolean, settings: RedisSettings = DEFAULT_REDIS_SETTINGS): Promise<RedisClient> {
  const redis = cluster ? clusterClient(url, settings) : new Redis(url, { ...options(settings), lazyConnect: true })
  redis.on('error', () => {}) // reconnects by itself; /ready reports the outage
  try {
    await redis.connect()
  } catch (error) {
    redis.disconnect()
    throw error
  }
  return redis
}

function clusterClient(url: string, settings: RedisSettings): Cluster {
  // The credentials and TLS of the URL go to every node: ioredis would give them to the node
  // named only, not to the ones it discovers.
  const parsed = new URL(url)
  // A Cluster finds nodes again itself (its nodes don't reconnect on their own) and keeps
  // commands while it does.
  const { enableAutoPipelining, retryStrategy: _nodes, enableOfflineQueue: _queue, ...perNode } = options(settings)
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1') // an IPv6 address, without its brackets
  return new Cluster([{ host, port: Number(parsed.port || 6379) }], {
    lazyConnect: true,
    enableAutoPipelining,
    clusterRetryStrategy: (attempt) => reconnectDelay(attempt, settings.reconnect),
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

/** What ioredis says when the server can't be reached or doesn't answer in time. */
const UNREACHABLE = [
  'Command timed out',
  "Stream isn't writeable",
  'Connection is closed.',
  "Cluster isn't ready",
  'Cluster is disconnected',
  'None of startup nodes is available',
  'Failed to refresh slots cache',
  'Command aborted due to connection close',
]
/** Errors Redis answers while it can't serve yet: loading its data, a failover under way. */
const NOT_SERVING = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN)\b/
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])

/** Whether an error of a Redis command says that Redis is out of reach, rather than that the command was wrong. */
export function isRedisUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  if (error instanceof ReplyError) return NOT_SERVING.test(error.message)
  if (error.name === 'MaxRetriesPerRequestError' || error.name === 'ClusterAllFailedError') return true
  const code = (error as { code?: unknown }).code
  return (typeof code === 'string' && NETWORK_CODES.has(code)) || UNREACHABLE.some((text) => error.message.startsWith(text))
}

/** Seconds a client told that Redis is out of reach waits before it tries again. */
const RETRY_AFTER_SECONDS = 2

/**
 * The store with each of its methods failing StoreUnavailableError (503 store_unavailable, with
 * Retry-After) where Redis is out of reach, and with other errors as they are.
 */
export function failingAsUnavailable<T extends object>(store: T): T {
  const guarded: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(store)) {
    if (typeof value !== 'function') {
      guarded[name] = value
      continue
    }
    guarded[name] = (...args: unknown[]) => {
      const result: unknown = value.apply(store, args)
      return result instanceof Promise ? result.catch(rethrowUnavailable) : result
    }
  }
  return guarded as T
}

function rethrowUnavailable(error: unknown): never {
  if (!isRedisUnavailable(error)) throw error
  throw Object.assign(new StoreUnavailableError('The live store (Redis) does not answer; try again shortly', RETRY_AFTER_SECONDS), { cause: error })
}
