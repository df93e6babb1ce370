import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { IdParams } from '../../http/schemas.js'
import { adminContext, adminOnly } from '../admin/index.js'
import { HideBody, ReplyBody, Review, ReviewBody, ReviewList, ReviewListQuery, ReviewSubmitted } from './schemas.js'

const tags = ['reviews']

export async function reviewsRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { reviews } = app

  // Open to anyone, like the profile they belong to.
  app.get('/users/:id/reviews', {
    schema: {
      tags,
      operationId: 'listUserReviews',
      summary: 'A user\'s published reviews',
      description: 'Newest first. Only published reviews that no admin hid: a review waiting for the other side (or for the 14 days to end) is on no list, its author\'s included.',
      params: IdParams,
      querystring: ReviewListQuery,
      response: { 200: ReviewList, ...problemResponses() },
    },
  }, async (request) => reviews.list(request.params.id, request.query))

  await signedIn(fastify, (app) => {
    app.post('/job/:id/review', {
      schema: {
        tags,
        operationId: 'reviewJob',
        summary: 'Review the other side of a paid job',
        description: 'The client reviews the worker, or the worker the client: once each (409 `review_exists`), after the job is PAID (409 `review_not_allowed`) and within 14 days of it (409 `review_window_closed`). Blind: a review is published when the other side wrote theirs too, or when the 14 days end; until then nobody sees it, and its author is told only `submitted`. Publication updates the reviewed user\'s rating in the same transaction.',
        security: bearerSecurity,
        params: IdParams,
        body: ReviewBody,
        response: { 201: ReviewSubmitted, ...problemResponses(401, 404, 409) },
      },
    }, async (request, reply) => reply.code(201).send(await reviews.write(request.auth.userId, request.params.id, request.body)))

    app.post('/reviews/:id/reply', {
      schema: {
        tags,
        operationId: 'replyToReview',
        summary: 'Answer a review of the caller',
        description: 'The reviewed user answers a published review once, publicly (409 `reply_exists`; someone else 403 `not_your_review`).',
        security: bearerSecurity,
        params: IdParams,
        body: ReplyBody,
        response: { 200: Review, ...problemResponses(401, 403, 404, 409) },
      },
    }, async (request) => (await reviews.reply(request.auth.userId, request.params.id, request.body.text))!)
  })

  await adminOnly(fastify, (app) => {
    app.post('/admin/reviews/:id/hide', {
      schema: {
        tags: ['admin'],
        operationId: 'hideReview',
        summary: 'Hide a review',
        description: 'ADMIN only; audited. The review leaves every list and its rating leaves the reviewed user\'s average, in one transaction; the reason is kept. Hiding twice changes nothing more.',
        security: bearerSecurity,
        params: IdParams,
        body: HideBody,
        response: { 204: { type: 'null', description: 'Hidden' }, ...problemResponses(401, 403, 404) },
      },
    }, async (request, reply) => {
      await reviews.hide(adminContext(request), request.params.id, request.body.reason)
      return reply.code(204).send(null)
    })
  })
}
