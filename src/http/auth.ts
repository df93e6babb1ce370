import type { FastifyReply, FastifyRequest } from 'fastify'
import { UnauthenticatedError } from '../errors.js'
import type { Auth } from '../features/sessions/service.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The signed-in caller; set by `authenticate` on routes that require it. */
    auth: Auth
  }
  interface FastifyInstance {
    /** preHandler: a valid Bearer token or 401. Renews the session's idle expiry. */
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

export function createAuthenticate(authenticate: (token: string) => Promise<Auth | null>) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const token = bearerToken(request)
    const auth = token ? await authenticate(token) : null
    if (!auth) {
      reply.header('www-authenticate', 'Bearer')
      throw new UnauthenticatedError(token ? 'The access token is unknown or has expired' : 'A Bearer access token is required')
    }
    request.auth = auth
  }
}

/** The security requirement to put on authenticated routes' schemas. */
export const bearerSecurity = [{ bearerAuth: [] }]
