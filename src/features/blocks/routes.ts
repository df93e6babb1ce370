import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { Block, BlockBody, BlockList, BlockListQuery, BlockParams, Report, ReportBody } from './schemas.js'

// Listed with messaging in the API's documentation, where they were first: a client finds them
// under the same tag.
const tags = ['messaging']

export async function blocksRoutes(fastify: FastifyInstance) {
  const { blocks } = fastify

  await signedIn(fastify, (app) => {
    app.post('/blocks', {
      schema: {
        tags,
        operationId: 'blockUser',
        summary: 'Block a user',
        description: 'The user can no longer write to the caller, nor the caller to them, and neither finds the other in search. 201 when new, 200 when the block existed.',
        security: bearerSecurity,
        body: BlockBody,
        response: { 200: Block, 201: Block, ...problemResponses(401, 404) },
      },
    }, async (request, reply) => {
      const { created, block } = await blocks.block(request.auth.userId, request.body.user_id)
      return reply.code(created ? 201 : 200).send(block)
    })

    app.delete('/blocks/:user_id', {
      schema: {
        tags,
        operationId: 'unblockUser',
        summary: 'Unblock a user',
        security: bearerSecurity,
        params: BlockParams,
        response: { 204: Type.Null({ description: 'Unblocked' }), ...problemResponses(401, 404) },
      },
    }, async (request, reply) => {
      await blocks.unblock(request.auth.userId, request.params.user_id)
      return reply.code(204).send(null)
    })

    app.get('/blocks', {
      schema: {
        tags,
        operationId: 'listBlocks',
        summary: 'The users the caller blocked',
        description: 'Newest first.',
        security: bearerSecurity,
        querystring: BlockListQuery,
        response: { 200: BlockList, ...problemResponses(401) },
      },
    }, async (request) => blocks.list(request.auth.userId, request.query))

    app.post('/reports', {
      schema: {
        tags,
        operationId: 'report',
        summary: 'Report a message, a user or a review',
        description: 'Stores a report for the admins: a message the caller received (`message_id`), a user (`user_id`), or a published review (`review_id`; its author is reported), with a reason.',
        security: bearerSecurity,
        body: ReportBody,
        response: { 201: Report, ...problemResponses(401, 404) },
      },
    }, async (request, reply) => reply.code(201).send(await blocks.report(request.auth.userId, request.body)))
  })
}
