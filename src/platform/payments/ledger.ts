import { sql, type Kysely, type Transaction } from 'kysely'
import { v7 as uuidv7 } from 'uuid'
import type { Database } from '../db/index.js'

// The double-entry ledger: every movement of money is one transaction of entries that sum to zero
// per currency; entries are only ever added (a trigger refuses changes); balances are sums of
// entries, never stored. A transaction's `key` (the job and the step) makes each movement happen
// once, however often it is recorded. Debits are positive, credits negative: an asset account
// (escrow, a worker's payable) holds a positive balance, the client's card a negative one (what
// it paid), the platform's fees a positive one.

declare module '../db/types.js' {
  interface Database {
    ledger_transactions: { id: string; key: string; kind: LedgerKind; job_id: string | null; at: Date }
    ledger_entries: { id: import('kysely').Generated<string>; transaction_id: string; account: string; currency: string; amount: number }
  }
}

export type LedgerKind = 'charge' | 'transfer' | 'refund' | 'reversal' | 'dispute' | 'payout'

export interface Entry {
  account: string
  /** Minor units; positive debits the account, negative credits it. */
  amount: number
}

export interface Movement {
  key: string
  kind: LedgerKind
  jobId: string | null
  currency: string
  entries: Entry[]
  at: Date
}

export const cardAccount = (clientId: string) => `card:${clientId}`
export const escrowAccount = (jobId: string) => `escrow:${jobId}`
export const payableAccount = (workerId: string) => `payable:${workerId}`
export const FEES_ACCOUNT = 'platform:fees'
export const DISPUTES_ACCOUNT = 'platform:disputes'

type Db = Kysely<Database> | Transaction<Database>

/** Refuses a movement that does not balance: what the ledger may never hold. */
export function checkBalanced(movement: Pick<Movement, 'entries' | 'key'>): void {
  const sum = movement.entries.reduce((total, e) => total + e.amount, 0)
  if (sum !== 0 || movement.entries.some((e) => !Number.isSafeInteger(e.amount))) throw new Error(`ledger movement ${movement.key} does not balance (${sum})`)
}

/**
 * Records a movement in the caller's transaction (the one that changes the payment's state).
 * Answers false when a movement with its key was recorded already: nothing is written twice.
 */
export async function record(db: Db, movement: Movement): Promise<boolean> {
  checkBalanced(movement)
  const entries = movement.entries.filter((e) => e.amount !== 0)
  const id = uuidv7()
  const inserted = await db
    .insertInto('ledger_transactions')
    .values({ id, key: movement.key, kind: movement.kind, job_id: movement.jobId, at: movement.at })
    .onConflict((oc) => oc.column('key').doNothing())
    .returning('id')
    .executeTakeFirst()
  if (!inserted) return false
  if (entries.length > 0) {
    await db.insertInto('ledger_entries').values(entries.map((e) => ({ transaction_id: id, account: e.account, currency: movement.currency, amount: e.amount }))).execute()
  }
  return true
}

/** An account's balance in one currency: the sum of its entries. */
export async function balanceOf(db: Db, account: string, currency: string): Promise<number> {
  const row = await db
    .selectFrom('ledger_entries')
    .select(sql<string>`coalesce(sum(amount), 0)`.as('total'))
    .where('account', '=', account)
    .where('currency', '=', currency)
    .executeTakeFirstOrThrow()
  return Number(row.total)
}

/** Balances per currency of every account whose name starts with `prefix` (all escrows: `escrow:`). */
export async function balancesUnder(db: Db, prefix: string): Promise<Record<string, number>> {
  const rows = await db
    .selectFrom('ledger_entries')
    .select(['currency', sql<string>`sum(amount)`.as('total')])
    .where('account', 'like', `${prefix.replace(/[\\%_]/g, '\\$&')}%`)
    .groupBy('currency')
    .orderBy('currency')
    .execute()
  return Object.fromEntries(rows.map((r) => [r.currency, Number(r.total)]))
}
