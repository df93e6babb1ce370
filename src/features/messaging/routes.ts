import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { ConversationList, ConversationQuery, Inbox, InboxQuery, MAX_TEXT_CHARS, Message, ReadBody, SendBody, SendHeaders } from './schemas.js'

const tags = ['messaging']

export async function messagingRoutes(fastify: FastifyInstance) {
  const { messaging } = fastify

  await signedIn(fastify, (app) => {
    app.post('/send', {
      config: { confirmedEmail: true },
      schema: {
        tags,
        operationId: 'sendMessage',
        summary: 'Send a message',
        description: `Stores the message, then pushes \`message.created\` to the recipient's sockets. The text is trimmed and must be 1 to ${MAX_TEXT_CHARS} characters. An \`Idempotency-Key\` header makes a retry answer the first message (with \`Idempotent-Replayed: true\`) instead of sending twice. A user who blocked the sender, or whom the sender blocked, can't be written to (403). A sender whose email is unconfirmed gets 403 \`email_unconfirmed\`. Sends are limited per user (429 with \`Retry-After\`).`,
        security: bearerSecurity,
        headers: SendHeaders,
        body: SendBody,
        response: { 201: Message, ...problemResponses(401, 403, 404, 409) },
      },
    }, async (request, reply) => {
      const { message, replayed } = await messaging.send(request.auth.userId, request.body, request.headers['idempotency-key'])
      if (replayed) reply.header('idempotent-replayed', 'true')
      return reply.code(201).send(message)
    })

    app.get('/inbox', {
      schema: {
        tags,
        operationId: 'getInbox',
        summary: 'The caller\'s messages',
        description: 'Messages the caller received, newest first, with the number unread. With `with`, the conversation with that user in both directions. Pages follow message ids, so messages arriving while a client pages never repeat or push others off a page.',
        security: bearerSecurity,
        querystring: InboxQuery,
        response: { 200: Inbox, ...problemResponses(401) },
      },
    }, async (request) => messaging.inbox(request.auth.userId, request.query))

    app.post('/inbox/read', {
      schema: {
        tags,
        operationId: 'markRead',
        summary: 'Mark messages read',
        description: 'Marks every message the caller received up to `up_to` (one of the caller\'s messages) read, or only those from `with`. Each sender gets a `message.read` event.',
        security: bearerSecurity,
        body: ReadBody,
        response: { 204: Type.Null({ description: 'Marked' }), ...problemResponses(401, 404) },
      },
    }, async (request, reply) => {
      await messaging.markRead(request.auth.userId, request.body.up_to, request.body.with)
      return reply.code(204).send(null)
    })

    app.get('/conversations', {
      schema: {
        tags,
        operationId: 'listConversations',
        summary: 'The caller\'s conversations',
        description: 'One per user the caller exchanged messages with, most recent first, with the last message and the number unread. System messages are in GET /inbox only.',
        security: bearerSecurity,
        querystring: ConversationQuery,
        response: { 200: ConversationList, ...problemResponses(401) },
      },
    }, async (request) => messaging.conversations(request.auth.userId, request.query))
  })
}
