import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { NotFoundError } from '../../errors.js'
import { bearerSecurity, signedIn } from '../../http/auth.js'
import { problemResponses } from '../../http/problems.js'
import { IdParams } from '../../http/schemas.js'
import {
  NotificationSettings, NotificationSettingsBody, Phone, PhoneBody, PhoneConfirmBody, PushSubscription, PushSubscriptionBody,
  PushSubscriptionList, PushSubscriptionListQuery, UnsubscribeQuery, UnsubscribeState, VapidKey,
} from './schemas.js'
import type { PushSubscriptionRow } from './push.js'

const tags = ['notifications']

const subscriptionView = (row: PushSubscriptionRow) => ({ id: row.id, endpoint: row.endpoint, user_agent: row.user_agent, created_at: row.created_at.toISOString() })

export async function notificationsRoutes(fastify: FastifyInstance) {
  const { notifications } = fastify

  // The public key is for apps before sign-in too (a service worker subscribes early).
  fastify.get('/push/vapid-public-key', {
    schema: {
      tags,
      operationId: 'getVapidPublicKey',
      summary: 'The Web Push public key (VAPID)',
      description: 'Pass it as `applicationServerKey` to PushManager.subscribe(), then send the subscription to POST /push/subscriptions.',
      response: { 200: VapidKey, ...problemResponses() },
    },
  }, async () => ({ public_key: notifications.pushPublicKey() }))

  // One-click unsubscribe (RFC 8058): the mail client posts `List-Unsubscribe=One-Click` as a
  // form to the link of the mail's List-Unsubscribe header. Only this plugin's routes read forms.
  fastify.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 1024 }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })

  // The link of a notification mail: no sign-in, the signed token is the whole permission.
  const open = fastify.withTypeProvider<TypeBoxTypeProvider>()
  open.get('/notifications/unsubscribe', {
    schema: {
      tags,
      operationId: 'getUnsubscribe',
      summary: 'What an unsubscribe link of a notification mail turns off',
      description: 'Without signing in: the link\'s token names a user and a kind of event. Answers that kind and whether it is mailed now, and changes nothing (mail scanners open links): POST to the same URL turns the mails off. A token changed or cut short: 400 `invalid_unsubscribe_token`.',
      querystring: UnsubscribeQuery,
      response: { 200: UnsubscribeState, ...problemResponses(400) },
    },
  }, async (request) => notifications.unsubscribeInfo(request.query.token))

  open.post('/notifications/unsubscribe', {
    schema: {
      tags,
      operationId: 'unsubscribe',
      summary: 'Stop the mails of one kind of event (one-click unsubscribe)',
      description: 'Without signing in: turns off the email of the kind of event the link\'s token names, for its user, and nothing else (other kinds, other channels stay). What mail clients post for `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058; the form body is accepted and not needed). Doing it again changes nothing; PUT /user/notifications turns it on again. A token changed or cut short: 400 `invalid_unsubscribe_token`, nothing changed.',
      querystring: UnsubscribeQuery,
      response: { 200: UnsubscribeState, ...problemResponses(400) },
    },
  }, async (request) => notifications.unsubscribeEmail(request.query.token))

  await signedIn(fastify, (app) => {
    app.get('/user/notifications', {
      schema: {
        tags,
        operationId: 'getNotificationSettings',
        summary: 'The caller\'s notification preferences',
        description: 'Per kind of event, whether it reaches the caller in-app, by email, by Web Push and by SMS (defaults until changed), the time zone and the quiet hours.',
        security: bearerSecurity,
        response: { 200: NotificationSettings, ...problemResponses(401) },
      },
    }, async (request) => notifications.settings(request.auth.userId))

    app.put('/user/notifications', {
      schema: {
        tags,
        operationId: 'updateNotificationSettings',
        summary: 'Change the caller\'s notification preferences',
        description: 'Changes what the body names and keeps the rest: one channel of one event (`{events: {message: {push: false}}}`), the time zone (IANA; else 400 `invalid_time_zone`) or the quiet hours (`null` ends them). Answers the preferences as they are now. Several messages in one conversation within a minute reach push and email as one notification.',
        security: bearerSecurity,
        body: NotificationSettingsBody,
        response: { 200: NotificationSettings, ...problemResponses(401) },
      },
    }, async (request) => notifications.updateSettings(request.auth.userId, request.body))

    app.post('/push/subscriptions', {
      schema: {
        tags,
        operationId: 'addPushSubscription',
        summary: 'Receive Web Push on this browser or app',
        description: 'The PushSubscription from PushManager.subscribe() (with the key from GET /push/vapid-public-key) -> 201. Subscribing the same endpoint again updates it (and moves it to the caller). A subscription its push service answers 404 or 410 for is dropped by itself. Endpoints are https (400 `invalid_push_endpoint`); keys must be a P-256 key and a 16-byte secret (400 `invalid_push_keys`).',
        security: bearerSecurity,
        body: PushSubscriptionBody,
        response: { 201: PushSubscription, ...problemResponses(401) },
      },
    }, async (request, reply) => {
      const row = await notifications.subscribe(request.auth.userId, request.body, request.headers['user-agent'] ?? null)
      return reply.code(201).send(subscriptionView(row))
    })

    app.get('/push/subscriptions', {
      schema: {
        tags,
        operationId: 'listPushSubscriptions',
        summary: 'The caller\'s push subscriptions',
        security: bearerSecurity,
        querystring: PushSubscriptionListQuery,
        response: { 200: PushSubscriptionList, ...problemResponses(401) },
      },
    }, async (request) => {
      const page = await notifications.subscriptions(request.auth.userId, request.query)
      return { items: page.items.map(subscriptionView), next_cursor: page.next_cursor }
    })

    app.delete('/push/subscriptions/:id', {
      schema: {
        tags,
        operationId: 'deletePushSubscription',
        summary: 'Stop Web Push to one browser or app',
        description: 'Another user\'s subscription, or none of that id: 404 `push_subscription_not_found`.',
        security: bearerSecurity,
        params: IdParams,
        response: { 204: Type.Null({ description: 'Removed' }), ...problemResponses(401, 404) },
      },
    }, async (request, reply) => {
      await notifications.unsubscribe(request.auth.userId, request.params.id)
      return reply.code(204).send(null)
    })

    app.get('/user/phone', {
      schema: {
        tags,
        operationId: 'getPhone',
        summary: 'The caller\'s phone number for SMS',
        security: bearerSecurity,
        response: { 200: Phone, ...problemResponses(401, 404) },
      },
    }, async (request) => {
      const phone = await notifications.phone(request.auth.userId)
      if (!phone) throw new NotFoundError('You have set no phone number', 'not_found')
      return phone
    })

    app.post('/user/phone', {
      schema: {
        tags,
        operationId: 'setPhone',
        summary: 'Set the caller\'s phone number for SMS',
        description: 'Sends a six-digit code to the number (valid 10 minutes, 5 tries); the number receives SMS notifications only once confirmed with POST /user/phone/confirm. Setting a number again replaces the old one, unconfirmed. At most 5 codes an hour (429).',
        security: bearerSecurity,
        body: PhoneBody,
        response: { 202: Phone, ...problemResponses(401, 429) },
      },
    }, async (request, reply) => reply.code(202).send(await notifications.setPhone(request.auth.userId, request.body.number)))

    app.post('/user/phone/confirm', {
      schema: {
        tags,
        operationId: 'confirmPhone',
        summary: 'Confirm the caller\'s phone number with the code sent to it',
        description: 'A wrong code is 400 `wrong_code`; an expired one, or after 5 wrong tries, 409 `code_expired` (ask for another); no number set, 409 `no_phone_pending`.',
        security: bearerSecurity,
        body: PhoneConfirmBody,
        response: { 200: Phone, ...problemResponses(401, 409) },
      },
    }, async (request) => notifications.confirmPhone(request.auth.userId, request.body.code))
  })
}
