import { Type, type Static } from 'typebox'
import { problemWith } from '../../http/problems.js'
import { Page, PageQuery, Timestamp, Uuid } from '../../http/schemas.js'
import { PaymentStatusSchema } from '../jobs/index.js'

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$', description: 'Retrying with the same key and body answers the first answer again for 24 hours (no second charge or refund); the same key with another body is 422 `idempotency_key_mismatch`' }),
  ),
})

/** A decline: the problem names the card issuer's reason and the job, which stays to be paid. */
export const Declined = problemWith('The payment method was declined: `decline_code` says why (Stripe\'s codes); `job_id` is the job, which stays, to be paid with POST /job/{id}/payment', {
  decline_code: Type.String({ description: 'generic_decline, insufficient_funds, ...' }),
  job_id: Uuid,
})

export const PayBody = Type.Object(
  { payment_method: Type.String({ minLength: 3, maxLength: 255, pattern: '^pm_[A-Za-z0-9_]+$', description: 'A Stripe PaymentMethod id; with PAYMENTS=local, Stripe\'s test ids (`pm_card_visa`, `pm_card_visa_chargeDeclined`, `pm_card_authenticationRequired`, ...)' }) },
  { additionalProperties: false, examples: [{ payment_method: 'pm_card_visa' }] },
)
export type PayInput = Static<typeof PayBody>

export const PaymentAccount = Type.Object(
  {
    account_id: Type.String({ description: 'The connected account at the provider (Stripe Express)' }),
    provider: Type.String(),
    details_submitted: Type.Boolean(),
    payouts_enabled: Type.Boolean({ description: 'Whether the worker can be paid; accepting a priced job needs it' }),
    currently_due: Type.Array(Type.String(), { description: 'What the provider still needs from the worker' }),
    currencies: Type.Array(Type.String(), { description: 'Currencies the account is paid in' }),
    onboarding_url: Type.Optional(Type.String({ description: 'Where the worker gives what is due (a fresh link each time it is asked for)' })),
  },
  {
    additionalProperties: false,
    examples: [{ account_id: 'acct_1PgafTB7WZ01zgkW', provider: 'stripe', details_submitted: false, payouts_enabled: false, currently_due: ['external_account'], currencies: ['EUR'], onboarding_url: 'https://connect.stripe.com/setup/s/acct_1PgafTB7WZ01zgkW/MerI6itPZo2K' }],
  },
)

export const PaymentSummary = Type.Object(
  {
    job_id: Uuid,
    role: Type.Union([Type.Literal('client'), Type.Literal('worker')], { description: 'client: a payment the caller made; worker: a payout to the caller' }),
    status: PaymentStatusSchema,
    amount: Type.Integer(),
    fee: Type.Integer(),
    currency: Type.String(),
    refunded: Type.Integer(),
    payout: Type.Optional(Type.Integer({ description: 'To the worker only: what they are (or were) paid' })),
    created_at: Timestamp,
  },
  {
    additionalProperties: false,
    examples: [{ job_id: '01938d1a-2b4c-7d6e-8f90-a1b2c3d4e5f6', role: 'client', status: 'held', amount: 4500, fee: 450, currency: 'EUR', refunded: 0, created_at: '2026-12-07T09:00:00.000Z' }],
  },
)
export const PaymentList = Page(PaymentSummary)
export const PaymentListQuery = Type.Object({ status: Type.Optional(PaymentStatusSchema), ...PageQuery }, { additionalProperties: false })
export type PaymentListInput = Static<typeof PaymentListQuery>

export const Balance = Type.Object(
  {
    balances: Type.Array(
      Type.Object({
        currency: Type.String(),
        pending: Type.Integer({ description: 'Held for the caller\'s jobs, not paid out yet (less the fee)' }),
        available: Type.Integer({ description: 'Paid to the caller\'s payout account' }),
      }),
    ),
  },
  { examples: [{ balances: [{ currency: 'EUR', pending: 4050, available: 2250 }] }] },
)

export const PlatformBalances = Type.Object(
  {
    balances: Type.Array(
      Type.Object({
        currency: Type.String(),
        escrow: Type.Integer({ description: 'Held for jobs not paid out or released' }),
        fees: Type.Integer({ description: 'The platform\'s fees earned, net of refunds' }),
        disputes: Type.Integer({ description: 'Lost to disputes after the worker was paid (negative)' }),
      }),
    ),
  },
  { examples: [{ balances: [{ currency: 'EUR', escrow: 4500, fees: 250, disputes: 0 }] }] },
)

export const RefundBody = Type.Object(
  {
    amount: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'Minor units; absent: all that is left' })),
    reason: Type.String({ minLength: 1, maxLength: 500, pattern: '\\S', description: 'Told to both parties' }),
  },
  { additionalProperties: false, examples: [{ amount: 1000, reason: 'Half the work was not done' }] },
)
export type RefundInput = Static<typeof RefundBody>

export const DisputeEvidenceBody = Type.Object(
  {
    evidence: Type.String({ minLength: 1, maxLength: 20_000, pattern: '\\S', description: 'What the platform tells the card issuer (Stripe\'s `uncategorized_text`). With PAYMENTS=local, and in Stripe\'s test mode, `winning_evidence` wins the dispute and `losing_evidence` loses it' }),
  },
  { additionalProperties: false, examples: [{ evidence: 'The work was done on 2026-12-01: photos and the client\'s messages attached to the job.' }] },
)

export const DisputeAnswer = Type.Object(
  {
    ...PaymentSummary.properties,
    dispute_status: Type.String({ description: 'The dispute at the provider after the evidence: `under_review`, or `won`/`lost` when it closed at once (test mode); the payment follows with the close' }),
  },
  { additionalProperties: false, examples: [{ job_id: '01938d1a-2b4c-7d6e-8f90-a1b2c3d4e5f6', role: 'client', status: 'disputed', amount: 4500, fee: 450, currency: 'EUR', refunded: 0, created_at: '2026-12-07T09:00:00.000Z', dispute_status: 'under_review' }] },
)

export const WebhookAnswer = Type.Object({ received: Type.Boolean(), duplicate: Type.Boolean() }, { examples: [{ received: true, duplicate: false }] })
