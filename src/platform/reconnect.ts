/** How long to wait before each attempt to make a lost connection again. */
export interface ReconnectDelays {
  /** Milliseconds before the first attempt. */
  minDelayMs: number
  /** Milliseconds between two attempts at most. */
  maxDelayMs: number
}

export const DEFAULT_RECONNECT: ReconnectDelays = { minDelayMs: 100, maxDelayMs: 5_000 }

/**
 * Milliseconds before reconnection attempt `attempt` (1, 2, ...): the least delay, doubled at each
 * attempt up to the most, of which a random half is taken off, so that processes that lost a
 * server together don't all knock at once when it comes back.
 */
export function reconnectDelay(attempt: number, delays: ReconnectDelays): number {
  const base = Math.min(delays.maxDelayMs, delays.minDelayMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30))
  return Math.round(base / 2 + (Math.random() * base) / 2)
}
