import type { CounterHit, CounterStore } from './types.js'

/** How often the hits counted here are added to the shared counters. */
const FLUSH_MS = 100
/** Keys followed here at most; past that, hits go straight to the shared counters. */
const MAX_KEYS = 100_000

interface Local {
  windowMs: number
  /** When the shared window ends (as the shared store said, or as this process guessed before it heard). */
  resetAt: number
  /** The shared count when last heard, this process's added hits included. */
  shared: number
  /** Hits on their way to the shared count: counted, not yet in `shared`. */
  sending: number
  /** Hits counted here and not yet sent. */
  pending: number
}

export interface LocalFirstCounters extends CounterStore {
  /** Adds the hits still counted only here, and stops. */
  close(): Promise<void>
}

/**
 * Counters for rate limits that count in this process first and add to the shared counters (the
 * live store) every FLUSH_MS, all of a flush in one round trip where the store can batch them, so
 * a request costs no round trip to the store, not even the first of a window: a window starts
 * here, and learns the others' count at its first flush. After that a process sees the others'
 * hits within one flush. A limit thus holds exactly within one process, and across processes to
 * within what the others count between two flushes. For limits that must be exact across
 * processes (failed sign-ins), use the shared counters themselves.
 */
export function localFirstCounters(shared: CounterStore, options: { onFlushError?: (error: unknown) => void } = {}): LocalFirstCounters {
  const keys = new Map<string, Local>()

  const heard = (local: Local, hit: CounterHit, by: number) => {
    local.shared = hit.count
    local.resetAt = Date.now() + hit.resetMs
    local.sending -= by
  }
  /** A failed send keeps its hits for the next flush: a store hiccup loses none. */
  const failed = (local: Local, by: number) => {
    local.sending -= by
    local.pending += by
  }

  const flush = async () => {
    const now = Date.now()
    const batch: { key: string; local: Local; by: number }[] = []
    for (const [key, local] of keys) {
      if (local.pending === 0) {
        if (now >= local.resetAt && local.sending === 0) keys.delete(key)
        continue
      }
      batch.push({ key, local, by: local.pending })
      local.sending += local.pending
      local.pending = 0
    }
    if (batch.length === 0) return
    if (shared.hitMany) {
      try {
        const hits = await shared.hitMany(batch.map(({ key, local, by }) => ({ key, windowMs: local.windowMs, by })))
        batch.forEach(({ local, by }, i) => heard(local, hits[i]!, by))
      } catch (error) {
        for (const { local, by } of batch) failed(local, by)
        options.onFlushError?.(error)
      }
      return
    }
    await Promise.all(
      batch.map(({ key, local, by }) =>
        shared.hit(key, local.windowMs, by).then(
          (hit) => heard(local, hit, by),
          (error: unknown) => {
            failed(local, by)
            options.onFlushError?.(error)
          },
        ),
      ),
    )
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
      if (local && now >= local.resetAt && local.sending === 0) {
        // The window is over. Hits still pending go to the next one, which the next flush starts.
        if (local.pending === 0) local = undefined
        else Object.assign(local, { shared: 0, resetAt: now + windowMs })
      }
      if (!local) {
        if (keys.size >= MAX_KEYS) return shared.hit(key, windowMs, by)
        local = { windowMs, resetAt: now + windowMs, shared: 0, sending: 0, pending: 0 }
        keys.set(key, local)
      }
      local.pending += by
      return answer(local)
    },

    async peek(key) {
      const local = keys.get(key)
      if (!local) return shared.peek(key)
      return answer(local)
    },

    async reset(key) {
      keys.delete(key)
      await shared.reset(key)
    },

    async close() {
      clearInterval(timer)
      await flushing
      await runFlush()
    },
  }
}
