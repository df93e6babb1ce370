import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { IdParams } from '../../http/schemas.js'
import { Alert, AlertBody, AlertList, AlertListQuery } from './schemas.js'
import { MAX_ALERTS_PER_WORKER } from './service.js'

const tags = ['jobs']

export async function alertsRoutes(fastify: FastifyInstance) {
  const { alerts } = fastify

  await signedIn(fastify, (app) => {
    app.post('/alerts', {
      schema: {
        tags,
        operationId: 'createAlert',
        summary: 'Save a job alert',
        description: `A worker asks to hear of new open requests (POST /job without worker_id) within \`radius\` meters of a place, in some categories, whether or not it is live on the map -> 201. Each is a system message, a \`job.alert\` event over /ws and a \`job_alert\` notification. Only workers (403); unknown categories 400 \`category_not_found\`, retired ones 409 \`category_retired\`; at most ${MAX_ALERTS_PER_WORKER} a worker (409 \`too_many_alerts\`).`,
        security: bearerSecurity,
        body: AlertBody,
        response: { 201: Alert, ...problemResponses(401, 403, 409) },
      },
    }, async (request, reply) => reply.code(201).send(await alerts.create(request.auth.userId, request.body)))

    app.get('/alerts', {
      schema: {
        tags,
        operationId: 'listAlerts',
        summary: 'The caller\'s saved job alerts',
        description: 'Newest first, in pages.',
        security: bearerSecurity,
        querystring: AlertListQuery,
        response: { 200: AlertList, ...problemResponses(401) },
      },
    }, async (request) => alerts.list(request.auth.userId, request.query))

    app.delete('/alerts/:id', {
      schema: {
        tags,
        operationId: 'deleteAlert',
        summary: 'Delete a saved job alert',
        description: 'Another user\'s alert, or none of that id: 404 `alert_not_found`.',
        security: bearerSecurity,
        params: IdParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(401, 404) },
      },
    }, async (request, reply) => {
      await alerts.remove(request.auth.userId, request.params.id)
      return reply.code(204).send(null)
    })
  })
}
