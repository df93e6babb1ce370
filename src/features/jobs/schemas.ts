import { Type, type Static } from 'typebox'
import { Page, PageQuery, Timestamp, Uuid } from '../../http/schemas.js'
import { JOB_STATUSES } from './workflow.js'

export const JobStatusSchema = Type.Union(
  [
    Type.Literal('REQUESTED'),
    Type.Literal('ACCEPTED'),
    Type.Literal('DECLINED'),
    Type.Literal('CANCELED'),
    Type.Literal('EXPIRED'),
    Type.Literal('STARTED'),
    Type.Literal('COMPLETED'),
    Type.Literal('PENDING_PAYMENT'),
    Type.Literal('PAID'),
  ],
  { description: `Where the job is in its workflow: one of ${JOB_STATUSES.join(', ')}` },
)

export const Money = Type.Object(
  {
    amount: Type.Integer({ minimum: 1, maximum: 2_147_483_647, description: 'In minor units (cents): 2500 is 25.00' }),
    currency: Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217 code, such as EUR or USD' }),
  },
  { additionalProperties: false },
)
export type MoneyInput = Static<typeof Money>

export const JobLocation = Type.Object(
  {
    lat: Type.Number({ minimum: -90, maximum: 90 }),
    lon: Type.Number({ minimum: -180, maximum: 180 }),
    address: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
  },
  { additionalProperties: false },
)

export const PaymentStatusSchema = Type.Union([
  Type.Literal('requires_payment_method'), Type.Literal('requires_action'), Type.Literal('held'), Type.Literal('captured'), Type.Literal('paid_out'),
  Type.Literal('released'), Type.Literal('refunded'), Type.Literal('partially_refunded'), Type.Literal('disputed'), Type.Literal('failed'),
], {
  description: 'requires_payment_method: the client pays (POST /job/{id}/payment); requires_action: the client completes 3-D Secure (`next_action`); held: the money is in escrow; captured: approved, the payout under way; paid_out: the worker was paid; released: given back in full (declined, canceled before the work, expired); refunded / partially_refunded: by an admin; disputed: the client\'s bank disputes it, the payout is held; failed: declined (`failure_code`), pay again',
})

export const JobPayment = Type.Object(
  {
    status: PaymentStatusSchema,
    amount: Type.Integer({ description: 'The price, in minor units' }),
    fee: Type.Integer({ description: 'The platform\'s fee out of it (PLATFORM_FEE_BPS); the worker is paid the rest' }),
    currency: Type.String({ pattern: '^[A-Z]{3}$' }),
    refunded: Type.Integer({ description: 'Refunded to the client so far' }),
    client_secret: Type.Optional(Type.String({ description: 'To the client only, while `requires_action`: the PaymentIntent\'s client secret, for Stripe.js (handleNextAction)' })),
    next_action: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'To the client only, while `requires_action`: what the app must do (Stripe\'s `next_action`; with PAYMENTS=local, a `redirect_to_url` whose URL the app POSTs to pass the check)' })),
    failure_code: Type.Optional(Type.String({ description: 'Why the last attempt failed: `card_declined`, ...' })),
    decline_code: Type.Optional(Type.String({ description: 'The card issuer\'s reason: `generic_decline`, `insufficient_funds`, ...' })),
  },
  { additionalProperties: false },
)

export const StatusEntry = Type.Object({
  status: JobStatusSchema,
  by: Type.Union([Uuid, Type.Null()], { description: 'The user who moved the job; null when time or the payment provider did' }),
  at: Timestamp,
  reason: Type.Optional(Type.String()),
})

export const JobWarning = Type.Object({
  code: Type.String({ description: 'worker_has_no_picture' }),
  detail: Type.String(),
})

export const Job = Type.Object(
  {
    id: Uuid,
    client_id: Uuid,
    worker_id: Type.Union([Uuid, Type.Null()], { description: 'The worker; null while an open request waits for one of the alerted workers to take it' }),
    open_request: Type.Boolean({ description: 'Posted to a category and a place (without worker_id): the workers near it were alerted, and the first to accept it became its worker' }),
    title: Type.String(),
    description: Type.String(),
    status: JobStatusSchema,
    price: Type.Union([Money, Type.Null()], {
      description: 'What the client pays: the offer\'s price, or for an offer without one the worker\'s quote (POST /job/{id}/quote); null until there is one',
    }),
    payment: Type.Union([JobPayment, Type.Null()], { description: 'The escrow of the price; null while the job has none' }),
    scheduled_at: Type.Union([Timestamp, Type.Null()]),
    location: Type.Union([JobLocation, Type.Null()]),
    category_id: Type.Union([Uuid, Type.Null()], { description: 'The category of work (GET /categories); a retired one stays on the jobs that have it' }),
    expires_at: Timestamp,
    created_at: Timestamp,
    updated_at: Timestamp,
    version: Type.Integer({ description: 'Bumped by every change; the ETag, for If-Match' }),
    status_log: Type.Array(StatusEntry, { description: 'Every move, oldest first' }),
    warnings: Type.Optional(Type.Array(JobWarning, { description: 'Things the client should know about the offer just made' })),
  },
  {
    $id: 'Job',
    examples: [
      {
        id: '01938d1a-2b4c-7d6e-8f90-a1b2c3d4e5f6',
        client_id: '01938d0e-6a1b-7c3d-8e4f-5a6b7c8d9e0f',
        worker_id: '01938d0e-5f3a-7c2e-9b1a-2f6d8e4c7a10',
        open_request: false,
        title: 'Fix a leaking tap',
        description: 'Kitchen tap, drips all night.',
        status: 'ACCEPTED',
        price: { amount: 4500, currency: 'EUR' },
        payment: { status: 'held', amount: 4500, fee: 450, currency: 'EUR', refunded: 0 },
        scheduled_at: '2026-12-10T14:00:00.000Z',
        location: { lat: 48.8566, lon: 2.3522, address: '12 rue de Rivoli, Paris' },
        category_id: null,
        expires_at: '2026-12-10T09:00:00.000Z',
        created_at: '2026-12-07T09:00:00.000Z',
        updated_at: '2026-12-07T10:15:00.000Z',
        version: 2,
        status_log: [
          { status: 'REQUESTED', by: '01938d0e-6a1b-7c3d-8e4f-5a6b7c8d9e0f', at: '2026-12-07T09:00:00.000Z' },
          { status: 'ACCEPTED', by: '01938d0e-5f3a-7c2e-9b1a-2f6d8e4c7a10', at: '2026-12-07T10:15:00.000Z' },
        ],
      },
    ],
  },
)
export type JobView = Static<typeof Job>

const EXPIRES_MIN = 3600
const EXPIRES_MAX = 30 * 24 * 3600
export const EXPIRES_DEFAULT = 72 * 3600

// One object for create and edit (no anyOf: its error messages say little, and it invites the
// coercion pitfall). The service tells them apart by `id` and checks what each needs.
export const JobBody = Type.Object(
  {
    id: Type.Optional(Type.String({ format: 'uuid', description: 'An offer of the caller\'s to edit while REQUESTED; absent to make a new offer' })),
    worker_id: Type.Optional(Type.String({ format: 'uuid', description: 'A new offer to one worker: a user with the WORKER role. Without it, a new job is an open request, which needs `category_id` and `location`' })),
    title: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: '\\S', description: 'Required for a new offer; 1 to 200 characters' })),
    description: Type.Optional(Type.String({ maxLength: 5000, description: 'Up to 5000 characters' })),
    price: Type.Optional(Type.Union([Money, Type.Null()], { description: 'Null takes a price off an offer' })),
    payment_method: Type.Optional(Type.String({ minLength: 3, maxLength: 255, pattern: '^pm_[A-Za-z0-9_]+$', description: 'With a priced new offer: the payment method that pays it (a Stripe PaymentMethod id; with PAYMENTS=local, Stripe\'s test ids such as `pm_card_visa`). The price is charged into escrow at once; a decline is 402 with `decline_code`, the offer staying to be paid with POST /job/{id}/payment' })),
    scheduled_at: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'When the work is to be done; in the future' })),
    location: Type.Optional(Type.Union([JobLocation, Type.Null()], { description: 'Where the work is to be done' })),
    category_id: Type.Optional(Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'An offered category (GET /categories): unknown 400 `category_not_found`, retired 409 `category_retired`' })),
    expires_in: Type.Optional(Type.Integer({ minimum: EXPIRES_MIN, maximum: EXPIRES_MAX, description: `Seconds the worker has to answer, from ${EXPIRES_MIN} (1 hour) to ${EXPIRES_MAX} (30 days); default ${EXPIRES_DEFAULT} (72 hours). On an edit, counted from the edit` })),
  },
  {
    additionalProperties: false,
    examples: [
      { worker_id: '01938d0e-5f3a-7c2e-9b1a-2f6d8e4c7a10', title: 'Fix a leaking tap', price: { amount: 4500, currency: 'EUR' }, payment_method: 'pm_card_visa', scheduled_at: '2026-12-10T14:00:00.000Z' },
      { id: '01938d1a-2b4c-7d6e-8f90-a1b2c3d4e5f6', price: { amount: 5000, currency: 'EUR' } },
    ],
  },
)
export type JobInput = Static<typeof JobBody>

export const StatusBody = Type.Object(
  {
    status: JobStatusSchema,
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 1000, pattern: '\\S', description: 'Required to cancel an ACCEPTED job; optional for a decline or a cancel' })),
    price: Type.Optional(
      Type.Object(Money.properties, {
        additionalProperties: false,
        deprecated: true,
        description: 'Never taken: a job\'s price is the offer\'s or its worker\'s quote (POST /job/{id}/quote), and an approval pays it as it stands. With PENDING_PAYMENT it is 400 `approval_takes_no_price`, with any other status 400 `price_not_expected`',
      }),
    ),
  },
  { additionalProperties: false },
)
export type StatusInput = Static<typeof StatusBody>

export const QuoteBody = Type.Object(
  { price: Type.Object(Money.properties, { additionalProperties: false, description: 'The worker\'s price for the job' }) },
  { additionalProperties: false },
)
export type QuoteInput = Static<typeof QuoteBody>

export const IfMatchHeaders = Type.Object({
  'if-match': Type.Optional(Type.String({ maxLength: 200, description: 'The ETag of the job as read (its `version` in quotes: `"3"`). A stale one is answered 412 with the job as it is now. Required to accept (428 without)' })),
})

export const OfferHeaders = Type.Object({
  ...IfMatchHeaders.properties,
  'idempotency-key': Type.Optional(
    Type.String({ minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$', description: 'For a new offer: retrying with the same key and body answers the first answer again for 24 hours (one offer, one charge); another body is 422 `idempotency_key_mismatch`' }),
  ),
})

export const JobListQuery = Type.Object(
  {
    status: Type.Optional(JobStatusSchema),
    role: Type.Optional(Type.Union([Type.Literal('CLIENT'), Type.Literal('WORKER')], { description: 'Only jobs where the caller is the client, or the worker' })),
    ...PageQuery,
  },
  { additionalProperties: false },
)
export type JobListInput = Static<typeof JobListQuery>
export const JobList = Page(Job)
