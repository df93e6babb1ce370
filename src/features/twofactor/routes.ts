import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { AccessToken } from '../sessions/index.js'
import { ConfirmBody, DisableBody, MfaBody, RecoveryCodes, TwoFactorSetup, TwoFactorStatus } from './schemas.js'

const tags = ['sessions']

export async function twoFactorRoutes(fastify: FastifyInstance, options: { authRateLimitMax: number }) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { twoFactor, accounts } = app

  // Open to anyone who holds an mfa_token: the second step of signing in.
  app.post('/authorize/mfa', {
    config: { rateLimit: { max: options.authRateLimitMax, timeWindow: 60_000 } },
    schema: {
      tags,
      operationId: 'signInSecondFactor',
      summary: 'Sign in: the second factor',
      description: 'After POST /authorize (or POST /auth/exchange) answered 401 `mfa_required`: its `mfa_token` and a code from the authenticator app, or one of the recovery codes, answer the access token. A code is taken once; a token lives 5 minutes and takes 5 tries (`invalid_mfa_token` after: sign in again).',
      body: MfaBody,
      response: { 200: AccessToken, ...problemResponses(401) },
    },
  }, async (request) => {
    const { mfa_token: token, ...proof } = request.body
    const signedIn = await twoFactor.signIn(token, proof, { userAgent: request.headers['user-agent'], address: request.ip })
    return { access_token: signedIn.token, token_type: 'Bearer' as const, expires_in: signedIn.expiresIn, user: accounts.view(signedIn.user, signedIn.user) }
  })

  await signedIn(fastify, (app) => {
    app.get('/user/2fa', {
      schema: {
        tags,
        operationId: 'getTwoFactor',
        summary: 'Whether two-factor sign-in is on',
        security: bearerSecurity,
        response: { 200: TwoFactorStatus, ...problemResponses(401) },
      },
    }, async (request) => twoFactor.status(request.auth))

    app.post('/user/2fa', {
      schema: {
        tags,
        operationId: 'setUpTwoFactor',
        summary: 'Set up two-factor sign-in',
        description: 'Answers a new TOTP secret (RFC 6238: SHA-1, 6 digits, 30 s) and its `otpauth://` URI for an authenticator app. Nothing changes until a code from it is confirmed (POST /user/2fa/confirm); asking again replaces a secret not confirmed yet. 409 while two-factor is on.',
        security: bearerSecurity,
        response: { 200: TwoFactorSetup, ...problemResponses(401, 409) },
      },
    }, async (request) => twoFactor.setUp(request.auth, request.auth.user))

    app.post('/user/2fa/confirm', {
      schema: {
        tags,
        operationId: 'confirmTwoFactor',
        summary: 'Turn two-factor sign-in on',
        description: 'With a current code from the app set up with POST /user/2fa. Answers ten recovery codes, each good for one sign-in without the app: they are shown this once. From then on, signing in asks for a code.',
        security: bearerSecurity,
        body: ConfirmBody,
        response: { 200: RecoveryCodes, ...problemResponses(401, 409) },
      },
    }, async (request) => twoFactor.confirm(request.auth, request.body.code))

    app.delete('/user/2fa', {
      schema: {
        tags,
        operationId: 'disableTwoFactor',
        summary: 'Turn two-factor sign-in off',
        description: 'Needs a current code (`code`) or the account\'s password (`password`): a stolen token alone can\'t turn it off. The recovery codes go with it.',
        security: bearerSecurity,
        body: DisableBody,
        response: { 204: Type.Null({ description: 'Off' }), ...problemResponses(401, 403, 409) },
      },
    }, async (request, reply) => {
      await twoFactor.disable(request.auth, request.body)
      return reply.code(204).send(null)
    })
  })
}
