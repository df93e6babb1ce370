// Payments: escrow through the provider (Stripe Connect's separate charges and transfers). The
// client's money is charged into the platform's balance when a priced offer is made (or a quote
// is paid for), held there whatever the job's date, released in full when the offer ends without
// work, and paid to the worker's connected account, less the platform's fee, at approval. Every
// state change is written with its ledger movement in one transaction; every call that moves
// money carries an idempotency key made of the job and the step. The parts, by concern:
// holds.ts (offers and holds), payouts.ts (accounts, transfers, balances), disputes.ts (refunds
// and disputes), webhooks.ts (the provider's events), idempotency.ts (Idempotency-Key).

import type { LocalPaymentProvider } from '../../platform/payments/index.js'
import { createCore, type PaymentsDeps } from './core.js'
import { createDisputes } from './disputes.js'
import { createHolds } from './holds.js'
import { createIdempotency } from './idempotency.js'
import { createPayouts } from './payouts.js'
import { createWebhooks } from './webhooks.js'

export type { PaymentsDeps } from './core.js'

export function createPaymentsService(deps: PaymentsDeps) {
  const { provider } = deps
  const core = createCore(deps)
  const holds = createHolds(deps, core)
  const payouts = createPayouts(deps, core)
  /** Pays a job whose payout a won dispute let go: the jobs feature's, set once it exists. */
  let payout: ((jobId: string) => Promise<void>) | undefined
  const disputes = createDisputes(deps, core, { release: holds.release, payout: () => payout })
  const webhooks = createWebhooks(deps, core, {
    applyIntentIn: holds.applyIntentIn,
    disputeOpenedIn: disputes.openedIn,
    prepareDisputeClose: disputes.prepareClose,
    disputeClosedIn: disputes.closedIn,
    resume: disputes.resume,
  })

  // The local provider's events take the webhooks' path, minus the signature.
  const local = provider.name === 'local' && 'onEvent' in provider ? (provider as LocalPaymentProvider) : undefined
  local?.onEvent(async (event) => {
    await webhooks.receiveEvent(event)
  })

  return {
    // Offers and holds.
    charge: holds.charge,
    release: holds.release,
    applyIntent: holds.applyIntent,
    checkCurrency: holds.checkCurrency,
    pay: holds.pay,
    idempotent: createIdempotency(deps),

    // Payouts, accounts, balances.
    transfer: payouts.transfer,
    recordTransfer: payouts.recordTransfer,
    payoutHeld: payouts.payoutHeld,
    createAccount: payouts.createAccount,
    getAccount: payouts.getAccount,
    list: payouts.list,
    balance: payouts.balance,
    platformBalances: payouts.platformBalances,

    // Refunds and disputes.
    refund: disputes.refund,
    respondToDispute: disputes.respond,
    /** How a job waiting for a payout that a won dispute let go is paid (the jobs feature's payOrFail). */
    payoutWith(pay: (jobId: string) => Promise<void>) {
      payout = pay
    },

    // The provider's events.
    receiveWebhook: webhooks.receiveWebhook,
    receiveEvent: webhooks.receiveEvent,
    applyEvents: webhooks.applyEvents,
    appliedEvents: webhooks.appliedCount,

    /** The local provider's pages: the 3-D Secure step passed, onboarding done. */
    async completeLocalAction(intentId: string, secret: string): Promise<boolean> {
      return local ? local.completeAction(intentId, secret) : false
    },
    /**
     * The local onboarding link, followed: payouts are enabled at once, as the route says, not
     * when the applier's next batch reaches the account's event (which then finds it so).
     */
    async completeLocalOnboarding(accountId: string): Promise<boolean> {
      if (!local || !(await local.completeOnboarding(accountId))) return false
      await payouts.refreshAccount(accountId)
      return true
    },

    start: webhooks.start,
    stop: webhooks.stop,
  }
}

export type PaymentsService = ReturnType<typeof createPaymentsService>
