// Time as the app sees it. Everything time-driven (offer expiry, reminders, auto-approval) reads
// the clock given to buildApp, so tests move time forward instead of sleeping.

export interface Clock {
  now(): Date
}

export const systemClock: Clock = { now: () => new Date() }

/** A clock that stands still until told to move: for tests and simulations. */
export interface ManualClock extends Clock {
  set(to: Date): void
  advance(ms: number): Date
}

export function manualClock(start: Date = new Date()): ManualClock {
  let current = start.getTime()
  return {
    now: () => new Date(current),
    set(to) {
      current = to.getTime()
    },
    advance(ms) {
      current += ms
      return new Date(current)
    },
  }
}
