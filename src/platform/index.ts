import type { Config } from '../config.js'
import { openDatabase, type DatabaseHandle } from './db/index.js'
import { openLiveStore, type LiveStore, type LiveStoreOptions } from './live/index.js'
import { createPasswordHasher, type PasswordHasher } from './passwords.js'
import { openQueue, type Queue } from './queue/index.js'

/** The adapters to the outside that the app runs on; made once per process, closed at exit. */
export interface Platform {
  database: DatabaseHandle
  live: LiveStore
  hasher: PasswordHasher
  /** Background tasks: the outbox and its workers, in the database. */
  queue: Queue
  close(): Promise<void>
}

const reconnectOf = (config: Config) => ({ minDelayMs: config.reconnectMinDelay, maxDelayMs: config.reconnectMaxDelay })

/** The live store the config names, with its timeouts. */
export const liveStoreOptions = (config: Config): LiveStoreOptions => ({
  redisUrl: config.redisUrl,
  redisPrefix: config.redisPrefix,
  redisCluster: config.redisCluster,
  redis: { commandTimeoutMs: config.redisCommandTimeout, reconnect: reconnectOf(config) },
})

export async function openPlatform(config: Config): Promise<Platform> {
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.dbPoolSize, reconnect: reconnectOf(config) })
  let live: LiveStore
  let queue: Queue
  try {
    queue = await openQueue(database, { pollIntervalMs: config.queuePollInterval, maintenanceIntervalSeconds: config.queueMaintenanceInterval, work: config.queueWork, inlineGraceSeconds: config.queueInlineGrace })
  } catch (error) {
    await database.close()
    throw error
  }
  try {
    live = await openLiveStore(liveStoreOptions(config), database)
  } catch (error) {
    await queue.stop()
    await database.close()
    throw error
  }
  return {
    database,
    live,
    queue,
    hasher: createPasswordHasher({ cost: config.bcryptCost, concurrency: config.bcryptConcurrency }),
    async close() {
      // Tasks under way finish first: they use the live store and the database.
      await queue.stop(config.shutdownTimeout)
      await live.close()
      await database.close()
    },
  }
}
