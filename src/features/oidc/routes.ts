import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ConflictError, InvalidInputError, UnavailableError } from '../../errors.js'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { IdParams } from '../../http/schemas.js'
import { AccessToken, SignInRefused } from '../sessions/index.js'
import type { SignedIn } from '../sessions/index.js'
import { ProviderSignInError } from './service.js'
import { AuthorizationUrl, CallbackForm, CallbackQuery, ExchangeBody, IdentityList, IdentityListQuery, LinkQuery, Linked, ProviderList, ProviderParams, StartQuery } from './schemas.js'

const tags = ['sessions']
const Redirect = { 302: Type.Null({ description: 'To the provider (or back to the app)', headers: { location: { type: 'string' } } } as never) }

export async function oidcRoutes(fastify: FastifyInstance, options: { authRateLimitMax: number }) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { oidc, accounts } = app
  const limited = { rateLimit: { max: options.authRateLimitMax, timeWindow: 60_000 } }
  const context = (request: FastifyRequest) => ({ userAgent: request.headers['user-agent'], address: request.ip })
  const tokenAnswer = (signedIn: SignedIn) => ({ access_token: signedIn.token, token_type: 'Bearer' as const, expires_in: signedIn.expiresIn, user: accounts.view(signedIn.user, signedIn.user) })
  /** Back to the app's address with these parameters (never a token: a code good once, for a minute). */
  const backToApp = (reply: FastifyReply, appRedirect: string, params: Record<string, string>) => {
    const target = new URL(appRedirect)
    for (const [key, value] of Object.entries(params)) target.searchParams.set(key, value)
    return reply.header('cache-control', 'no-store').redirect(target.toString(), 302)
  }

  app.get('/auth/providers', {
    schema: {
      tags,
      operationId: 'listProviders',
      summary: 'Providers to sign in with',
      description: 'The OpenID Connect providers this deployment signs in with (OIDC_PROVIDERS).',
      response: { 200: ProviderList, ...problemResponses() },
    },
  }, async () => ({ items: oidc.providers().map((name) => ({ name, start_url: `/auth/${name}/start` })) }))

  app.get('/auth/:provider/start', {
    config: limited,
    schema: {
      tags,
      operationId: 'startProviderSignIn',
      summary: 'Sign in with a provider',
      description: 'Open in a browser: redirects (302) to the provider. `redirect_uri` is the app\'s own address (one of OIDC_APP_REDIRECTS, compared exactly; any other is 400 `redirect_not_allowed`); the provider comes back to GET /auth/{provider}/callback, which sends the browser on to that address with a `code` for POST /auth/exchange. The first sign-in with a provider makes an account with `role` (default CLIENT).',
      params: ProviderParams,
      querystring: StartQuery,
      response: { ...Redirect, ...problemResponses(404) },
    },
  }, async (request, reply) => {
    const url = await oidc.begin(request.params.provider, { appRedirect: request.query.redirect_uri, roles: request.query.role ? [request.query.role] : undefined })
    return reply.header('cache-control', 'no-store').redirect(url, 302)
  })

  const callbackResponses = { ...Redirect, 200: Type.Union([AccessToken, Linked]), ...problemResponses(404, 409), 401: SignInRefused }
  const callbackDescription = 'The sign-in\'s state is taken once; the code is exchanged with PKCE and the ID token checked (signature, issuer, audience, expiry, nonce). Then, with the app\'s address: 302 to it with `code` (single use, one minute) for POST /auth/exchange, or with `error` (a problem code) when the sign-in failed; with a link, `linked=1`. Without an app address: the tokens themselves (or 401 `mfa_required`), or the linked identity.'

  app.get('/auth/:provider/callback', {
    config: limited,
    schema: {
      tags,
      operationId: 'providerCallback',
      summary: 'Where the provider comes back',
      description: `The provider sends the browser here. ${callbackDescription}`,
      params: ProviderParams,
      querystring: CallbackQuery,
      response: callbackResponses,
    },
  }, async (request, reply) => callback(request.params.provider, request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '', request, reply))

  // A provider configured with response_mode form_post (Apple, when asked for the email) posts
  // its answer as a form instead. Only this plugin's routes read forms here.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 16_384 }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })
  app.post('/auth/:provider/callback', {
    config: limited,
    schema: {
      tags,
      operationId: 'providerFormCallback',
      summary: 'Where the provider comes back, with a form',
      description: `For a provider with \`response_mode: "form_post"\`: the browser posts the answer here as a form. Apple adds \`user\` at the first sign-in (JSON: \`{"name": {"firstName", "lastName"}, "email"}\`): unsigned, it only names an account this sign-in makes, where the ID token gives no name (each part trimmed, at most 100 characters; one that is no text is left out), and its \`email\` is never read. ${callbackDescription}`,
      params: ProviderParams,
      consumes: ['application/x-www-form-urlencoded'],
      body: CallbackForm,
      response: { ...callbackResponses, ...problemResponses(415) },
    },
  }, async (request, reply) => {
    const fields = new URLSearchParams()
    for (const key of ['code', 'state', 'iss', 'error', 'error_description'] as const) if (request.body[key] !== undefined) fields.set(key, request.body[key])
    // Apple's `user` (the name, at the first sign-in) comes only with a posted form.
    return callback(request.params.provider, `?${fields}`, request, reply, { user: request.body.user })
  })

  async function callback(provider: string, query: string, request: FastifyRequest, reply: FastifyReply, form: { user?: string } = {}) {
    reply.header('cache-control', 'no-store')
    let outcome
    try {
      outcome = await oidc.callback(provider, query, form)
    } catch (error) {
      if (!(error instanceof ProviderSignInError)) throw error
      if (error.appRedirect) return backToApp(reply, error.appRedirect, { error: error.code })
      if (error.status === 409) throw new ConflictError(error.message, error.code)
      if (error.status === 503) throw new UnavailableError(error.message, error.code)
      throw new InvalidInputError(error.message, [], error.code)
    }
    if (outcome.kind === 'linked') {
      if (outcome.appRedirect) return backToApp(reply, outcome.appRedirect, { linked: '1' })
      return { linked: true as const, identity: outcome.identity }
    }
    if (outcome.appRedirect) return backToApp(reply, outcome.appRedirect, { code: await oidc.exchangeCode(outcome.userId, context(request)) })
    return tokenAnswer(await oidc.signInAs(outcome.userId, context(request)))
  }

  app.post('/auth/exchange', {
    config: limited,
    schema: {
      tags,
      operationId: 'exchangeProviderCode',
      summary: 'Sign in: exchange the callback\'s code',
      description: 'The `code` the callback sent to the app\'s address, for the same answer as POST /authorize: the tokens, or 401 `mfa_required` with an `mfa_token` for an account with two-factor sign-in. A code is good once, for a minute (400 `invalid_exchange_code`).',
      body: ExchangeBody,
      response: { 200: AccessToken, ...problemResponses(), 401: SignInRefused },
    },
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    return tokenAnswer(await oidc.exchange(request.body.code, context(request)))
  })

  await signedIn(fastify, (app) => {
    app.post('/auth/:provider/start', {
      config: limited,
      schema: {
        tags,
        operationId: 'startProviderLink',
        summary: 'Link a provider to the caller\'s account',
        description: 'With `link=1`: answers the provider\'s address as JSON (an app can\'t send its bearer token along with a browser\'s redirect). Open it in a browser; once the user signs in there, the provider\'s account signs in to the caller\'s from then on. The callback comes back to `redirect_uri` with `linked=1` (or `error`), or without one answers the identity. 409 `identity_taken` when the provider account signs in to another account.',
        security: bearerSecurity,
        params: ProviderParams,
        querystring: LinkQuery,
        response: { 200: AuthorizationUrl, ...problemResponses(401, 404) },
      },
    }, async (request) => ({ authorization_url: await oidc.begin(request.params.provider, { appRedirect: request.query.redirect_uri, linkUserId: request.auth.userId }) }))

    app.get('/user/identities', {
      schema: {
        tags,
        operationId: 'listIdentities',
        summary: 'The caller\'s linked providers',
        security: bearerSecurity,
        querystring: IdentityListQuery,
        response: { 200: IdentityList, ...problemResponses(401) },
      },
    }, async (request) => oidc.list(request.auth.userId, request.query))

    app.delete('/user/identities/:id', {
      schema: {
        tags,
        operationId: 'unlinkIdentity',
        summary: 'Unlink a provider from the caller\'s account',
        description: 'Never the last way to sign in: an account without a password keeps its last provider (409 `last_sign_in_method`).',
        security: bearerSecurity,
        params: IdParams,
        response: { 204: Type.Null({ description: 'Unlinked' }), ...problemResponses(401, 404, 409) },
      },
    }, async (request, reply) => {
      await oidc.unlink(request.auth.userId, request.params.id)
      return reply.code(204).send(null)
    })
  })
}
