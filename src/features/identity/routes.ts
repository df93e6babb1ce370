import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { Accepted, ForgotBody, ResetBody, TokenBody } from './schemas.js'

const tags = ['identity']

export async function identityRoutes(fastify: FastifyInstance, options: { authRateLimitMax: number }) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { identity } = app
  // Routes that mail, or that take a token from a mail, are limited per address like sign-in.
  const limited = { rateLimit: { max: options.authRateLimitMax, timeWindow: 60_000 } }

  // Open to anyone: the links of mails work without signing in.
  app.post('/email/confirm', {
    config: limited,
    schema: {
      tags,
      operationId: 'confirmEmail',
      summary: 'Confirm an email',
      description: 'With the token of the link mailed at sign-up (or on a change of email, which takes effect now). A token works once, for 48 hours; a used, expired or unknown one is 400 `invalid_token` and changes nothing.',
      body: TokenBody,
      response: { 204: Type.Null({ description: 'Confirmed' }), ...problemResponses(400, 409) },
    },
  }, async (request, reply) => {
    await identity.confirmEmail(request.body.token)
    return reply.code(204).send(null)
  })

  app.post('/email/undo', {
    config: limited,
    schema: {
      tags,
      operationId: 'undoEmailChange',
      summary: 'Undo a change of email',
      description: 'With the token mailed to the old address when a change was asked (it works once, for 3 days): the old address is the account\'s again (confirmed), a change not yet confirmed lapses, and every session of the account ends. Then reset the password.',
      body: TokenBody,
      response: { 204: Type.Null({ description: 'Undone; every session ended' }), ...problemResponses(400, 409) },
    },
  }, async (request, reply) => {
    await identity.undoEmailChange(request.body.token)
    return reply.code(204).send(null)
  })

  app.post('/password/forgot', {
    config: limited,
    schema: {
      tags,
      operationId: 'forgotPassword',
      summary: 'Ask for a password reset link',
      description: 'Answers 202 with the same body, in the same time, whether or not an account has the email; if one does, a link valid for 30 minutes is mailed to it (a newer one replaces it).',
      body: ForgotBody,
      response: { 202: Accepted, ...problemResponses(400) },
    },
  }, async (request, reply) => {
    await identity.forgotPassword(request.body.email)
    return reply.code(202).send({ message: 'If an account has this email, a link to reset its password is on its way' })
  })

  app.post('/password/reset', {
    config: limited,
    schema: {
      tags,
      operationId: 'resetPassword',
      summary: 'Set a new password with a reset token',
      description: 'Sets the password (8 to 128 characters, not a common or breached one) and ends every session of the account. The token works once; a used, expired or unknown one is 400 `invalid_token` and changes nothing.',
      body: ResetBody,
      response: { 204: Type.Null({ description: 'Set; every session ended' }), ...problemResponses(400) },
    },
  }, async (request, reply) => {
    await identity.resetPassword(request.body.token, request.body.password)
    return reply.code(204).send(null)
  })

  await signedIn(fastify, (app) => {
    app.post('/email/confirm/resend', {
      config: limited,
      schema: {
        tags,
        operationId: 'resendConfirmation',
        summary: 'Mail the confirmation link again',
        description: 'Mails the caller a new link to confirm its email (202); with the email confirmed already, 204 and no mail.',
        security: bearerSecurity,
        response: { 202: Accepted, 204: Type.Null({ description: 'Confirmed already' }), ...problemResponses(401) },
      },
    }, async (request, reply) => {
      if (!(await identity.resendConfirmation(request.auth.user))) return reply.code(204).send(null)
      return reply.code(202).send({ message: 'A new confirmation link is on its way' })
    })
  })
}
