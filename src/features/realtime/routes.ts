import { randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import websocket from '@fastify/websocket'
import { InvalidInputError, UnauthenticatedError } from '../../errors.js'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { REPLAY_LIMIT } from '../messaging/index.js'
import { hashToken, type Auth } from '../sessions/index.js'
import { WsQuery, WsTicket } from './schemas.js'
import { createRealtimeHub } from './hub.js'

const tags = ['realtime']

export interface RealtimeOptions {
  heartbeatMs: number
  maxBufferedBytes: number
  ticketTtlSeconds: number
}

export async function realtimeRoutes(fastify: FastifyInstance, options: RealtimeOptions) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { live } = app.platform
  const hub = createRealtimeHub({
    live,
    since: app.messaging.since,
    replayLimit: REPLAY_LIMIT,
    heartbeatMs: options.heartbeatMs,
    maxBufferedBytes: options.maxBufferedBytes,
    log: app.log,
  })
  await hub.start()
  app.addHook('onClose', async () => hub.close())

  await app.register(websocket, {
    // Clients send nothing but control frames; a large frame from one is refused.
    options: { maxPayload: 4096, perMessageDeflate: false },
    // Sockets close in hub.close (onClose); here only new upgrades stop.
    preClose(done) {
      for (const client of app.websocketServer.clients) client.close(1001, 'shutting down')
      done()
    },
  })

  await signedIn(fastify, (app) => {
    app.post('/ws/ticket', {
      schema: {
        tags,
        summary: 'A one-time ticket for the WebSocket',
        description: `For browsers, which can't set headers on a WebSocket: open \`/ws?ticket=<ticket>\` once within ${options.ticketTtlSeconds} seconds. The ticket works once; the access token never goes into a URL.`,
        security: bearerSecurity,
        response: { 201: WsTicket, ...problemResponses(401) },
      },
    }, async (request, reply) => {
      const ticket = randomBytes(32).toString('base64url')
      await live.tickets.put(`ws:${hashToken(ticket)}`, JSON.stringify(request.auth), options.ticketTtlSeconds * 1000)
      return reply.code(201).send({ ticket, expires_in: options.ticketTtlSeconds })
    })
  })

  /** The Bearer header, or else a one-time ticket whose session still lives. */
  const authenticateSocket = async (request: FastifyRequest, reply: FastifyReply) => {
    const ticket = (request.query as { ticket?: unknown }).ticket
    if (request.headers.authorization || typeof ticket !== 'string' || ticket === '') return app.authenticate(request, reply)
    const value = await live.tickets.take(`ws:${hashToken(ticket)}`)
    const auth = value ? (JSON.parse(value) as Auth) : null
    if (!auth || !(await live.sessions.list(auth.userId)).some((s) => s.id === auth.sessionId)) {
      reply.header('www-authenticate', 'Bearer')
      throw new UnauthenticatedError('The ticket is unknown, used or expired', 'invalid_ticket')
    }
    request.auth = auth
  }

  // Outside the signed-in scope: a socket signs in with a ticket as well as a token, in its own hook.
  app.route({
    method: 'GET',
    url: '/ws',
    onRequest: authenticateSocket,
    schema: {
      tags,
      summary: 'Live events (WebSocket)',
      description:
        'Upgrade to a WebSocket, signed in by `Authorization: Bearer <token>` or a one-time `ticket` from POST /ws/ticket. The server sends JSON `{type, data}`: `message.created` (data: a message), `message.read` (`{by, up_to, read_at}`), `job.updated` (data: a job). With `since=<message id>` the messages sent or received after it come first, then `replay.done` (`{count, complete}`; when not complete, page GET /inbox). The server pings; a client that stops answering, reads too slowly (close 4408) or whose session ends (close 4401) is disconnected.',
      security: [...bearerSecurity, {}],
      querystring: WsQuery,
      response: { 101: { description: 'Switching to the WebSocket protocol', type: 'null' }, ...problemResponses(401) },
    },
    wsHandler: (socket, request) => {
      void hub.attach(socket, request.auth, request.query.since)
    },
    handler: async () => {
      throw new InvalidInputError('GET /ws is a WebSocket: send the Upgrade: websocket headers', [], 'websocket_required')
    },
  })
}
