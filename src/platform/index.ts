import type { Config } from '../config.js'
import { openDatabase, type DatabaseHandle } from './db/index.js'
import { openLiveStore, type LiveStore } from './live/index.js'
import { createPasswordHasher, type PasswordHasher } from './passwords.js'

/** The adapters to the outside that the app runs on; made once per process, closed at exit. */
export interface Platform {
  database: DatabaseHandle
  live: LiveStore
  hasher: PasswordHasher
  close(): Promise<void>
}

export async function openPlatform(config: Config): Promise<Platform> {
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.dbPoolSize })
  let live: LiveStore
  try {
    live = await openLiveStore({ redisUrl: config.redisUrl, redisPrefix: config.redisPrefix, redisCluster: config.redisCluster }, database)
  } catch (error) {
    await database.close()
    throw error
  }
  return {
    database,
    live,
    hasher: createPasswordHasher({ cost: config.bcryptCost, concurrency: config.bcryptConcurrency }),
    async close() {
      await live.close()
      await database.close()
    },
  }
}
