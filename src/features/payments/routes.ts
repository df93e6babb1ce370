import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { IdParams } from '../../http/schemas.js'
import { adminContext, adminOnly } from '../admin/index.js'
import { Job } from '../jobs/index.js'
import { Balance, Declined, DisputeAnswer, DisputeEvidenceBody, IdempotencyHeaders, PayBody, PaymentAccount, PaymentList, PaymentListQuery, PaymentSummary, PlatformBalances, RefundBody, WebhookAnswer } from './schemas.js'

const tags = ['payments']

export async function paymentsRoutes(fastify: FastifyInstance) {
  const { payments, jobs } = fastify

  await signedIn(fastify, (app) => {
    app.post('/job/:id/payment', {
      schema: {
        tags,
        operationId: 'payJob',
        summary: 'Pay for a job (again)',
        description: [
          'The job\'s client pays its price into escrow with a payment method -> 200 job with `payment.status` `held` (or `requires_action`: the app completes 3-D Secure with `payment.next_action` and `client_secret`). For an offer whose card was declined, or a worker\'s quote the client accepts to pay.',
          'A decline is 402 `card_declined` with Stripe\'s `decline_code` (`generic_decline`, `insufficient_funds`, ...); the job stays, waiting for another payment method. A payment that is held, or a job past approval, is 409 `payment_not_retryable`; the worker is 403, anyone else 404. `Idempotency-Key` is honoured.',
        ].join('\n\n'),
        security: bearerSecurity,
        headers: IdempotencyHeaders,
        params: IdParams,
        body: PayBody,
        response: { 200: Job, ...problemResponses(401, 403, 404, 409, 422), 402: Declined },
      },
    }, async (request, reply) => {
      const { userId } = request.auth
      const answer = await payments.idempotent(userId, request.headers['idempotency-key'], `POST /job/${request.params.id}/payment`, request.body, async () => {
        await payments.pay(userId, request.params.id, request.body.payment_method)
        return { status: 200, body: await jobs.get(userId, request.params.id) }
      })
      return reply.code(answer.status as 200).header('etag', jobs.etagOf(answer.body.version)).send(answer.body)
    })

    app.post('/payments/account', {
      schema: {
        tags,
        operationId: 'createPaymentAccount',
        summary: 'Set up the caller\'s payouts',
        description: 'A WORKER\'s connected account (Stripe Express), made once -> 201, then 200 with the same account. `onboarding_url` (while payouts are not enabled) is where the worker gives what is due; with PAYMENTS=local, following it enables payouts at once. A worker without payouts enabled can\'t accept priced jobs (409 `payouts_not_enabled`).',
        security: bearerSecurity,
        response: { 200: PaymentAccount, 201: PaymentAccount, ...problemResponses(401, 403) },
      },
    }, async (request, reply) => {
      const { created, account } = await payments.createAccount(request.auth.userId)
      return reply.code(created ? 201 : 200).send(account)
    })

    app.get('/payments/account', {
      schema: {
        tags,
        operationId: 'getPaymentAccount',
        summary: 'The caller\'s payout account',
        description: 'Its state at the provider: `details_submitted`, `payouts_enabled`, and what is `currently_due`. 404 `payment_account_not_found` before POST /payments/account.',
        security: bearerSecurity,
        response: { 200: PaymentAccount, ...problemResponses(401, 404) },
      },
    }, async (request) => payments.getAccount(request.auth.userId))

    app.get('/payments', {
      schema: {
        tags,
        operationId: 'listPayments',
        summary: 'The caller\'s payments and payouts',
        description: 'The jobs the caller pays for (`role` client) and is paid for (`role` worker), newest first; `status` filters.',
        security: bearerSecurity,
        querystring: PaymentListQuery,
        response: { 200: PaymentList, ...problemResponses(401) },
      },
    }, async (request) => payments.list(request.auth.userId, request.query))

    app.get('/payments/balance', {
      schema: {
        tags,
        operationId: 'getPaymentBalance',
        summary: 'The caller\'s money as a worker',
        description: 'Per currency: `pending`, held for the caller\'s jobs and not paid out yet (less the platform\'s fee), and `available`, paid to the caller\'s payout account.',
        security: bearerSecurity,
        response: { 200: Balance, ...problemResponses(401) },
      },
    }, async (request) => payments.balance(request.auth.userId))
  })

  // The admin's routes: refused (403) to anyone else before their body is read.
  await adminOnly(fastify, (app) => {
    app.post('/admin/jobs/:id/refund', {
      schema: {
        tags: ['admin'],
        operationId: 'refundJob',
        summary: 'Refund a job\'s payment',
        description: 'ADMIN only. Refunds `amount` (all that is left without it) to the client\'s card; once the worker was paid, their transfer and the platform\'s fee are reversed in proportion. Both parties are told, with `reason`. More than is left is 400 `refund_too_large`; nothing charged (or disputed) 409 `nothing_to_refund`. `Idempotency-Key` is honoured.',
        security: bearerSecurity,
        headers: IdempotencyHeaders,
        params: IdParams,
        body: RefundBody,
        response: { 200: PaymentSummary, ...problemResponses(401, 403, 404, 409, 422) },
      },
    }, async (request, reply) => {
      const { userId } = request.auth
      const answer = await payments.idempotent(userId, request.headers['idempotency-key'], `POST /admin/jobs/${request.params.id}/refund`, request.body, async () => ({
        status: 200,
        body: await payments.refund(adminContext(request), request.params.id, request.body),
      }))
      return reply.code(answer.status as 200).send(answer.body)
    })

    app.post('/admin/jobs/:id/dispute', {
      schema: {
        tags: ['admin'],
        operationId: 'answerJobDispute',
        summary: 'Answer a job\'s dispute with evidence',
        description: 'ADMIN only. Submits `evidence` for the open dispute of the job\'s payment to the provider. Its outcome arrives as the dispute\'s close (`charge.dispute.closed`): won, the payment is held again (or paid out, or released for a job that ended without work); lost, it is `refunded`, and a worker paid already gives their share back. Both parties are told either way. No open dispute: 409 `no_open_dispute`. Audited.',
        security: bearerSecurity,
        params: IdParams,
        body: DisputeEvidenceBody,
        response: { 200: DisputeAnswer, ...problemResponses(401, 403, 404, 409) },
      },
    }, async (request) => payments.respondToDispute(adminContext(request), request.params.id, request.body.evidence))

    app.get('/admin/payments/balances', {
      schema: {
        tags: ['admin'],
        operationId: 'getPlatformBalances',
        summary: 'The platform\'s escrow and fees',
        description: 'ADMIN only. From the ledger, per currency: money held in escrow for jobs, fees earned, and disputes lost.',
        security: bearerSecurity,
        response: { 200: PlatformBalances, ...problemResponses(401, 403) },
      },
    }, async (request) => payments.platformBalances(request.auth.userId))
  })

  // The provider's webhooks: verified by their signature over the raw body, not by a token.
  await fastify.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 1024 * 1024 }, (_request, body, done) => done(null, body))
    scope.post('/webhooks/stripe', {
      // Not limited per address: Stripe sends bursts from a few addresses (a limit would refuse
      // Stripe itself, whose retries come hours later), and what this route does before the
      // signature holds is one HMAC, with no write.
      config: { rateLimit: false },
      schema: {
        tags,
        operationId: 'receiveStripeWebhook',
        summary: 'Stripe\'s events',
        description: 'For Stripe. Verifies `Stripe-Signature` over the raw body (STRIPE_WEBHOOK_SECRET, 300 s tolerance: a forged, tampered or stale event is 400 `invalid_signature` and changes nothing), records the event id once (a duplicate answers `duplicate: true`), answers at once and applies the event in the background (payment intents re-read from Stripe, so late or out-of-order events end in the right state).',
        response: { 200: WebhookAnswer, ...problemResponses() },
      },
    }, async (request) => {
      const signature = request.headers['stripe-signature']
      const result = await payments.receiveWebhook(request.body as Buffer, typeof signature === 'string' ? signature : undefined)
      return { received: true, duplicate: result.duplicate }
    })
  })

  // The local provider's pages (PAYMENTS=local): what Stripe's hosted pages do in test mode.
  fastify.post('/payments/local/authenticate/:id', {
    schema: {
      tags,
      operationId: 'completeLocalAuthentication',
      summary: 'Pass 3-D Secure (PAYMENTS=local)',
      description: 'The `next_action` URL of a `requires_action` payment with the local provider: POSTing it passes the check, and the payment becomes `held`. 404 for anything else (and with PAYMENTS=stripe).',
      params: Type.Object({ id: Type.String({ maxLength: 100 }) }),
      querystring: Type.Object({ client_secret: Type.String({ maxLength: 200 }) }),
      response: { 200: Type.Object({ status: Type.Literal('succeeded') }), ...problemResponses(404) },
    },
  }, async (request, reply) => {
    const { id } = request.params as { id: string }
    const { client_secret: secret } = request.query as { client_secret: string }
    if (!(await payments.completeLocalAction(id, secret))) return reply.callNotFound()
    return { status: 'succeeded' as const }
  })

  fastify.get('/payments/local/onboard/:id', {
    schema: {
      tags,
      operationId: 'completeLocalOnboarding',
      summary: 'Finish onboarding (PAYMENTS=local)',
      description: 'The `onboarding_url` of a local payout account: following it enables payouts. 404 for anything else (and with PAYMENTS=stripe).',
      params: Type.Object({ id: Type.String({ maxLength: 100 }) }),
      response: { 200: Type.Object({ payouts_enabled: Type.Boolean() }), ...problemResponses(404) },
    },
  }, async (request, reply) => {
    const { id } = request.params as { id: string }
    if (!(await payments.completeLocalOnboarding(id))) return reply.callNotFound()
    return { payouts_enabled: true }
  })
}
