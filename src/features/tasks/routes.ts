import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { bearerSecurity } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { IdParams } from '../../http/schemas.js'
import { adminContext, adminOnly } from '../admin/index.js'
import { FailedTaskList, FailedTaskQuery } from './schemas.js'

const tags = ['admin']

export async function tasksRoutes(fastify: FastifyInstance) {
  const { tasks } = fastify

  // Admins only, checked before the request is looked at (the service checks again).
  await adminOnly(fastify, (app) => {
    app.get('/admin/tasks/failed', {
      schema: {
        tags,
        operationId: 'listFailedTasks',
        summary: 'Background tasks that kept failing',
        description: 'ADMIN only. Tasks (mails, payment requests, clean-ups after a deletion...) that failed every retry, newest first, with their last error. They are kept 30 days.',
        security: bearerSecurity,
        querystring: FailedTaskQuery,
        response: { 200: FailedTaskList, ...problemResponses(400, 401, 403) },
      },
    }, async (request) => tasks.listFailed(request.auth.userId, request.query))

    app.post('/admin/tasks/:id/retry', {
      schema: {
        tags,
        operationId: 'retryTask',
        summary: 'Run a failed background task again',
        description: 'ADMIN only. Puts the task back in line with its retries counted afresh; it runs within moments.',
        security: bearerSecurity,
        params: IdParams,
        response: { 204: Type.Null({ description: 'Back in line' }), ...problemResponses(401, 403, 404) },
      },
    }, async (request, reply) => {
      await tasks.retry(adminContext(request), request.params.id)
      return reply.code(204).send(null)
    })
  })
}
