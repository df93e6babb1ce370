import type { TicketStore } from '../types.js'
import type { RedisClient } from './client.js'

export function createRedisTicketStore(redis: RedisClient, prefix: string): TicketStore {
  const key = (name: string) => `${prefix}ticket:${name}`
  return {
    async put(name, value, ttlMs) {
      await redis.set(key(name), value, 'PX', ttlMs)
    },
    async take(name) {
      // GETDEL is atomic: of two racing takers, only one gets the value.
      return redis.getdel(key(name))
    },
  }
}
