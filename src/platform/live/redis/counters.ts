import type { Result } from 'ioredis'
import type { CounterStore } from '../types.js'
import { Cluster } from 'ioredis'
import type { RedisClient } from './client.js'

const HIT = `
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
`

declare module 'ioredis' {
  interface RedisCommander<Context> {
    counterHit(key: string, windowMs: number, by: number): Result<[number, number], Context>
  }
}

export function createRedisCounterStore(redis: RedisClient, prefix: string): CounterStore {
  redis.defineCommand('counterHit', { numberOfKeys: 1, lua: HIT })
  const key = (name: string) => `${prefix}count:${name}`
  return {
    async hit(name, windowMs, by = 1) {
      const [count, resetMs] = await redis.counterHit(key(name), windowMs, by)
      return { count, resetMs }
    },
    // One pipeline: one write and one read for every counter of a flush. On a Cluster the keys
    // live on several nodes, and a pipeline takes one slot's keys only: there they go one by one.
    ...(redis instanceof Cluster
      ? {}
      : {
          async hitMany(hits) {
            if (hits.length === 0) return []
            const pipeline = redis.pipeline()
            for (const h of hits) pipeline.counterHit(key(h.key), h.windowMs, h.by)
            const results = (await pipeline.exec()) ?? []
            return hits.map((_, i) => {
              const [error, reply] = results[i] ?? [new Error('no reply')]
              if (error) throw error
              const [count, resetMs] = reply as [number, number]
              return { count, resetMs }
            })
          },
        }),
    async peek(name) {
      const [count, ttl] = (await redis.multi().get(key(name)).pttl(key(name)).exec()) as [[unknown, string | null], [unknown, number]]
      return { count: Number(count[1] ?? 0), resetMs: Math.max(ttl[1], 0) }
    },
    async reset(name) {
      await redis.del(key(name))
    },
  }
}
