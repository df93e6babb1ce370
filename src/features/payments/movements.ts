// What each step of a job's payment does to the ledger: pure functions of the payment as it
// stands, each answering the movement's entries (summing to zero) or throwing when the step would
// break a rule (refund more than was charged, pay the worker twice). The service records them in
// the transaction of the payment's state change; the property tests drive them at random.

import { cardAccount, DISPUTES_ACCOUNT, escrowAccount, FEES_ACCOUNT, payableAccount, type Entry } from '../../platform/payments/ledger.js'

/** A job's payment as the ledger's steps need it. */
export interface PaymentFacts {
  jobId: string
  clientId: string
  /** Null while an open request waits for a worker: nothing is paid out (or reversed) before one takes it. */
  workerId: string | null
  /** What the client was charged (0 until then). */
  charged: number
  /** What was refunded to the client so far. */
  refunded: number
  /** The platform's fee on the whole charge. */
  fee: number
  /** Whether the worker was paid (the transfer made). */
  transferred: boolean
  disputed: boolean
}

/** The platform's fee on an amount: `bps` basis points, rounded down (the worker never loses a cent to rounding). */
export const feeOf = (amount: number, bps: number) => Math.floor((amount * bps) / 10_000)

/** The share of the fee that goes with `part` of the charge (for a transfer after a partial refund, or a refund after a transfer). */
const feeShare = (f: PaymentFacts, part: number) => (f.charged === 0 ? 0 : Math.round((f.fee * part) / f.charged))

export function chargeEntries(f: PaymentFacts, amount: number): Entry[] {
  if (f.charged !== 0) throw new Error('the job was charged already')
  if (!Number.isSafeInteger(amount) || amount <= 0) throw new Error('a charge is a positive amount')
  return [
    { account: escrowAccount(f.jobId), amount },
    { account: cardAccount(f.clientId), amount: -amount },
  ]
}

const workerOf = (f: PaymentFacts): string => {
  if (f.workerId === null) throw new Error('the job has no worker yet')
  return f.workerId
}

/** `amount` taken back from a paid-out job, from the worker and the fee in proportion, into `to`. */
function reversal(f: PaymentFacts, amount: number, to: string): { entries: Entry[]; fromWorker: number; fromFees: number } {
  const fromFees = feeShare(f, amount)
  const fromWorker = amount - fromFees
  return {
    entries: [
      { account: payableAccount(workerOf(f)), amount: -fromWorker },
      { account: FEES_ACCOUNT, amount: -fromFees },
      { account: to, amount },
    ],
    fromWorker,
    fromFees,
  }
}

/** The worker's pay and the fee, out of what escrow holds for the job. */
export function transferSplit(f: PaymentFacts): { toWorker: number; fee: number } {
  const remaining = f.charged - f.refunded
  const fee = feeShare(f, remaining)
  return { toWorker: remaining - fee, fee }
}

export function transferEntries(f: PaymentFacts): Entry[] {
  if (f.transferred) throw new Error('the worker was paid already')
  if (f.disputed) throw new Error('a disputed payment is not paid out')
  if (f.charged === 0) throw new Error('nothing was charged')
  const { toWorker, fee } = transferSplit(f)
  return [
    { account: escrowAccount(f.jobId), amount: -(toWorker + fee) },
    { account: payableAccount(workerOf(f)), amount: toWorker },
    { account: FEES_ACCOUNT, amount: fee },
  ]
}

/**
 * A transfer the provider made while a dispute opened (the dispute recorded between the call and
 * its record): the worker was paid all the same, so the chargeback, taken out of escrow as for a
 * held payout, falls on the platform instead, as for a dispute after the payout. Its won or lost
 * close then squares it as for one.
 */
export function transferUnderDisputeEntries(f: PaymentFacts): Entry[] {
  if (f.transferred) throw new Error('the worker was paid already')
  if (!f.disputed) throw new Error('the payment is not disputed')
  if (f.charged === 0) throw new Error('nothing was charged')
  const { toWorker, fee } = transferSplit(f)
  return [
    { account: DISPUTES_ACCOUNT, amount: -(toWorker + fee) },
    { account: payableAccount(workerOf(f)), amount: toWorker },
    { account: FEES_ACCOUNT, amount: fee },
  ]
}

/**
 * A refund of `amount` to the client. Before the worker is paid it comes out of escrow; after,
 * the worker's transfer and the fee are reversed in proportion.
 */
export function refundEntries(f: PaymentFacts, amount: number): { entries: Entry[]; fromWorker: number; fromFees: number } {
  if (!Number.isSafeInteger(amount) || amount <= 0) throw new Error('a refund is a positive amount')
  if (f.refunded + amount > f.charged) throw new Error('a refund can\'t be more than what was charged and not yet refunded')
  // The bank settles a disputed payment: the money went back with the chargeback already.
  if (f.disputed) throw new Error('a disputed payment is not refunded')
  if (!f.transferred) {
    return { entries: [{ account: escrowAccount(f.jobId), amount: -amount }, { account: cardAccount(f.clientId), amount }], fromWorker: 0, fromFees: 0 }
  }
  return reversal(f, amount, cardAccount(f.clientId))
}

/** A chargeback: what was not refunded goes back to the cardholder, out of escrow (the payout is held) or, once paid out, out of the platform's pocket. */
export function disputeEntries(f: PaymentFacts): Entry[] {
  if (f.disputed) throw new Error('the payment is disputed already')
  if (f.charged === 0) throw new Error('nothing was charged to dispute')
  const amount = f.charged - f.refunded
  if (amount <= 0) return []
  return [
    { account: f.transferred ? DISPUTES_ACCOUNT : escrowAccount(f.jobId), amount: -amount },
    { account: cardAccount(f.clientId), amount },
  ]
}

/**
 * A dispute won: what the chargeback took comes back, to escrow (the payout was held) or to the
 * platform, which had paid the worker already and made good the chargeback.
 */
export function disputeWonEntries(f: PaymentFacts): Entry[] {
  if (!f.disputed) throw new Error('the payment is not disputed')
  const amount = f.charged - f.refunded
  if (amount <= 0) return []
  return [
    { account: f.transferred ? DISPUTES_ACCOUNT : escrowAccount(f.jobId), amount },
    { account: cardAccount(f.clientId), amount: -amount },
  ]
}

/**
 * A dispute lost: the chargeback stands, a refund to the client in effect. Before the payout the
 * money left escrow with the chargeback and nothing more moves; after it, the worker's transfer
 * and the fee are reversed in proportion, as for a refund, making good what the platform lost.
 */
export function disputeLostEntries(f: PaymentFacts): { entries: Entry[]; fromWorker: number; fromFees: number } {
  if (!f.disputed) throw new Error('the payment is not disputed')
  const amount = f.charged - f.refunded
  if (!f.transferred || amount <= 0) return { entries: [], fromWorker: 0, fromFees: 0 }
  return reversal(f, amount, DISPUTES_ACCOUNT)
}
