import { randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import websocket from '@fastify/websocket'
import { InvalidInputError, UnauthenticatedError, UnavailableError } from '../../errors.js'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { Problem, PROBLEM_TYPE, problemResponses } from '../../http/problems.js'
import { REPLAY_LIMIT } from '../messaging/index.js'
import { hashToken } from '../sessions/index.js'
import { WsQuery, WsTicket } from './schemas.js'
import { CLOSE_TOO_MANY, createRealtimeHub } from './hub.js'

const tags = ['realtime']

/** Seconds a client refused for want of room is told to wait before it tries again. */
const FULL_RETRY_AFTER = 10
/** Close code of a socket accepted past the bound by upgrades that raced: try again later. */
const CLOSE_TRY_AGAIN_LATER = 1013

export interface RealtimeOptions {
  heartbeatMs: number
  maxBufferedBytes: number
  ticketTtlSeconds: number
  /** Sockets one user may hold on this process; one more closes the user's oldest (4008). */
  maxPerUser: number
  /** Sockets this process holds at most; past it an upgrade is answered 503. */
  maxConnections: number
}

export async function realtimeRoutes(fastify: FastifyInstance, options: RealtimeOptions) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { live } = app.platform
  const hub = createRealtimeHub({
    live,
    sessions: app.sessions,
    since: app.messaging.since,
    // Every move of a job sends its other party a system message from the mover (or both
    // parties one, when time or the payment provider moved it), so the jobs of the replayed
    // messages are the jobs that changed: each is sent once, as it is now.
    missedEvents: async (userId, afterId, messages) => {
      const jobIds = [...new Set(messages.flatMap((m) => (m.job_id ? [m.job_id] : [])))]
      const jobs = await Promise.all(jobIds.map((id) => app.jobs.get(userId, id).catch(() => undefined)))
      const reads = await app.messaging.readsSince(userId, afterId)
      return [
        ...jobs.flatMap((job) => (job ? [{ type: 'job.updated', data: job }] : [])),
        ...reads.map((read) => ({ type: 'message.read', data: read })),
      ]
    },
    replayLimit: REPLAY_LIMIT,
    heartbeatMs: options.heartbeatMs,
    maxBufferedBytes: options.maxBufferedBytes,
    maxPerUser: options.maxPerUser,
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
        operationId: 'createWsTicket',
        summary: 'A one-time ticket for the WebSocket',
        description: `For browsers, which can't set headers on a WebSocket: open \`/ws?ticket=<ticket>\` once within ${options.ticketTtlSeconds} seconds. The ticket works once; the access token never goes into a URL.`,
        security: bearerSecurity,
        response: { 201: WsTicket, ...problemResponses(401) },
      },
    }, async (request, reply) => {
      const ticket = randomBytes(32).toString('base64url')
      // The ticket stands for the session: what it holds is the session's token hash (never a token).
      await live.tickets.put(`ws:${hashToken(ticket)}`, request.auth.tokenHash, options.ticketTtlSeconds * 1000)
      return reply.code(201).send({ ticket, expires_in: options.ticketTtlSeconds })
    })
  })

  /** The Bearer header, or else a one-time ticket whose session still lives. */
  const authenticateSocket = async (request: FastifyRequest, reply: FastifyReply) => {
    const ticket = (request.query as { ticket?: unknown }).ticket
    if (request.headers.authorization || typeof ticket !== 'string' || ticket === '') return app.authenticate(request, reply)
    const tokenHash = await live.tickets.take(`ws:${hashToken(ticket)}`)
    const auth = tokenHash ? await app.sessions.authenticateHash(tokenHash) : null
    if (!auth) {
      reply.header('www-authenticate', 'Bearer')
      throw new UnauthenticatedError('The ticket is unknown, used or expired', 'invalid_ticket')
    }
    request.auth = auth
  }

  /**
   * A process full of sockets refuses more before the handshake, and before any sign-in work.
   * Sockets still closing count: each holds a file descriptor until it is gone.
   */
  const ensureRoom = async (_request: FastifyRequest, reply: FastifyReply) => {
    if (app.websocketServer.clients.size < options.maxConnections) return
    reply.header('retry-after', String(FULL_RETRY_AFTER))
    throw new UnavailableError('This server holds as many WebSockets as it takes; try again later or on another server', 'too_many_sockets')
  }

  // Outside the signed-in scope: a socket signs in with a ticket as well as a token, in its own hook.
  app.route({
    method: 'GET',
    url: '/ws',
    // A HEAD of a WebSocket means nothing (and @fastify/websocket's copy of the route can't
    // resolve the shared Problem schema).
    exposeHeadRoute: false,
    onRequest: [ensureRoom, authenticateSocket],
    schema: {
      tags,
      operationId: 'openWebSocket',
      summary: 'Live events (WebSocket)',
      description:
        `Upgrade to a WebSocket, signed in by \`Authorization: Bearer <token>\` or a one-time \`ticket\` from POST /ws/ticket. The server sends JSON \`{type, data}\`: \`message.created\` (data: a message), \`message.read\` (\`{by, up_to, read_at}\`), \`job.updated\` (data: a job), \`payment.updated\` (a job's payment changed without a move of the job: \`{job_id, job_status, payment}\`, to its client and worker; the client reads \`client_secret\` with GET /job), \`job.alert\` (data: an open request near the worker, which it may accept), \`job.closed\` (\`{job_id, status}\`: an open request the worker was alerted to was taken by another, canceled or expired). With \`since=<message id>\` what was missed since that message comes first: the messages sent or received after it, the jobs they tell of as they are now (\`job.updated\`), and the reads (\`message.read\`), then \`replay.done\` (\`{count, events, complete}\`; when not complete, page GET /inbox). The server pings; a client that stops answering, reads too slowly (close 4408) or whose session ends (close 4401) is disconnected. A socket closed with 1012 may have missed events (the server lost its live store's events for a while): reconnect with \`since\` to have the messages replayed. A user holds at most ${options.maxPerUser} sockets on one server: one more closes the oldest with ${CLOSE_TOO_MANY}. A server holding ${options.maxConnections} sockets refuses more with 503 \`too_many_sockets\` and \`Retry-After\`.`,
      security: [...bearerSecurity, {}],
      querystring: WsQuery,
      response: {
        101: { description: 'Switching to the WebSocket protocol', type: 'null' },
        ...problemResponses(401),
        503: { description: 'This server holds as many WebSockets as it takes (`too_many_sockets`); see Retry-After', content: { [PROBLEM_TYPE]: { schema: Problem } } },
      },
    },
    wsHandler: (socket, request) => {
      // Upgrades that passed ensureRoom together may overshoot; the socket itself is counted by now.
      if (app.websocketServer.clients.size > options.maxConnections) {
        socket.close(CLOSE_TRY_AGAIN_LATER, 'too many sockets on this server')
        return
      }
      void hub.attach(socket, request.auth, request.query.since)
    },
    handler: async () => {
      throw new InvalidInputError('GET /ws is a WebSocket: send the Upgrade: websocket headers', [], 'websocket_required')
    },
  })
}
