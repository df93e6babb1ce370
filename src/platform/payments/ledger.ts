import { v7 as uuidv7 } from 'uuid'
import type { Kysely, Selectable, Transaction } from 'kysely'
import type { Database } from '../db/index.js'

declare module '../db/types.js' {
  interface Database {
    payments: PaymentsTable
  }
}

interface PaymentsTable {
  id: string
  job_id: string
  kind: 'charge' | 'payout'
  amount: number
  currency: string
  /** The account the money goes into. */
  debit_account: string
  /** The account the money comes out of. */
  credit_account: string
  provider: string
  provider_ref: string
  created_at: Date
}

export type LedgerRow = Selectable<PaymentsTable>

export const clientAccount = (userId: string) => `client:${userId}`
export const workerAccount = (userId: string) => `worker:${userId}`
export const escrowAccount = (jobId: string) => `escrow:${jobId}`

/**
 * Records a settled job payment, double entry: the client's money into the job's escrow (the
 * charge), and out of escrow to the worker (the payout). Call inside the transaction that marks
 * the job PAID. A job is settled at most once (a unique key on job and kind).
 */
export async function recordSettlement(
  db: Kysely<Database> | Transaction<Database>,
  settlement: { jobId: string; clientId: string; workerId: string; amount: number; currency: string; provider: string; reference: string; at: Date },
): Promise<LedgerRow[]> {
  const { jobId, amount, currency, provider, reference, at } = settlement
  const common = { job_id: jobId, amount, currency, provider, provider_ref: reference, created_at: at }
  return db
    .insertInto('payments')
    .values([
      { id: uuidv7(), kind: 'charge', debit_account: escrowAccount(jobId), credit_account: clientAccount(settlement.clientId), ...common },
      { id: uuidv7(), kind: 'payout', debit_account: workerAccount(settlement.workerId), credit_account: escrowAccount(jobId), ...common },
    ])
    .returningAll()
    .execute()
}

/** An account's balance in one currency: what went in (debits) less what came out (credits). */
export async function balanceOf(db: Kysely<Database>, account: string, currency: string): Promise<number> {
  const [debits, credits] = await Promise.all([
    db.selectFrom('payments').select((eb) => eb.fn.coalesce(eb.fn.sum<number>('amount'), eb.lit(0)).as('total')).where('debit_account', '=', account).where('currency', '=', currency).executeTakeFirstOrThrow(),
    db.selectFrom('payments').select((eb) => eb.fn.coalesce(eb.fn.sum<number>('amount'), eb.lit(0)).as('total')).where('credit_account', '=', account).where('currency', '=', currency).executeTakeFirstOrThrow(),
  ])
  return Number(debits.total) - Number(credits.total)
}
