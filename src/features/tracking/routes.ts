import type { FastifyInstance } from 'fastify'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { IdParams } from '../../http/schemas.js'
import { Tracking, TrackingBody } from './schemas.js'

const tags = ['jobs']

export async function trackingRoutes(fastify: FastifyInstance) {
  const { tracking } = fastify

  await signedIn(fastify, (app) => {
    app.post('/job/:id/tracking', {
      schema: {
        tags,
        operationId: 'setJobTracking',
        summary: 'Share the worker\'s live position with the job\'s client',
        description: [
          'The job\'s worker turns sharing on (`{on: true}`) or off. While it is on, each position the worker posts to POST /location (exact, not the blurred point the map shows) goes to the job\'s client alone as a `job.location` event over /ws, and GET /job/{id}/tracking answers it. The client hears a `job.tracking` event on each change.',
          'Only while the job is ACCEPTED or STARTED (else 409 `job_not_trackable`); sharing ends by itself when the job leaves those statuses, when the worker goes off the map (DELETE /location) or signs out, and the position is deleted then. The client is 403 `not_your_tracking`, anyone else 404.',
        ].join('\n\n'),
        security: bearerSecurity,
        params: IdParams,
        body: TrackingBody,
        response: { 200: Tracking, ...problemResponses(401, 403, 404, 409) },
      },
    }, async (request) => tracking.set(request.auth.userId, request.params.id, request.body.on))

    app.get('/job/:id/tracking', {
      schema: {
        tags,
        operationId: 'getJobTracking',
        summary: 'The worker\'s live position on a job',
        description: 'To the job\'s client and worker (anyone else 404, admins included): whether the worker shares its position, the last one posted, its age and the distance from it to the job\'s place.',
        security: bearerSecurity,
        params: IdParams,
        response: { 200: Tracking, ...problemResponses(401, 404) },
      },
    }, async (request) => tracking.get(request.auth.userId, request.params.id))
  })
}
