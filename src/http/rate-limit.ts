import type { FastifyInstance, RouteOptions } from 'fastify'
import rateLimit, { normalizeIP } from '@fastify/rate-limit'
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

    /**
     * The store of a route with a limit of its own. @fastify/rate-limit passes the route's merged
     * limit options, the route itself under routeInfo (not the route, as its types say).
     */
    child(params: RouteOptions & { routeInfo?: Partial<RouteOptions> }) {
      const { method, url } = params.routeInfo ?? {}
      if (method === undefined || url === undefined) throw new Error('a rate limit of its own needs a route to count under')
      return new LiveRateLimitStore({ ...this.options, prefix: `rl:${String(method)}:${url}` })
    }
  }
}

export async function registerRateLimit(app: FastifyInstance, counters: CounterStore, max: number) {
  await app.register(rateLimit, {
    global: true,
    max,
    timeWindow: 60_000,
    store: counterStoreClass(counters),
    // The address is read when the limit runs (onRequest, before signing in, so requests without
    // a valid token count too); a client that left meanwhile has none any more (its socket is
    // closed): its requests count together, and no answer reaches it anyway.
    keyGenerator: (request) => {
      const address = request.ip as string | undefined
      return address === undefined ? 'gone' : normalizeIP(address)
    },
    // A live-store hiccup must not turn every request into an error.
    skipOnError: true,
    errorResponseBuilder: (_request, context) =>
      new TooManyRequestsError(`Too many requests: at most ${context.max} a ${context.after}; try again later`, Math.max(1, Math.ceil(context.ttl / 1000))),
  })
}
