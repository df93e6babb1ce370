import Stripe from 'stripe'
import { ProviderCardError, type ConnectedAccount, type IntentState, type PaymentProvider } from './index.js'
import { verifyStripeWebhook } from './stripe-signature.js'

// Stripe Connect through the official SDK: separate charges and transfers. Charges land in the
// platform's balance; a transfer pays the worker's Express account at approval. Every call that
// moves money carries the idempotency key the app derives from the job and the step.

export interface StripeOptions {
  secretKey: string
  webhookSecret: string
  /** Where the SDK sends its calls; unset: Stripe's API. */
  apiUrl?: string
  /** Milliseconds a call may take before it counts as failed (and is retried with its key). */
  timeoutMs?: number
}

function intentState(pi: Stripe.PaymentIntent): IntentState {
  const error = pi.last_payment_error
  return {
    id: pi.id,
    status: pi.status === 'requires_confirmation' || pi.status === 'requires_capture' ? 'processing' : (pi.status as IntentState['status']),
    amount: pi.amount,
    currency: pi.currency.toUpperCase(),
    client_secret: pi.client_secret,
    next_action: (pi.next_action as unknown as Record<string, unknown>) ?? null,
    failure_code: error?.code ?? null,
    decline_code: error?.decline_code ?? null,
    job_id: pi.metadata?.job_id ?? null,
  }
}

function accountState(account: Stripe.Account): ConnectedAccount {
  const currencies = new Set<string>([account.default_currency, ...((account.external_accounts?.data ?? []).map((a) => a.currency))].filter((c): c is string => typeof c === 'string').map((c) => c.toUpperCase()))
  return {
    id: account.id,
    details_submitted: account.details_submitted ?? false,
    payouts_enabled: account.payouts_enabled ?? false,
    currently_due: account.requirements?.currently_due ?? [],
    currencies: [...currencies],
  }
}

export function createStripePaymentProvider(options: StripeOptions): PaymentProvider {
  const target = options.apiUrl ? new URL(options.apiUrl) : undefined
  const stripe = new Stripe(options.secretKey, {
    // Retries are ours (the outbox's tasks), each with the same idempotency key.
    maxNetworkRetries: 0,
    timeout: options.timeoutMs ?? 20_000,
    ...(target
      ? { host: target.hostname, port: target.port || (target.protocol === 'https:' ? 443 : 80), protocol: target.protocol.replace(':', '') as 'http' | 'https' }
      : {}),
  })

  const cardError = (error: unknown): never => {
    if (error instanceof Stripe.errors.StripeInvalidRequestError && error.code === 'resource_missing' && error.param === 'payment_method') {
      throw new ProviderCardError('resource_missing', null, null)
    }
    if (error instanceof Stripe.errors.StripeCardError) {
      const pi = (error.raw as { payment_intent?: Stripe.PaymentIntent }).payment_intent
      throw new ProviderCardError(error.code ?? 'card_declined', error.decline_code ?? null, pi ? intentState(pi) : null)
    }
    throw error
  }

  return {
    name: 'stripe',

    async createPaymentIntent(input, idempotencyKey) {
      const pi = await stripe.paymentIntents
        .create(
          {
            amount: input.amount,
            currency: input.currency.toLowerCase(),
            payment_method: input.paymentMethod,
            confirm: true,
            // Funds go to the platform's balance; the worker is paid by a transfer at approval.
            transfer_group: `job_${input.jobId}`,
            metadata: { job_id: input.jobId },
            return_url: input.returnUrl,
          },
          { idempotencyKey },
        )
        .catch(cardError)
      return intentState(pi)
    },

    async retrievePaymentIntent(id) {
      return intentState(await stripe.paymentIntents.retrieve(id))
    },

    async refund(input, idempotencyKey) {
      const refund = await stripe.refunds.create({ payment_intent: input.paymentIntent, amount: input.amount, metadata: input.reason ? { reason: input.reason } : {} }, { idempotencyKey })
      return { id: refund.id }
    },

    async createTransfer(input, idempotencyKey) {
      const transfer = await stripe.transfers.create(
        { amount: input.amount, currency: input.currency.toLowerCase(), destination: input.destination, transfer_group: `job_${input.jobId}`, metadata: { job_id: input.jobId } },
        { idempotencyKey },
      )
      return { id: transfer.id }
    },

    async reverseTransfer(input, idempotencyKey) {
      const reversal = await stripe.transfers.createReversal(input.transfer, { amount: input.amount }, { idempotencyKey })
      return { id: reversal.id }
    },

    async createAccount(input, idempotencyKey) {
      const account = await stripe.accounts.create(
        { type: 'express', ...(input.email ? { email: input.email } : {}), capabilities: { transfers: { requested: true } }, metadata: { user_id: input.userId } },
        { idempotencyKey },
      )
      return accountState(account)
    },

    async createAccountLink(accountId, urls) {
      const link = await stripe.accountLinks.create({ account: accountId, refresh_url: urls.refreshUrl, return_url: urls.returnUrl, type: 'account_onboarding' })
      return { url: link.url }
    },

    async retrieveAccount(id) {
      return accountState(await stripe.accounts.retrieve(id))
    },

    async submitDisputeEvidence(disputeId, evidence) {
      const dispute = await stripe.disputes.update(disputeId, { evidence: { uncategorized_text: evidence }, submit: true })
      return { status: dispute.status }
    },

    verifyWebhook(rawBody, signature) {
      return verifyStripeWebhook(rawBody, signature, options.webhookSecret, 300)
    },
  }
}
