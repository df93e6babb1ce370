import { LRUCache } from 'lru-cache'
import { EVENTS_RESUMED } from './resumed.js'
import type { EventBus } from './types.js'

/** The live event that says some entries of a shared cache changed. */
export const CACHE_CHANGED = 'cache.changed'

interface CacheChanged {
  cache: string
  keys: string[]
}

/**
 * A read-through cache kept in each process, whose entries every process drops as soon as any
 * process says they changed (through the live events). A read that overlapped a change does not
 * fill the cache, so an old value read just before a change never outlives it. Each entry lives
 * at most `ttlMs` anyway: that bounds how stale one can get if a change event is lost (say, while
 * the live store is unreachable).
 */
export function createSharedCache<V extends NonNullable<unknown>>(options: { events: EventBus; name: string; max: number; ttlMs: number }) {
  const { events, name } = options
  const cache = new LRUCache<string, V>({ max: options.max, ttl: options.ttlMs })
  // Bumped on every change heard of, here or elsewhere.
  let changes = 0
  let unsubscribe: (() => Promise<void>) | undefined

  const drop = (keys: readonly string[]) => {
    changes++
    for (const key of keys) cache.delete(key)
  }

  /** The values of `keys` that exist; those not cached are loaded with one call of `load`. */
  const getMany = async (keys: readonly string[], load: (missing: string[]) => Promise<Map<string, V>>): Promise<Map<string, V>> => {
    const found = new Map<string, V>()
    const missing: string[] = []
    for (const key of keys) {
      const value = cache.get(key)
      if (value === undefined) missing.push(key)
      else found.set(key, value)
    }
    if (missing.length === 0) return found
    const before = changes
    const loaded = await load(missing)
    const fill = changes === before
    for (const [key, value] of loaded) {
      found.set(key, value)
      if (fill) cache.set(key, value)
    }
    return found
  }

  return {
    getMany,

    async get(key: string, load: (key: string) => Promise<V | undefined>): Promise<V | undefined> {
      const found = await getMany([key], async ([missing]) => {
        const value = await load(missing!)
        return new Map(value === undefined ? [] : [[missing!, value]])
      })
      return found.get(key)
    },

    /** Drops the keys here at once, and in every other process through the live events. */
    async changed(keys: readonly string[]): Promise<void> {
      if (keys.length === 0) return
      drop(keys)
      await events.publish({ to: [], type: CACHE_CHANGED, data: { cache: name, keys: [...keys] } satisfies CacheChanged })
    },

    async start(): Promise<void> {
      unsubscribe = await events.subscribe((event) => {
        if (event.type === EVENTS_RESUMED) {
          // Changes told while the events were not heard here: nothing held can be trusted.
          changes++
          cache.clear()
          return
        }
        if (event.type !== CACHE_CHANGED) return
        const data = event.data as CacheChanged
        if (data.cache === name) drop(data.keys)
      })
    },

    async close(): Promise<void> {
      await unsubscribe?.()
      unsubscribe = undefined
      cache.clear()
    },
  }
}

export type SharedCache<V extends NonNullable<unknown>> = ReturnType<typeof createSharedCache<V>>
