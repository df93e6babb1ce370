import { Cluster } from 'ioredis'
import { eventsResumed } from '../resumed.js'
import type { EventBus, LiveEvent } from '../types.js'
import type { RedisClient } from './client.js'
import { eventFromWire, eventToWire } from '../wire.js'

/**
 * Events travel on one pub/sub channel; each process hands them to its own sockets. On a Redis
 * Cluster the channel is a sharded one (SPUBLISH, SSUBSCRIBE): it lives on the node that owns its
 * slot, so one process's events arrive in the order it sent them. Plain PUBLISH goes to any node
 * and reaches the others over the cluster bus, and two events sent through two nodes can swap.
 */
export function createRedisEventBus(redis: RedisClient, prefix: string): EventBus & { listening(): boolean } {
  const channel = `${prefix}events`
  const handlers = new Set<(event: LiveEvent) => void>()
  /** False while the subscriber's connection is down or not subscribed again yet. */
  let subscribed = true

  const onMessage = (from: string, payload: string) => {
    if (from !== channel) return
    const event = eventFromWire(payload)
    for (const h of handlers) h(event)
  }

  /** Subscribes to the channel; answers how to stop. */
  const listen = async (): Promise<() => Promise<void>> => {
    if (redis instanceof Cluster) {
      // A Cluster subscribes on a connection of its own to the channel's node (and follows the
      // channel when its slot moves), and emits the messages itself.
      redis.on('smessage', onMessage)
      const stop = async () => {
        redis.off('smessage', onMessage)
        await redis.sunsubscribe(channel).catch(() => {})
      }
      try {
        await redis.ssubscribe(channel)
      } catch (error) {
        await stop()
        throw error
      }
      return stop
    }
    // A connection in subscriber mode can do nothing else, so it is a connection of its own.
    // When it drops, ioredis makes it again; it is then subscribed again here rather than by
    // ioredis, so that the subscribers hear once it is done that they may have missed events.
    const subscriber = redis.duplicate({ lazyConnect: true, autoResubscribe: false })
    let stopping = false
    subscriber.on('error', () => {}) // reconnects by itself; /ready reports the outage
    subscriber.on('message', onMessage)
    const stop = async () => {
      stopping = true
      subscribed = true
      await subscriber.quit().catch(() => subscriber.disconnect())
    }
    try {
      await subscriber.connect()
      await subscriber.subscribe(channel)
    } catch (error) {
      await stop()
      throw error
    }
    subscriber.on('close', () => {
      if (!stopping) subscribed = false
    })
    subscriber.on('ready', () => {
      if (stopping) return
      subscriber.subscribe(channel).then(
        () => {
          const event = eventsResumed()
          for (const h of handlers) h(event)
          subscribed = true
        },
        // Subscribing failed on a connection that stands (it timed out): make the connection again.
        () => subscriber.disconnect(true),
      )
    })
    return stop
  }

  // Starting and stopping the subscription take turns, so a subscribe that comes while the last
  // handler is leaving never finds the channel being unsubscribed under it.
  let stop: (() => Promise<void>) | undefined
  let turns: Promise<unknown> = Promise.resolve()
  const inTurn = (step: () => Promise<void>) => {
    const run = turns.then(step)
    turns = run.catch(() => {})
    return run
  }

  // Publishes made in one turn of the event loop go out together, after its I/O: one write to
  // Redis for all of them (a write to a socket cost more than the rest of a publish; the sends
  // a loop turn finishes, or the in-app notifications of a relayed batch, are many writes
  // otherwise). Their order on the connection is the order they were made in.
  const cluster = redis instanceof Cluster
  let waiting: { wire: string; done: (error: unknown) => void }[] = []
  const flush = () => {
    const batch = waiting
    waiting = []
    if (batch.length === 1) {
      const [one] = batch as [(typeof batch)[number]]
      void (cluster ? redis.spublish(channel, one.wire) : redis.publish(channel, one.wire)).then(() => one.done(undefined), one.done)
      return
    }
    const pipeline = redis.pipeline()
    for (const p of batch) {
      if (cluster) pipeline.spublish(channel, p.wire)
      else pipeline.publish(channel, p.wire)
    }
    pipeline.exec().then(
      (results) => batch.forEach((p, i) => p.done(results?.[i]?.[0] ?? (results?.[i] ? undefined : new Error('no reply')))),
      (error: unknown) => batch.forEach((p) => p.done(error)),
    )
  }

  return {
    listening: () => subscribed,
    async publish(event) {
      const wire = eventToWire(event)
      return new Promise<void>((resolve, reject) => {
        if (waiting.push({ wire, done: (error) => (error ? reject(error) : resolve()) }) === 1) setImmediate(flush)
      })
    },
    async subscribe(handler) {
      handlers.add(handler)
      try {
        await inTurn(async () => {
          stop ??= await listen()
        })
      } catch (error) {
        handlers.delete(handler)
        throw error
      }
      return async () => {
        handlers.delete(handler)
        await inTurn(async () => {
          if (handlers.size > 0 || !stop) return
          const stopping = stop
          stop = undefined
          await stopping()
        })
      }
    },
  }
}
