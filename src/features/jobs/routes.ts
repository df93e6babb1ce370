import type { FastifyInstance } from 'fastify'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses, problemWith } from '../../http/problems.js'
import { IdParams } from '../../http/schemas.js'
import { Declined } from '../payments/index.js'
import { IfMatchHeaders, Job, OfferHeaders, JobBody, JobList, JobListQuery, QuoteBody, StatusBody } from './schemas.js'
import { CHANGES, WORKFLOW } from './workflow.js'

const tags = ['jobs']

/** A stale If-Match: the problem carries the job as it is now. */
const staleVersion = problemWith('The If-Match version is not the current one: `job` is the job as it is now, with its `version`', { job: Job })

const workflowTable = [
  '| from | to | who |',
  '| --- | --- | --- |',
  ...WORKFLOW.map((m) => `| ${m.from} | ${m.to} | ${m.by.join(' or ')}${m.reasonRequired ? ' (with a reason)' : ''}${m.bindsTerms ? ' (with If-Match)' : ''} |`),
].join('\n')

export async function jobsRoutes(fastify: FastifyInstance) {
  const { jobs } = fastify

  await signedIn(fastify, (app) => {
    app.post('/job', {
      config: { confirmedEmail: true },
      schema: {
        tags,
        operationId: 'offerJob',
        summary: 'Offer a job, or change an offer',
        description: [
          'An unconfirmed email is 403 `email_unconfirmed` (offers, accepting and approving need a confirmed one).',
          'Without `id`: the caller (a CLIENT) offers a job to a WORKER -> 201, in REQUESTED; the worker is told in their inbox. `warnings` names a worker without a picture (who can\'t accept until they add one).',
          'A priced offer is paid into escrow before the worker can accept it: with `payment_method` the price is charged at once (`payment.status` `held`, or `requires_action` for 3-D Secure); a decline is 402 `card_declined` with `decline_code` and `job_id`, the offer staying to be paid with POST /job/{id}/payment. A currency the worker\'s payout account does not take is 400 `currency_not_supported`. `Idempotency-Key` (new offers) answers the first answer again for 24 hours; with another body, 422.',
          'Without `worker_id` but with `category_id` and `location` (and `title`): an open request -> 201, `open_request: true`, `worker_id: null`. The workers live on the map within their service radius of the place in that category, and those with a saved alert (POST /alerts) holding it, are alerted (a system message, a `job.alert` event, a `job_alert` notification), never across a block (one committed while the request is posted included); the first to accept it becomes its worker, the others get 409 `job_taken`. Missing `category_id` or `location`: 400 `open_request_incomplete`. A priced one with `payment_method` is charged into escrow at once, as an offer is; nobody taking it, it expires.',
          'With `id`: the client changes its offer while it is REQUESTED -> 200; the worker\'s edit is 403, after REQUESTED 409. Each edit tells the worker in their inbox what changed and the terms now. `If-Match` with the job\'s `ETag` guards against lost updates: a stale one is 412 `version_mismatch`, whose `job` is the job as it is now.',
        ].join('\n\n'),
        security: bearerSecurity,
        headers: OfferHeaders,
        body: JobBody,
        response: { 200: Job, 201: Job, ...problemResponses(401, 403, 404, 409, 422), 402: Declined, 412: staleVersion },
      },
    }, async (request, reply) => {
      const { id } = request.body
      const { userId } = request.auth
      // A new offer may take the client's money: with an Idempotency-Key, a retry answers the first answer.
      const answer = await fastify.payments.idempotent(userId, id === undefined ? request.headers['idempotency-key'] : undefined, 'POST /job', request.body, async () => {
        const job = id === undefined
          ? await jobs.create(userId, request.body)
          : await jobs.edit(userId, { ...request.body, id }, request.headers['if-match'])
        return { status: id === undefined ? 201 : 200, body: job }
      })
      return reply.code(answer.status as 200).header('etag', jobs.etagOf(answer.body.version)).send(answer.body)
    })

    app.get('/job/:id', {
      schema: {
        tags,
        operationId: 'getJob',
        summary: 'Get a job',
        description: 'One job, to its client and its worker, and while an open request waits for a worker, to the workers it alerted (anyone else 404), with its status log. The `ETag` is its version, for `If-Match`.',
        security: bearerSecurity,
        params: IdParams,
        response: { 200: Job, ...problemResponses(401, 404) },
      },
    }, async (request, reply) => {
      const job = await jobs.get(request.auth.userId, request.params.id)
      return reply.header('etag', jobs.etagOf(job.version)).send(job)
    })

    app.get('/jobs', {
      schema: {
        tags,
        operationId: 'listJobs',
        summary: 'The caller\'s jobs',
        description: 'Jobs where the caller is the client or the worker (`role` picks one side), newest first; `status` filters. A worker\'s include the open requests it was alerted to while nobody has taken them (once another worker takes one, or it ends, it leaves the list).',
        security: bearerSecurity,
        querystring: JobListQuery,
        response: { 200: JobList, ...problemResponses(401) },
      },
    }, async (request) => jobs.list(request.auth.userId, request.query))

    app.post('/job/:id/quote', {
      schema: {
        tags,
        operationId: 'quoteJob',
        summary: 'Quote the price of a job',
        description: [
          `The job\'s worker sets the price of a job whose offer named none -> 200 job with that \`price\`, while it is ${CHANGES.quote.while.join(', ')} (until the client approves; else 409 \`job_not_quotable\`). Once: a job with a price (the offer\'s, or an earlier quote) is 409 \`price_already_set\`. The client is told in their inbox, and approves that price and no other; the client is 403 \`not_your_quote\`, anyone else 404.`,
          'Quote while REQUESTED to tell the client your price before accepting (then accept naming the new version), or later, once you have seen the work; the client can still change or cancel the offer, or cancel an ACCEPTED job, if the price does not suit. On a COMPLETED job the approval period starts again from the quote. `If-Match` is honoured (412, with the job as it is now).',
        ].join('\n\n'),
        security: bearerSecurity,
        headers: IfMatchHeaders,
        params: IdParams,
        body: QuoteBody,
        response: { 200: Job, ...problemResponses(401, 403, 404, 409), 412: staleVersion },
      },
    }, async (request, reply) => {
      const job = await jobs.quote(request.auth.userId, request.params.id, request.body, request.headers['if-match'])
      return reply.header('etag', jobs.etagOf(job.version)).send(job)
    })

    app.post('/job/:id/status', {
      // Accepting and approving (which pays) bind the caller: they need a confirmed email.
      config: { confirmedEmail: (request) => ['ACCEPTED', 'PENDING_PAYMENT'].includes((request.body as { status?: string }).status ?? '') },
      schema: {
        tags,
        operationId: 'moveJob',
        summary: 'Move a job along its workflow',
        description: [
          'Moves follow this table; a move that is not the caller\'s is 403, one the job\'s current status does not allow 409, and of racing moves one wins and the others get 409. Each move is one transaction with its log entry and the messages to the other party.',
          workflowTable,
          'Accepting binds the worker to the offer\'s terms (price, date, place) as the app showed them: send `If-Match` with the `ETag` of the job read (its `version` in quotes, such as `"3"`). Without one (or with `*`) it is 428 `version_required`; when the client changed the offer since, 412 `version_mismatch`, whose `job` is the offer as it is now (the worker was also told of each change in their inbox): show it, and accept again with its version. Accepting also needs a profile picture (409 `worker_has_no_picture`). An open request is taken by the first alerted worker to accept it; the others get 409 `job_taken` (before any If-Match check), and may only accept it (another move is 403). A worker in a block with the client (either made it, even after the alert) is 403 `blocked`: a block committed first always wins over an accept.',
          'Approving (COMPLETED -> PENDING_PAYMENT) pays the job\'s price as it stands: the offer\'s, or for an offer without one the worker\'s quote (POST /job/{id}/quote). The client never names the price: `price` in the body is 400 `approval_takes_no_price`, and a job without a price yet is 409 `quote_required` (ask the worker to quote). The payment then runs, and with the `local` provider the job is PAID at once. On any other move `If-Match` is optional, and honoured (412, with the job as it is now).',
        ].join('\n\n'),
        security: bearerSecurity,
        headers: IfMatchHeaders,
        params: IdParams,
        body: StatusBody,
        response: { 200: Job, ...problemResponses(401, 403, 404, 409, 428), 412: staleVersion },
      },
    }, async (request, reply) => {
      const job = await jobs.move(request.auth.userId, request.params.id, request.body, request.headers['if-match'])
      return reply.header('etag', jobs.etagOf(job.version)).send(job)
    })
  })
}
