import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { LocationPosted, PostLocationBody, SearchPage, SearchQuery } from './schemas.js'

const tags = ['location']

export async function locationRoutes(fastify: FastifyInstance) {
  const { location } = fastify

  await signedIn(fastify, (app) => {
    app.post('/location', {
      schema: {
        tags,
        operationId: 'postLocation',
        summary: 'Share the caller\'s live location',
        description: 'Puts the caller on the map until `ttl` seconds pass (default 300). Posting again renews the expiry. Others only ever see a distance, measured from the caller\'s public point: drawn at random 100 to 200 m from the posted position, and kept while the caller posts within 300 m of it, so many posts from one place tell no more than one. A post farther away moves the caller to a new point; one back at a place shown in the last 30 days gets its point again.',
        security: bearerSecurity,
        body: PostLocationBody,
        response: { 200: LocationPosted, ...problemResponses(401) },
      },
    }, async (request) => {
      const { expiresAt } = await location.post(request.auth, request.body)
      return { expires_at: expiresAt.toISOString() }
    })

    app.delete('/location', {
      schema: {
        tags,
        operationId: 'deleteLocation',
        summary: 'Go off the map',
        description: 'Signing out and deleting the account do this too.',
        security: bearerSecurity,
        response: { 204: Type.Null({ description: 'Off the map' }), ...problemResponses(401) },
      },
    }, async (request, reply) => {
      await location.remove(request.auth.userId)
      return reply.code(204).send(null)
    })

    app.get('/search', {
      schema: {
        tags,
        operationId: 'searchNearby',
        summary: 'Users near a point',
        description: 'Users with an unexpired live location within `radius` meters (up to 50 km) of `lat`,`lon`, nearest first, optionally with a `role` (`ADMIN` only for admins, else 403). Answers distances, never coordinates. The caller is never in the answer. Pages continue in distance order.',
        security: bearerSecurity,
        querystring: SearchQuery,
        response: { 200: SearchPage, ...problemResponses(401, 403) },
      },
    }, async (request) => location.search(request.auth.userId, request.query))
  })
}
