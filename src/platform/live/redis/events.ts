import type { Redis } from 'ioredis'
import type { EventBus, LiveEvent } from '../types.js'

/** Events travel on one pub/sub channel; each process hands them to its own sockets. */
export function createRedisEventBus(redis: Redis, prefix: string): EventBus {
  const channel = `${prefix}events`
  let subscriber: Redis | undefined
  const handlers = new Set<(event: LiveEvent) => void>()

  return {
    async publish(event) {
      await redis.publish(channel, JSON.stringify(event))
    },
    async subscribe(handler) {
      if (!subscriber) {
        // A connection in subscriber mode can do nothing else, so it is a connection of its own.
        subscriber = redis.duplicate()
        subscriber.on('message', (_channel: string, payload: string) => {
          const event = JSON.parse(payload) as LiveEvent
          for (const h of handlers) h(event)
        })
        await subscriber.subscribe(channel)
      }
      handlers.add(handler)
      return async () => {
        handlers.delete(handler)
        if (handlers.size === 0 && subscriber) {
          const closing = subscriber
          subscriber = undefined
          await closing.quit().catch(() => closing.disconnect())
        }
      }
    },
  }
}
