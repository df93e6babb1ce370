import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../app.js'
import type { Config } from '../../config.js'
import { openPlatform, type Platform } from '../../platform/index.js'
import { newUser, type SignedIn } from '../../../test/support/app.js'
import { createScratchDatabase, deleteRedisKeys, TEST_DATABASE_URL, TEST_REDIS_URL, testConfig } from '../../../test/support/backends.js'
import { startRedisServer, type RedisServer } from '../../../test/support/redis-server.js'
import { waitUntil } from '../../../test/support/wait.js'

// Sessions are kept in the database: restarting Redis, or every process, signs nobody out.

const me = (app: FastifyInstance, user: SignedIn) => app.inject({ url: '/user', headers: user.auth })

/** The database of these tests: a scratch one on the server, or PGlite in a folder of its own (kept across restarts). */
async function keptDatabase(): Promise<{ env: Record<string, string>; remove(): Promise<void> }> {
  if (TEST_DATABASE_URL) {
    const scratch = await createScratchDatabase(TEST_DATABASE_URL)
    return { env: { DATABASE_URL: scratch.url }, remove: scratch.drop }
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'fl-sessions-'))
  return { env: { DATA_DIR: dir }, remove: () => rm(dir, { recursive: true, force: true }) }
}

async function start(config: Config): Promise<{ app: FastifyInstance; close(): Promise<void> }> {
  const platform: Platform = await openPlatform(config)
  const app = await buildApp(config, platform)
  await app.ready()
  return {
    app,
    async close() {
      await app.close()
      await platform.close()
    },
  }
}

describe('a restart of every process', () => {
  let database: Awaited<ReturnType<typeof keptDatabase>>
  beforeAll(async () => {
    database = await keptDatabase()
  })
  afterAll(async () => database?.remove())

  // PGlite in a folder runs initdb there, and opens it again: slower than one in memory.
  it('signs nobody out', { timeout: 120_000 }, async () => {
    const config = testConfig(database.env)
    const first = await start(config)
    const users = await Promise.all(Array.from({ length: 3 }, () => newUser(first.app)))
    for (const u of users) expect((await me(first.app, u)).statusCode).toBe(200)
    await first.close()

    const second = await start(config)
    try {
      for (const u of users) expect((await me(second.app, u)).json().id).toBe(u.id)
    } finally {
      await second.close()
      if (config.redisUrl) await deleteRedisKeys(config.redisUrl, config.redisPrefix)
    }
  })
})

// A Redis of the test's own, restarted without persistence: everything it held is gone.
describe.runIf(TEST_REDIS_URL)('a restart of Redis without persistence', () => {
  let redis: RedisServer
  let database: Awaited<ReturnType<typeof keptDatabase>>
  beforeAll(async () => {
    redis = await startRedisServer()
    database = await keptDatabase()
  })
  afterAll(async () => {
    await redis?.stop()
    await database?.remove()
  })

  it('signs nobody out: every token works after it, in a process that held it and in a new one', { timeout: 120_000 }, async () => {
    const config = testConfig({ ...database.env, REDIS_URL: redis.url })
    const running = await start(config)
    try {
      const users = await Promise.all(Array.from({ length: 3 }, () => newUser(running.app)))
      for (const u of users) expect((await me(running.app, u)).statusCode).toBe(200)

      // Without persistence: what it held is gone.
      await redis.kill()
      await redis.start()
      // Once the process has reconnected (its rate limits count in Redis again), every token works.
      await waitUntil(() => running.app.platform.live.ping().then(() => true, () => false))
      for (const u of users) expect((await me(running.app, u)).json().id).toBe(u.id)

      const fresh = await start(config)
      try {
        for (const u of users) expect((await me(fresh.app, u)).json().id).toBe(u.id)
      } finally {
        await fresh.close()
      }
    } finally {
      await running.close()
    }
  })
})
