// Payouts: workers' connected accounts, the transfer of the worker's share at approval (recorded
// in the transaction that marks the job PAID), and what the parties and admins read of the money.

import type { Transaction } from 'kysely'
import { Type } from 'typebox'
import { ForbiddenError, NotFoundError } from '../../errors.js'
import { decodeCursor, pageOf } from '../../http/cursor.js'
import type { Database } from '../../platform/db/index.js'
import { balanceOf, balancesUnder, DISPUTES_ACCOUNT, FEES_ACCOUNT, payableAccount } from '../../platform/payments/ledger.js'
import type { JobRow, PaymentStatus } from '../jobs/index.js'
import { factsOf, type Core, type PaymentsDeps } from './core.js'
import { transferEntries, transferSplit, transferUnderDisputeEntries } from './movements.js'
import type { AccountRow, JobPaymentRow } from './store.js'

const PaymentCursor = Type.Object({ id: Type.String({ format: 'uuid' }) })

const payable = (job: JobPaymentRow) => (job.payment_status === 'held' || job.payment_status === 'partially_refunded') && !job.payment_disputed && job.payment_charged > job.payment_refunded

const accountView = (row: AccountRow, url?: string) => ({
  account_id: row.account_id,
  provider: row.provider,
  details_submitted: row.details_submitted,
  payouts_enabled: row.payouts_enabled,
  currently_due: row.currently_due,
  currencies: row.currencies,
  ...(url ? { onboarding_url: url } : {}),
})

export function createPayouts(deps: PaymentsDeps, core: Core) {
  const { db, store, provider, clock, log, settings } = deps
  const { move, paymentView, providerId } = core

  /** An account's state as the provider tells it now, written over ours. */
  const refreshAccount = async (accountId: string) => store.updateAccount(accountId, await provider.retrieveAccount(accountId), clock.now())

  return {
    refreshAccount,

    /**
     * Pays the worker their share of the job's money (the transfer), with its key: the same
     * transfer whatever the retries. Undefined while it can't be paid (disputed, or nothing held).
     */
    async transfer(row: JobRow): Promise<{ transferId: string } | undefined> {
      const job = await store.job(row.id)
      if (!job) return undefined
      if (job.payment_transfer_id) return { transferId: job.payment_transfer_id }
      if (!payable(job)) return undefined
      const account = job.worker_id ? await store.account(job.worker_id) : undefined
      if (!account?.payouts_enabled) throw new Error(`the worker of job ${job.id} can't be paid yet (no payouts)`)
      const { toWorker } = transferSplit(factsOf(job))
      const transfer = await provider.createTransfer({ amount: toWorker, currency: job.price_currency!, destination: account.account_id, jobId: job.id }, `job:${job.id}:transfer`)
      // A broken answer is not a transfer: the payout is tried again, the job never PAID on it.
      if (!providerId((transfer as { id?: unknown } | null)?.id)) throw new Error(`the payment provider answered the transfer of job ${job.id} with no transfer id`)
      return { transferId: transfer.id }
    },

    /**
     * The transfer made: recorded in the transaction that marks the job PAID (pushed with it, as
     * job.updated). A dispute recorded since the transfer was asked for does not undo it: the
     * worker was paid, the payment stays disputed, and the chargeback falls on the platform.
     */
    async recordTransfer(trx: Transaction<Database>, jobId: string, transferId: string): Promise<void> {
      const job = await store.lockJob(trx, jobId)
      if (!job || job.payment_transfer_id) return
      const open = job.payment_disputed && job.payment_status === 'disputed'
      await move(trx, job, 'transfer', `job:${jobId}:transfer`, open ? transferUnderDisputeEntries(factsOf(job)) : transferEntries(factsOf(job)))
      await store.setPayment(trx, jobId, { payment_status: open ? 'disputed' : 'paid_out', payment_transfer_id: transferId })
    },

    /** Whether the job's payout waits on a dispute (its payment task then rests until the dispute is won). */
    async payoutHeld(jobId: string): Promise<boolean> {
      return (await store.job(jobId))?.payment_disputed === true
    },

    /** The worker's connected account, made once, with a link to give what it needs. */
    async createAccount(userId: string): Promise<{ created: boolean; account: ReturnType<typeof accountView> }> {
      if (!(await deps.hasRole(userId, 'WORKER'))) throw new ForbiddenError('Only workers are paid out: the caller has no WORKER role', 'forbidden')
      let row = await store.account(userId)
      const created = !row
      if (!row) {
        const state = await provider.createAccount({ userId, email: await deps.emailOf(userId) }, `user:${userId}:account`)
        const now = clock.now()
        const { id: accountId, ...fields } = state
        row = await store.insertAccount({ user_id: userId, provider: provider.name, account_id: accountId, ...fields, created_at: now, updated_at: now })
      }
      const link = row.payouts_enabled ? undefined : await provider.createAccountLink(row.account_id, { refreshUrl: `${settings.publicUrl}/payments/account/refresh`, returnUrl: `${settings.publicUrl}/payments/account/return` })
      return { created, account: accountView(row, link?.url) }
    },

    async getAccount(userId: string) {
      const row = await store.account(userId)
      if (!row) throw new NotFoundError('The caller has no payout account yet: POST /payments/account makes one', 'payment_account_not_found')
      const fresh = await refreshAccount(row.account_id).catch((error: unknown) => {
        log.warn({ err: error }, 'could not read the connected account from the provider')
        return row
      })
      return accountView(fresh ?? row)
    },

    async list(userId: string, query: { status?: PaymentStatus; limit?: number; cursor?: string }) {
      const limit = query.limit ?? 20
      const after = decodeCursor(query.cursor, PaymentCursor)
      const rows = await store.list({ userId, status: query.status, limit, beforeId: after?.id })
      const page = pageOf(rows, limit, (last) => ({ id: last.id }))
      return { items: page.items.map((row) => paymentView(row, userId)), next_cursor: page.next_cursor }
    },

    /** A worker's money: pending (held for jobs not paid out) and available (paid to their account), per currency. */
    async balance(userId: string) {
      const pending: Record<string, number> = {}
      for (const job of await store.pendingFor(userId)) {
        pending[job.price_currency!] = (pending[job.price_currency!] ?? 0) + transferSplit(factsOf(job)).toWorker
      }
      const currencies = new Set([...Object.keys(pending), ...Object.keys(await balancesUnder(db, payableAccount(userId)))])
      const available: Record<string, number> = {}
      for (const currency of currencies) available[currency] = await balanceOf(db, payableAccount(userId), currency)
      return { balances: [...currencies].sort().map((currency) => ({ currency, pending: pending[currency] ?? 0, available: available[currency] ?? 0 })) }
    },

    /** The platform's money in the ledger: escrow held for jobs, fees earned, disputes lost. */
    async platformBalances(adminId: string) {
      if (!(await deps.isAdmin(adminId))) throw new ForbiddenError('Only admins see the platform\'s balances', 'not_an_admin')
      const [escrow, fees, disputes] = await Promise.all([balancesUnder(db, 'escrow:'), balancesUnder(db, FEES_ACCOUNT), balancesUnder(db, DISPUTES_ACCOUNT)])
      const currencies = [...new Set([...Object.keys(escrow), ...Object.keys(fees), ...Object.keys(disputes)])].sort()
      return { balances: currencies.map((currency) => ({ currency, escrow: escrow[currency] ?? 0, fees: fees[currency] ?? 0, disputes: disputes[currency] ?? 0 })) }
    },
  }
}
