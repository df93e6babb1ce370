import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ForbiddenError } from '../../errors.js'
import { signedIn, type TypedFastify } from '../../http/auth.js'
import type { AdminContext } from './audit.js'

/**
 * Registers routes for admins only: signed in (401 otherwise), then ADMIN as the database has it
 * now (403 `not_an_admin` otherwise), both before the request's body or query are looked at, so
 * anyone else learns nothing of what the route takes.
 */
export async function adminOnly(app: FastifyInstance, routes: (app: TypedFastify) => Promise<void> | void) {
  const isAdmin = app.accounts.isAdmin
  await signedIn(app, async (scope) => {
    // preParsing, after signedIn's own: the caller is known only once it has authenticated them.
    scope.addHook('preParsing', async (request, _reply, payload) => {
      if (!(await isAdmin(request.auth.userId))) throw new ForbiddenError('Only admins may do this', 'not_an_admin')
      return payload
    })
    await routes(scope)
  })
}

/** Who acts, from where, in which request: what the audit log keeps of each admin action. */
export const adminContext = (request: FastifyRequest): AdminContext => ({ actorId: request.auth.userId, address: request.ip, requestId: String(request.id) })
