import bcrypt from 'bcrypt'
import pLimit from 'p-limit'
import { TooManyRequestsError } from '../errors.js'

export interface PasswordHasher {
  hash(password: string): Promise<string>
  /** Compares against the hash; with no hash, spends the same time on a dummy and answers false. */
  verify(password: string, hash: string | null): Promise<boolean>
}

/**
 * bcrypt on libuv's thread pool, with at most `concurrency` hashes in flight and a bounded line
 * behind them: a flood of sign-ins waits its turn (or is told to come back) instead of taking
 * every core from the other routes.
 */
export function createPasswordHasher(options: { cost: number; concurrency: number; maxWaiting?: number }): PasswordHasher {
  const limit = pLimit(options.concurrency)
  const maxWaiting = options.maxWaiting ?? options.concurrency * 200
  // A hash to compare against when the account does not exist, so that an unknown email costs
  // as much time as a wrong password.
  const dummy = bcrypt.hash('not a real password, only a timing twin', options.cost)

  const run = <T>(work: () => Promise<T>): Promise<T> => {
    if (limit.pendingCount >= maxWaiting) {
      return Promise.reject(new TooManyRequestsError('Too many sign-ins are being checked right now; try again shortly', 1, 'busy'))
    }
    return limit(work)
  }

  return {
    hash: (password) => run(() => bcrypt.hash(password, options.cost)),
    verify: async (password, hash) => {
      const against = hash ?? (await dummy)
      const ok = await run(() => bcrypt.compare(password, against))
      return ok && hash !== null
    },
  }
}
