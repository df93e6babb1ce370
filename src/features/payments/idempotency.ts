// Our own money-moving routes honour Idempotency-Key the way Stripe does.

import { createHash } from 'node:crypto'
import { ConflictError, UnprocessableError } from '../../errors.js'
import type { Clock } from '../../platform/clock.js'
import type { PaymentsStore } from './store.js'

/** How long an Idempotency-Key answers its first answer again (Stripe's 24 hours). */
const IDEMPOTENCY_MS = 24 * 3_600_000

export function createIdempotency(deps: { store: PaymentsStore; clock: Clock }) {
  const { store, clock } = deps

  /**
   * Runs a money-moving request once per Idempotency-Key, the way Stripe does: the same key and
   * body within 24 hours answer the first answer again; another body is 422. A request that
   * fails leaves the key free, so that its retry runs (and, its provider calls keyed by the job
   * and the step, still moves money once).
   */
  return async function idempotent<T>(userId: string, key: string | undefined, route: string, body: unknown, run: () => Promise<{ status: number; body: T }>): Promise<{ status: number; body: T }> {
    if (key === undefined) return run()
    const hash = createHash('sha256').update(`${route}\n${JSON.stringify(body ?? null)}`).digest('hex')
    const since = new Date(clock.now().getTime() - IDEMPOTENCY_MS)
    for (let attempt = 0; attempt < 2; attempt++) {
      const existing = await store.idempotent(userId, key)
      if (existing && existing.created_at >= since) {
        if (existing.body_hash !== hash || existing.route !== route) throw new UnprocessableError('This Idempotency-Key was used with a different request in the last 24 hours: use a new key', 'idempotency_key_mismatch')
        if (existing.status_code === null) throw new ConflictError('A request with this Idempotency-Key is still being handled: retry in a moment', 'idempotency_key_in_use')
        const answer = typeof existing.answer === 'string' ? JSON.parse(existing.answer) : existing.answer
        return { status: existing.status_code, body: answer as T }
      }
      if (await store.claimIdempotent({ user_id: userId, key, route, body_hash: hash, created_at: clock.now() }, since)) {
        try {
          const answer = await run()
          await store.answerIdempotent(userId, key, answer.status, answer.body)
          return answer
        } catch (error) {
          await store.releaseIdempotent(userId, key)
          throw error
        }
      }
    }
    throw new ConflictError('A request with this Idempotency-Key is still being handled: retry in a moment', 'idempotency_key_in_use')
  }
}
