import type { FastifyInstance } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { TooManyRequestsError } from '../errors.js'
import type { CounterStore } from '../platform/live/index.js'

type Callback = (error: Error | null, result?: { current: number; ttl: number }) => void

/**
 * @fastify/rate-limit on the live store's counters, so a limit holds across every process
 * (Redis or PostgreSQL alike). Each route with limits of its own counts under its own prefix.
 */
function counterStoreClass(counters: CounterStore) {
  return class LiveRateLimitStore {
    constructor(private readonly options: { prefix?: string }) {}

    private get prefix() {
      return this.options.prefix ?? 'rl'
    }

    incr(key: string, callback: Callback, timeWindow: number) {
      counters.hit(`${this.prefix}:${key}`, timeWindow).then(
        (hit) => callback(null, { current: hit.count, ttl: hit.resetMs }),
        (error: Error) => callback(error),
      )
    }

    read(key: string, callback: Callback) {
      counters.peek(`${this.prefix}:${key}`).then(
        (hit) => callback(null, { current: hit.count, ttl: hit.resetMs }),
        (error: Error) => callback(error),
      )
    }

    child(routeOptions: { method: string | string[]; url: string }) {
      return new LiveRateLimitStore({ ...this.options, prefix: `rl:${String(routeOptions.method)}:${routeOptions.url}` })
    }
  }
}

export async function registerRateLimit(app: FastifyInstance, counters: CounterStore, max: number) {
  await app.register(rateLimit, {
    global: true,
    max,
    timeWindow: 60_000,
    store: counterStoreClass(counters),
    // A live-store hiccup must not turn every request into an error.
    skipOnError: true,
    errorResponseBuilder: (_request, context) =>
      new TooManyRequestsError(`Too many requests: at most ${context.max} a ${context.after}; try again later`, Math.max(1, Math.ceil(context.ttl / 1000))),
  })
}
