import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { ForbiddenError, UnauthenticatedError } from '../errors.js'
import type { Auth } from '../features/sessions/index.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The signed-in caller; set by `authenticate` on the routes registered through `signedIn`. */
    auth: Auth
  }
  interface FastifyContextConfig {
    /**
     * The route (or, given a function, the request as it reads it) needs a confirmed email while
     * EMAIL_CONFIRMATION=required: else 403 `email_unconfirmed`. Checked once its input is
     * validated, for routes registered through `signedIn`.
     */
    confirmedEmail?: true | ((request: FastifyRequest) => boolean)
  }
  interface FastifyInstance {
    /** A valid Bearer token or 401 (the preParsing hook of signed-in routes). Renews the session's idle expiry. */
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

/** The token of an `Authorization: Bearer <token>` header, if there is one. */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (!header) return undefined
  const match = /^Bearer ([A-Za-z0-9_-]{20,200})$/.exec(header.trim())
  return match?.[1]
}

/** Why a request carries no token we can read, in words that say what to send instead. */
function missingToken(header: string | undefined): string {
  const expected = 'send `Authorization: Bearer <access_token>`, the access_token that POST /authorize answers'
  if (!header) return `Sign in first: ${expected}`
  const [scheme, ...rest] = header.trim().split(/\s+/)
  if (scheme?.toLowerCase() !== 'bearer') return `The Authorization header uses the ${scheme ? `"${scheme.slice(0, 20)}"` : 'empty'} scheme: ${expected}`
  if (rest.length === 0) return `The Authorization header has no token after "Bearer": ${expected}`
  return `The Authorization header is not "Bearer" and one token (43 URL-safe base64 characters): ${expected}`
}

export function createAuthenticate(authenticate: (token: string) => Promise<Auth | null>) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const token = bearerToken(request)
    const auth = token ? await authenticate(token) : null
    if (!auth) {
      reply.header('www-authenticate', 'Bearer')
      throw new UnauthenticatedError(token ? 'The access token is unknown or has expired: sign in again (POST /authorize)' : missingToken(request.headers.authorization))
    }
    request.auth = auth
  }
}

/** The security requirement to put on authenticated routes' schemas. */
export const bearerSecurity = [{ bearerAuth: [] }]

/** An instance whose routes take their types from their TypeBox schemas. */
export type TypedFastify = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>

/**
 * Registers routes that need a signed-in caller, in a plugin context of their own whose preParsing
 * hook authenticates every route in it: after the onRequest hooks, so the per-address rate limit
 * counts requests without a valid token too (token guessing is limited, and answered 429 before
 * any storage is read), and before the body is read.
 * Routes open to anyone are registered outside it, each by name. A route in it must say in its
 * schema that it takes the bearer token, so that the OpenAPI document tells what the server does.
 */
export async function signedIn(app: FastifyInstance, routes: (app: TypedFastify) => Promise<void> | void) {
  await app.register(async (scope) => {
    // The one place where a route's `confirmedEmail` is enforced: a preHandler on the routes that
    // ask for it only, so the others pay nothing for it.
    const confirmedEmail = async (request: FastifyRequest) => {
      const rule = request.routeOptions.config.confirmedEmail
      if (!rule || scope.config.emailConfirmation === 'off' || request.auth.user.email_confirmed_at !== null) return
      if (rule === true || rule(request)) {
        throw new ForbiddenError('Confirm your email first: follow the link mailed to you (POST /email/confirm), or ask for another mail (POST /email/confirm/resend)', 'email_unconfirmed')
      }
    }
    scope.addHook('onRoute', (route) => {
      const security = (route.schema as { security?: Record<string, unknown>[] } | undefined)?.security
      if (!security?.some((requirement) => 'bearerAuth' in requirement)) throw new Error(`${String(route.method)} ${route.url} is signed in, but its schema names no bearerAuth security`)
      if ((route.config as { confirmedEmail?: unknown } | undefined)?.confirmedEmail) {
        const own = route.preHandler ? (Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler]) : []
        route.preHandler = [confirmedEmail, ...own] as typeof route.preHandler
      }
    })
    scope.addHook('preParsing', async (request, reply, payload) => {
      await scope.authenticate(request, reply)
      return payload
    })
    await routes(scope.withTypeProvider<TypeBoxTypeProvider>())
  })
}
