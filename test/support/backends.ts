import { randomBytes, randomUUID } from 'node:crypto'
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster } from 'ioredis'
import pg from 'pg'
import { loadConfig, type Config } from '../../src/config.js'
import { openDatabase, type DatabaseHandle } from '../../src/platform/db/index.js'
import { openLiveStore, type LiveStore } from '../../src/platform/live/index.js'
import { connectRedis, DEFAULT_REDIS_SETTINGS, type RedisSettings } from '../../src/platform/live/redis/client.js'
import { openPlatform, type Platform } from '../../src/platform/index.js'
import { startRedisCluster } from './redis-cluster.js'

// Tests run on the embedded defaults (PGlite, PostgreSQL live store) unless TEST_DATABASE_URL
// and TEST_REDIS_URL name real servers. Each test file gets a database and a Redis key prefix of
// its own, so files run in parallel without seeing each other. With TEST_REDIS_URL, the live
// store is also tested on a Redis Cluster of three local redis-server nodes (./redis-cluster.ts).

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL || undefined

/** A name no other test file or run uses: scratch databases and Redis key prefixes. */
export const uniqueName = () => `fl_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`

/** A fresh, empty database on the test server; drop() removes it. */
export async function createScratchDatabase(serverUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = uniqueName()
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: serverUrl })
      await client.connect()
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await client.end()
    },
  }
}

/**
 * Deletes every Redis key under a prefix: what a test file or a benchmark leaves behind. With
 * `cluster`, `redisUrl` is a node of a Redis Cluster, and the keys go from every master.
 */
export async function deleteRedisKeys(redisUrl: string, prefix: string, cluster = false): Promise<void> {
  const redis = await connectRedis(redisUrl, cluster, TEST_REDIS_SETTINGS)
  try {
    for (const node of redis instanceof Cluster ? redis.nodes('master') : [redis]) {
      let cursor = '0'
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
        cursor = next
        // On a cluster, one command can't touch keys of two slots.
        if (cluster) await Promise.all(keys.map((key) => node.unlink(key)))
        else if (keys.length > 0) await node.unlink(...keys)
      } while (cursor !== '0')
    }
  } finally {
    redis.disconnect()
  }
}

/** The config tests run with: cheap bcrypt, quiet logs, the backends named by the environment. */
/** Where this test file's apps write their mails, when no SMTP_URL is given. */
export const TEST_MAIL_DIR = join(tmpdir(), `freelancer-test-mail-${randomUUID()}`)
process.once('exit', () => rmSync(TEST_MAIL_DIR, { recursive: true, force: true }))

export function testConfig(env: Record<string, string | undefined> = {}): Config {
  return loadConfig({
    BCRYPT_COST: '4',
    LOG_LEVEL: 'silent',
    DATA_DIR: 'memory://',
    // Each test file's mails in a folder of its own (newUser reads the confirmation link there).
    MAIL_DIR: TEST_MAIL_DIR,
    RATE_LIMIT_MAX: '100000',
    AUTH_RATE_LIMIT_MAX: '100000',
    // The suite runs files side by side on a few cores, where a process can stall for over the
    // production bounds (500 ms) and answer 503: the tests of those bounds set their own.
    REDIS_COMMAND_TIMEOUT: '5000',
    READY_TIMEOUT: '5000',
    REDIS_URL: TEST_REDIS_URL,
    REDIS_PREFIX: `${uniqueName()}:`,
    ...env,
  })
}

/** Opens the platform for a test file: a scratch database on a real server, or in-memory PGlite. */
export async function openTestPlatform(config: Config): Promise<Platform & { config: Config }> {
  const scratch = TEST_DATABASE_URL && !config.databaseUrl ? await createScratchDatabase(TEST_DATABASE_URL) : undefined
  const withDb = scratch ? { ...config, databaseUrl: scratch.url } : config
  const platform = await openPlatform(withDb)
  return {
    ...platform,
    config: withDb,
    async close() {
      try {
        await platform.close()
      } finally {
        await scratch?.drop()
        if (withDb.redisUrl) await deleteRedisKeys(withDb.redisUrl, withDb.redisPrefix, withDb.redisCluster)
      }
    },
  }
}

export interface LiveBackend {
  name: string
  open(): Promise<{ live: LiveStore; database: DatabaseHandle; close(): Promise<void> }>
}

/** Redis as the suite opens it: commands may wait long on a busy machine (see testConfig). */
const TEST_REDIS_SETTINGS: RedisSettings = { ...DEFAULT_REDIS_SETTINGS, commandTimeoutMs: 5_000 }

/** Every live-store implementation this run can reach, for the contract suites. */
export function liveBackends(): LiveBackend[] {
  const backends: LiveBackend[] = [
    {
      name: 'postgres live store on PGlite',
      async open() {
        const database = await openDatabase({ databaseUrl: undefined, dataDir: 'memory://', poolSize: 1 })
        const live = await openLiveStore({ redisUrl: undefined, redisPrefix: '' }, database)
        return { live, database, close: async () => { await live.close(); await database.close() } }
      },
    },
  ]
  if (TEST_DATABASE_URL) {
    backends.push({
      name: 'postgres live store on PostgreSQL',
      async open() {
        const scratch = await createScratchDatabase(TEST_DATABASE_URL!)
        const database = await openDatabase({ databaseUrl: scratch.url, dataDir: '', poolSize: 5 })
        const live = await openLiveStore({ redisUrl: undefined, redisPrefix: '' }, database)
        return { live, database, close: async () => { await live.close(); await database.close(); await scratch.drop() } }
      },
    })
  }
  if (TEST_REDIS_URL) {
    backends.push({
      name: 'redis live store',
      async open() {
        const database = await openDatabase({ databaseUrl: undefined, dataDir: 'memory://', poolSize: 1 })
        const redisPrefix = `${uniqueName()}:`
        const live = await openLiveStore({ redisUrl: TEST_REDIS_URL, redisPrefix, redis: TEST_REDIS_SETTINGS }, database)
        return { live, database, close: async () => { await live.close(); await database.close(); await deleteRedisKeys(TEST_REDIS_URL!, redisPrefix) } }
      },
    })
    backends.push({
      name: 'redis live store on a 3-node Redis Cluster',
      async open() {
        // The cluster starts while PGlite sets up (a few seconds each).
        const [cluster, database] = await Promise.allSettled([
          startRedisCluster(),
          openDatabase({ databaseUrl: undefined, dataDir: 'memory://', poolSize: 1 }),
        ])
        let live: LiveStore | undefined
        const close = async () => {
          try {
            await live?.close()
            if (database.status === 'fulfilled') await database.value.close()
          } finally {
            if (cluster.status === 'fulfilled') await cluster.value.stop()
          }
        }
        try {
          if (cluster.status === 'rejected') throw cluster.reason
          if (database.status === 'rejected') throw database.reason
          live = await openLiveStore({ redisUrl: cluster.value.url, redisPrefix: `${uniqueName()}:`, redisCluster: true, redis: TEST_REDIS_SETTINGS }, database.value)
          return { live, database: database.value, close }
        } catch (error) {
          await close()
          throw error
        }
      },
    })
  }
  return backends
}
