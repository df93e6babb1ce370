import type { CounterHit, CounterStore } from './types.js'

/** How often the hits counted here are added to the shared counters. */
const FLUSH_MS = 100
/** Keys followed here at most; past that, hits go straight to the shared counters. */
const MAX_KEYS = 100_000

interface Local {
  windowMs: number
  /** When the shared window ends (as the shared store said). */
  resetAt: number
  /** The shared count when last heard, this process's added hits included. */
  shared: number
  /** Hits on their way to the shared count: counted, not yet in `shared`. */
  sending: number
  /** Hits counted here and not yet sent. */
  pending: number
  /** The first hit of the window, on its way to the shared store. */
  starting?: Promise<void>
}

export interface LocalFirstCounters extends CounterStore {
  /** Adds the hits still counted only here, and stops. */
  close(): Promise<void>
}

/**
 * Counters for rate limits that count in this process first and add to the shared counters (the
 * live store) every FLUSH_MS, so a request costs no round trip to the store. The first hit of a
 * window goes to the store at once, so that a window starts from every process's count; after
 * that a process sees the others' hits within one flush. A limit thus holds exactly within one
 * process, and across processes to within what the others count between two flushes. For limits
 * that must be exact across processes (failed sign-ins), use the shared counters themselves.
 */
export function localFirstCounters(shared: CounterStore, options: { onFlushError?: (error: unknown) => void } = {}): LocalFirstCounters {
  const keys = new Map<string, Local>()

  /** Sends `by` hits; until the store answers they count as `sending`, and go back to `pending` if it fails. */
  const send = async (key: string, local: Local, by: number) => {
    local.sending += by
    try {
      const hit = await shared.hit(key, local.windowMs, by)
      local.shared = hit.count
      local.resetAt = Date.now() + hit.resetMs
      local.sending -= by
    } catch (error) {
      local.sending -= by
      local.pending += by
      throw error
    }
  }

  const flush = async () => {
    const now = Date.now()
    const work: Promise<void>[] = []
    for (const [key, local] of keys) {
      if (local.starting) continue
      if (local.pending === 0) {
        if (now >= local.resetAt && local.sending === 0) keys.delete(key)
        continue
      }
      const by = local.pending
      local.pending = 0
      // A failed send keeps its hits for the next flush: a store hiccup loses none.
      work.push(send(key, local, by).catch((error: unknown) => options.onFlushError?.(error)))
    }
    await Promise.all(work)
  }

  let flushing: Promise<void> | undefined
  const runFlush = () => (flushing ??= flush().finally(() => (flushing = undefined)))
  const timer = setInterval(runFlush, FLUSH_MS)
  timer.unref()

  const answer = (local: Local): CounterHit => ({ count: local.shared + local.sending + local.pending, resetMs: Math.max(0, local.resetAt - Date.now()) })

  return {
    async hit(key, windowMs, by = 1) {
      let local = keys.get(key)
      const now = Date.now()
      if (local && now >= local.resetAt && !local.starting && local.sending === 0) {
        // The window is over. Hits still pending go to the next one, which the next flush starts.
        if (local.pending === 0) local = undefined
        else Object.assign(local, { shared: 0, resetAt: now + windowMs })
      }
      if (!local) {
        if (keys.size >= MAX_KEYS) return shared.hit(key, windowMs, by)
        const fresh: Local = { windowMs, resetAt: now + windowMs, shared: 0, sending: 0, pending: 0 }
        keys.set(key, fresh)
        // Hits that come while this one is on its way wait for it, then count on top of it.
        fresh.starting = send(key, fresh, by).finally(() => (fresh.starting = undefined))
        try {
          await fresh.starting
        } catch (error) {
          // The store did not answer: this hit is not counted (the caller gets the error), the
          // ones that waited on it stay pending for the next flush.
          fresh.pending -= by
          throw error
        }
        return answer(fresh)
      }
      local.pending += by
      if (local.starting) await local.starting.catch(() => {})
      return answer(local)
    },

    async peek(key) {
      const local = keys.get(key)
      if (!local) return shared.peek(key)
      if (local.starting) await local.starting.catch(() => {})
      return answer(local)
    },

    async reset(key) {
      keys.delete(key)
      await shared.reset(key)
    },

    async close() {
      clearInterval(timer)
      await Promise.all([...keys.values()].map((local) => local.starting?.catch(() => {})))
      await flushing
      await runFlush()
    },
  }
}
