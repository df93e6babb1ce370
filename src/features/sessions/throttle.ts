import { createHash } from 'node:crypto'
import { TooManyRequestsError } from '../../errors.js'
import type { CounterStore } from '../../platform/live/index.js'
import type { SessionsConfig } from './types.js'

// Failed sign-ins: counted per account and address, and per address, before the password is
// checked (so guesses sent together are each counted before any is answered). Past either
// limit the address waits: the account stays open to its owner from anywhere else.

const HOUR_MS = 3_600_000

const digest = (text: string) => createHash('sha256').update(text).digest('base64url')
const pairKey = (email: string, address: string) => `login-failures:${digest(`${email.trim().toLowerCase()} ${address}`)}`
const addressKey = (address: string) => `login-failures-from:${digest(address)}`

export function createSignInThrottle(counters: CounterStore, config: Pick<SessionsConfig, 'loginFailuresPerHour' | 'loginFailuresPerAddressPerHour'>) {
  return {
    /** Counts a sign-in as failed until it succeeds; 429 from an address past either limit. */
    async throttle(email: string, address: string) {
      const [pair, from] = await Promise.all([counters.hit(pairKey(email, address), HOUR_MS), counters.hit(addressKey(address), HOUR_MS)])
      const over = [pair.count > config.loginFailuresPerHour ? pair : null, from.count > config.loginFailuresPerAddressPerHour ? from : null].filter((hit) => hit !== null)
      if (over.length > 0) {
        const resetMs = Math.max(...over.map((hit) => hit.resetMs))
        throw new TooManyRequestsError('Too many failed sign-ins from this address; try again later', Math.max(1, Math.ceil(resetMs / 1000)), 'too_many_failed_sign_ins')
      }
    },

    /** A sign-in that succeeded was no failure: it leaves the counts as they were before it. */
    async succeeded(email: string, address: string) {
      await Promise.all([counters.reset(pairKey(email, address)), counters.hit(addressKey(address), HOUR_MS, -1)])
    },
  }
}
