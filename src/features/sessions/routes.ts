import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { IdParams } from '../../http/schemas.js'
import { AccessToken, AuthorizeBody, SessionList, SignInRefused } from './schemas.js'

const tags = ['sessions']

/** An app's own id for the device it runs on: sane text only, else none. */
const deviceIdOf = (header: string | string[] | undefined) => (typeof header === 'string' && /^[A-Za-z0-9._:-]{8,128}$/.test(header) ? header : undefined)

export async function sessionsRoutes(fastify: FastifyInstance, options: { authRateLimitMax: number }) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { sessions, accounts } = app

  // Open to anyone: signing in.
  app.post('/authorize', {
    config: { rateLimit: { max: options.authRateLimitMax, timeWindow: 60_000 } },
    schema: {
      tags,
      operationId: 'signIn',
      summary: 'Sign in',
      description: 'Answers an access token for the email and password. A sign-in from a device the user has not signed in from before is mailed to them (a device is told by the `X-Device-Id` header an app may send, 8 to 128 characters of `A-Za-z0-9._:-`, else by its User-Agent). An unknown email and a wrong password get the same 401. Failed sign-ins are limited per account and address, and per address (429 `too_many_failed_sign_ins` with Retry-After): the account itself is never locked, so its owner signs in from another address. An account with two-factor sign-in on answers 401 `mfa_required` with an `mfa_token` for POST /authorize/mfa.',
      body: AuthorizeBody,
      response: { 200: AccessToken, ...problemResponses(401, 403), 401: SignInRefused },
    },
  }, async (request) => {
    const { token, expiresIn, user } = await sessions.signIn(request.body.email, request.body.password, { userAgent: request.headers['user-agent'], deviceId: deviceIdOf(request.headers['x-device-id']), address: request.ip })
    return { access_token: token, token_type: 'Bearer' as const, expires_in: expiresIn, user: accounts.view(user, user) }
  })

  await signedIn(fastify, (app) => {
    app.delete('/authorize', {
      schema: {
        tags,
        operationId: 'signOut',
        summary: 'Sign out',
        description: 'Ends the caller\'s session at once and takes the caller off the map.',
        security: bearerSecurity,
        response: { 204: Type.Null({ description: 'Signed out' }), ...problemResponses(401) },
      },
    }, async (request, reply) => {
      await sessions.signOut(request.auth)
      return reply.code(204).send(null)
    })

    app.delete('/sessions', {
      schema: {
        tags,
        operationId: 'signOutEverywhere',
        summary: 'Sign out everywhere',
        description: 'Ends every session of the caller, this one included, on every device at once.',
        security: bearerSecurity,
        response: { 204: Type.Null({ description: 'Signed out everywhere' }), ...problemResponses(401) },
      },
    }, async (request, reply) => {
      await sessions.signOutEverywhere(request.auth)
      return reply.code(204).send(null)
    })

    app.get('/sessions', {
      schema: {
        tags,
        operationId: 'listSessions',
        summary: 'The caller\'s sessions',
        description: 'One per signed-in device, oldest first.',
        security: bearerSecurity,
        response: { 200: SessionList, ...problemResponses(401) },
      },
    }, async (request) => {
      const items = await sessions.list(request.auth)
      return {
        items: items.map((s) => ({
          id: s.id,
          current: s.id === request.auth.sessionId,
          user_agent: s.userAgent,
          created_at: s.createdAt.toISOString(),
          last_used_at: s.lastUsedAt.toISOString(),
          expires_at: s.expiresAt.toISOString(),
        })),
      }
    })

    app.delete('/sessions/:id', {
      schema: {
        tags,
        operationId: 'endSession',
        summary: 'End one of the caller\'s sessions',
        security: bearerSecurity,
        params: IdParams,
        response: { 204: Type.Null({ description: 'Ended' }), ...problemResponses(401, 404) },
      },
    }, async (request, reply) => {
      await sessions.end(request.auth, request.params.id)
      return reply.code(204).send(null)
    })
  })
}
