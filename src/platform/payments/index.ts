// Payment providers: what holds the client's money and pays the worker, in Stripe Connect's
// terms (separate charges and transfers). `local` behaves like Stripe's test mode with no account
// (the embedded default); `stripe` is Stripe itself, through its official SDK. The app calls
// only what is here, so the two are interchangeable and the tests run every path on both.

export type IntentStatus = 'requires_payment_method' | 'requires_action' | 'processing' | 'succeeded' | 'canceled'

/** A PaymentIntent as the app needs it. */
export interface IntentState {
  id: string
  status: IntentStatus
  amount: number
  /** Upper-case ISO 4217, as the app keeps it. */
  currency: string
  client_secret: string | null
  /** What the app must do for a `requires_action` intent (3-D Secure): Stripe's `next_action`. */
  next_action: Record<string, unknown> | null
  /** Why the last attempt failed: Stripe's error `code` (`card_declined`, ...) and `decline_code`. */
  failure_code: string | null
  decline_code: string | null
  /** The job the intent pays for (its metadata). */
  job_id: string | null
}

export interface ConnectedAccount {
  id: string
  details_submitted: boolean
  payouts_enabled: boolean
  /** What the account must still give before it is paid (Stripe's requirements.currently_due). */
  currently_due: string[]
  /** Currencies the account is paid in (upper case). */
  currencies: string[]
}

/** An event from the provider (a webhook), as the app reads it. */
export interface ProviderEvent {
  id: string
  type: string
  created: number
  data: { object: Record<string, unknown> & { id: string } }
}

/** A card error, in Stripe's terms. */
export class ProviderCardError extends Error {
  constructor(readonly code: string, readonly declineCode: string | null, readonly intent: IntentState | null) {
    super(`card error: ${code}${declineCode ? ` (${declineCode})` : ''}`)
  }
}

/** A webhook whose signature does not verify (forged, tampered or stale). */
export class WebhookSignatureError extends Error {}

export interface PaymentProvider {
  readonly name: 'local' | 'stripe'
  /**
   * Charges the client's payment method into the platform's balance (confirmed at once): a
   * succeeded intent, or one that `requires_action`, or `requires_payment_method` with the
   * decline's codes. Every call that moves money carries an idempotency key: the same key
   * answers the same intent, so a retry after a timeout never charges twice.
   */
  createPaymentIntent(input: { amount: number; currency: string; paymentMethod: string; jobId: string; returnUrl: string }, idempotencyKey: string): Promise<IntentState>
  retrievePaymentIntent(id: string): Promise<IntentState>
  /** Refunds some or all of an intent's charge back to the client. */
  refund(input: { paymentIntent: string; amount: number; reason?: string }, idempotencyKey: string): Promise<{ id: string }>
  /** Pays a connected account from the platform's balance. */
  createTransfer(input: { amount: number; currency: string; destination: string; jobId: string }, idempotencyKey: string): Promise<{ id: string }>
  /** Takes some or all of a transfer back from the connected account. */
  reverseTransfer(input: { transfer: string; amount: number }, idempotencyKey: string): Promise<{ id: string }>
  /** A worker's Express account, and a link where they give what it needs. */
  createAccount(input: { userId: string; email: string | null }, idempotencyKey: string): Promise<ConnectedAccount>
  createAccountLink(accountId: string, urls: { refreshUrl: string; returnUrl: string }): Promise<{ url: string }>
  retrieveAccount(id: string): Promise<ConnectedAccount>
  /**
   * Answers a dispute with evidence (submitted at once). Stripe's test mode, and the local
   * provider, close it as won or lost when the text holds `winning_evidence` or `losing_evidence`;
   * the outcome arrives as a `charge.dispute.closed` event.
   */
  submitDisputeEvidence(disputeId: string, evidence: string): Promise<{ status: string }>
  /** The event of a webhook, if its signature over the raw body verifies (300 s tolerance); else WebhookSignatureError. */
  verifyWebhook(rawBody: Buffer, signature: string | undefined): ProviderEvent
}

/** Stripe's test payment methods, which the local provider honours the same way. */
export const TEST_PAYMENT_METHODS = [
  'pm_card_visa',
  'pm_card_mastercard',
  'pm_card_visa_chargeDeclined',
  'pm_card_visa_chargeDeclinedInsufficientFunds',
  'pm_card_authenticationRequired',
  'pm_card_createDispute',
  'pm_card_chargeCustomerFail',
] as const

export { createLocalPaymentProvider, type LocalPaymentProvider } from './local.js'
export { createStripePaymentProvider } from './stripe.js'
