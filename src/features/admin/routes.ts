import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { bearerSecurity } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { IdParams } from '../../http/schemas.js'
import { adminContext, adminOnly } from './scope.js'
import { AdminJob, AdminUser, AdminUserList, AdminUserQuery, AuditList, AuditQuery, ReasonBody, ReportList, ReportQuery, ResolveBody, RolesBody, SuspendBody } from './schemas.js'

const tags = ['admin']
const emptyBodyIsEmpty = async (request: { body: unknown }) => {
  if (request.body === undefined) request.body = {}
}

export async function adminRoutes(fastify: FastifyInstance) {
  const { admin } = fastify

  await adminOnly(fastify, (app) => {
    app.get('/admin/users', {
      schema: {
        tags,
        operationId: 'adminListUsers',
        summary: 'List and search users',
        description: 'ADMIN only. `q` matches name or email (any case); filters by role, status (active, suspended) and sign-up time. Deleted accounts are left out.',
        security: bearerSecurity,
        querystring: AdminUserQuery,
        response: { 200: AdminUserList, ...problemResponses(401, 403) },
      },
    }, async (request) => admin.listUsers(request.query))

    app.get('/admin/users/:id', {
      schema: {
        tags,
        operationId: 'adminGetUser',
        summary: 'A user, as admins see it',
        security: bearerSecurity,
        params: IdParams,
        response: { 200: AdminUser, ...problemResponses(401, 403, 404) },
      },
    }, async (request) => admin.getUser(request.params.id))

    app.post('/admin/users/:id/suspend', {
      schema: {
        tags,
        operationId: 'suspendUser',
        summary: 'Suspend a user',
        description: 'ADMIN only; audited. At once: every session of the user ends (its requests answer 401, its sockets close), it can\'t sign in (403 `account_suspended`), it leaves the map, and its open jobs (REQUESTED, ACCEPTED) are canceled with a message to the other side. An admin can\'t suspend itself (409 `admin_self`).',
        security: bearerSecurity,
        params: IdParams,
        body: SuspendBody,
        response: { 200: AdminUser, ...problemResponses(401, 403, 404, 409) },
      },
    }, async (request) => admin.suspend(adminContext(request), request.params.id, request.body.reason))

    app.post('/admin/users/:id/restore', {
      schema: {
        tags,
        operationId: 'restoreUser',
        summary: 'Lift a suspension',
        description: 'ADMIN only; audited. The user may sign in again.',
        security: bearerSecurity,
        params: IdParams,
        body: ReasonBody,
        response: { 200: AdminUser, ...problemResponses(401, 403, 404) },
      },
      preValidation: emptyBodyIsEmpty,
    }, async (request) => admin.restore(adminContext(request), request.params.id, request.body.reason))

    app.post('/admin/users/:id/roles', {
      schema: {
        tags,
        operationId: 'setUserRoles',
        summary: 'Grant and revoke roles',
        description: 'ADMIN only; audited. The last admin keeps ADMIN (409 `last_admin`); a user keeps one role at least.',
        security: bearerSecurity,
        params: IdParams,
        body: RolesBody,
        response: { 200: AdminUser, ...problemResponses(401, 403, 404, 409) },
      },
    }, async (request) => admin.setRoles(adminContext(request), request.params.id, request.body))

    app.delete('/admin/users/:id', {
      schema: {
        tags,
        operationId: 'adminDeleteUser',
        summary: 'Delete a user',
        description: 'ADMIN only; audited. As DELETE /user: sessions, live location and picture go; messages and jobs others hold stay theirs. An admin deletes itself with DELETE /user (409 `admin_self` here).',
        security: bearerSecurity,
        params: IdParams,
        body: ReasonBody,
        response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(401, 403, 404, 409) },
      },
      preValidation: emptyBodyIsEmpty,
    }, async (request, reply) => {
      await admin.deleteUser(adminContext(request), request.params.id, request.body.reason)
      return reply.code(204).send(null)
    })

    app.get('/admin/reports', {
      schema: {
        tags,
        operationId: 'listReports',
        summary: 'Reports of messages, users and reviews',
        description: 'ADMIN only. Open ones by default, the longest waiting first, each with its context: who reported, the user reported (as admins see it), the message or review reported.',
        security: bearerSecurity,
        querystring: ReportQuery,
        response: { 200: ReportList, ...problemResponses(401, 403) },
      },
    }, async (request) => admin.listReports(request.query))

    app.post('/admin/reports/:id/resolve', {
      schema: {
        tags,
        operationId: 'resolveReport',
        summary: 'Act on a report',
        description: 'ADMIN only; audited, with the action itself, in one transaction. `dismiss` closes it; `hide` hides the review it names (409 `action_not_applicable` for another report); `suspend` suspends the user it names (as POST /admin/users/{id}/suspend). A report is acted on once (409 `report_resolved`).',
        security: bearerSecurity,
        params: IdParams,
        body: ResolveBody,
        response: { 204: Type.Null({ description: 'Done' }), ...problemResponses(401, 403, 404, 409) },
      },
    }, async (request, reply) => {
      await admin.resolveReport(adminContext(request), request.params.id, request.body.action, request.body.reason)
      return reply.code(204).send(null)
    })

    app.get('/admin/jobs/:id', {
      schema: {
        tags,
        operationId: 'adminGetJob',
        summary: 'Any job, with its messages and its ledger',
        description: 'ADMIN only. The job with its status log, the system messages about it, and its ledger rows.',
        security: bearerSecurity,
        params: IdParams,
        response: { 200: AdminJob, ...problemResponses(401, 403, 404) },
      },
    }, async (request) => admin.job(request.params.id))

    app.get('/admin/audit', {
      schema: {
        tags,
        operationId: 'listAudit',
        summary: 'The audit log',
        description: 'ADMIN only. What admins did, newest first: who, what, on what, when, from which address, in which request, and why. Filters by actor, action, target and time. Append-only: no route changes or deletes an entry, and the database refuses to.',
        security: bearerSecurity,
        querystring: AuditQuery,
        response: { 200: AuditList, ...problemResponses(401, 403) },
      },
    }, async (request) => admin.auditLog(request.query))
  })
}
