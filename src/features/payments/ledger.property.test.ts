import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { checkBalanced, DISPUTES_ACCOUNT, escrowAccount, FEES_ACCOUNT, payableAccount, cardAccount, type Entry } from '../../platform/payments/ledger.js'
import { chargeEntries, disputeEntries, disputeLostEntries, disputeWonEntries, feeOf, refundEntries, transferEntries, transferUnderDisputeEntries, type PaymentFacts } from './movements.js'

// The ledger's invariants as properties: random sequences of charges, transfers (one recorded
// after a dispute opened among them), refunds (with their reversals) and disputes (opened, then won or lost) on a few jobs, applied as the service applies them (a step that
// breaks a rule is refused and changes nothing), keep every movement summing to zero, never
// refund more than was charged, never pay a worker twice, and leave balances equal to the sum of
// the entries, with the money of each job accounted for.

type Step =
  | { kind: 'charge'; job: number; amount: number }
  | { kind: 'transfer'; job: number }
  | { kind: 'transferUnderDispute'; job: number }
  | { kind: 'refund'; job: number; amount: number }
  | { kind: 'dispute'; job: number }
  | { kind: 'won'; job: number }
  | { kind: 'lost'; job: number }

const JOBS = 3
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('charge' as const), job: fc.nat(JOBS - 1), amount: fc.integer({ min: 1, max: 1_000_000 }) }),
  fc.record({ kind: fc.constant('transfer' as const), job: fc.nat(JOBS - 1) }),
  fc.record({ kind: fc.constant('transferUnderDispute' as const), job: fc.nat(JOBS - 1) }),
  fc.record({ kind: fc.constant('refund' as const), job: fc.nat(JOBS - 1), amount: fc.integer({ min: 1, max: 1_000_000 }) }),
  fc.record({ kind: fc.constant('dispute' as const), job: fc.nat(JOBS - 1) }),
  fc.record({ kind: fc.constant('won' as const), job: fc.nat(JOBS - 1) }),
  fc.record({ kind: fc.constant('lost' as const), job: fc.nat(JOBS - 1) }),
)

describe('the ledger', () => {
  it('keeps its invariants over random sequences of holds, charges, transfers, refunds, reversals and disputes', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), fc.integer({ min: 0, max: 10_000 }), (steps, bps) => {
        const jobs: PaymentFacts[] = Array.from({ length: JOBS }, (_, i) => ({
          jobId: `job${i}`, clientId: `client${i % 2}`, workerId: `worker${i % 2}`, charged: 0, refunded: 0, fee: 0, transferred: false, disputed: false,
        }))
        // A payment's one dispute: open, then closed once (the service keeps its id).
        const dispute: ('none' | 'open' | 'won' | 'lost')[] = jobs.map(() => 'none')
        const entries: Entry[] = []
        let transfers = 0
        const apply = (movement: Entry[]) => {
          checkBalanced({ key: 'test', entries: movement })
          expect(movement.reduce((sum, e) => sum + e.amount, 0)).toBe(0)
          entries.push(...movement)
        }
        for (const s of steps) {
          const job = jobs[s.job]!
          try {
            switch (s.kind) {
              case 'charge':
                apply(chargeEntries(job, s.amount))
                Object.assign(job, { charged: s.amount, fee: feeOf(s.amount, bps) })
                break
              case 'transfer':
                apply(transferEntries(job))
                job.transferred = true
                transfers++
                break
              case 'transferUnderDispute':
                // The provider's transfer, recorded after a dispute opened (only an open one: the service's rule).
                if (dispute[s.job] !== 'open') throw new Error('no open dispute')
                apply(transferUnderDisputeEntries(job))
                job.transferred = true
                transfers++
                break
              case 'refund':
                apply(refundEntries(job, s.amount).entries)
                job.refunded += s.amount
                break
              case 'dispute':
                if (dispute[s.job] !== 'none') throw new Error('a payment is disputed once')
                apply(disputeEntries(job))
                job.disputed = true
                dispute[s.job] = 'open'
                break
              case 'won':
                if (dispute[s.job] !== 'open') throw new Error('no open dispute')
                apply(disputeWonEntries(job))
                job.disputed = false
                dispute[s.job] = 'won'
                break
              case 'lost':
                if (dispute[s.job] !== 'open') throw new Error('no open dispute')
                apply(disputeLostEntries(job).entries)
                // The chargeback stands: all of it counts as refunded, and the payment stays disputed.
                job.refunded = job.charged
                dispute[s.job] = 'lost'
                break
            }
          } catch (error) {
            // A refused step: it broke a rule, and wrote nothing.
            expect(error).toBeInstanceOf(Error)
          }
          for (const j of jobs) {
            expect(j.refunded).toBeLessThanOrEqual(j.charged)
            expect(j.fee).toBeLessThanOrEqual(j.charged)
          }
        }
        expect(transfers).toBeLessThanOrEqual(JOBS)
        const balance = (account: string) => entries.filter((e) => e.account === account).reduce((sum, e) => sum + e.amount, 0)
        // Everything sums to zero; every job's money is in escrow, with the workers, the fees, or back with the client.
        expect(entries.reduce((sum, e) => sum + e.amount, 0)).toBe(0)
        for (const job of jobs) {
          const escrow = balance(escrowAccount(job.jobId))
          expect(escrow).toBeGreaterThanOrEqual(0)
          if (job.transferred || job.disputed) expect(escrow).toBe(0)
          else expect(escrow).toBe(job.charged - job.refunded)
        }
        for (const worker of ['worker0', 'worker1']) expect(balance(payableAccount(worker))).toBeGreaterThanOrEqual(0)
        expect(balance(FEES_ACCOUNT)).toBeGreaterThanOrEqual(0)
        // The platform is out of pocket only for open disputes of payments it had paid out; a closed one, won or lost, squares it.
        const openPaidOut = jobs.reduce((sum, j, i) => sum + (dispute[i] === 'open' && j.transferred ? j.charged - j.refunded : 0), 0)
        expect(balance(DISPUTES_ACCOUNT) + openPaidOut).toBe(0)
        // The clients' cards got back exactly what was refunded or disputed.
        const paid = jobs.reduce((sum, j) => sum + j.charged, 0)
        const returned = jobs.reduce((sum, j) => sum + j.refunded + (j.disputed ? j.charged - j.refunded : 0), 0)
        expect(0 - (balance(cardAccount('client0')) + balance(cardAccount('client1'))) + 0).toBe(paid - returned)
      }),
      { numRuns: 500 },
    )
  })
})
