import Fastify, { type FastifyInstance } from 'fastify'
import cors from '@fastify/cors'
import type { DestinationStream } from 'pino'
import type { Config } from './config.js'
import { createAuthenticate } from './http/auth.js'
import { loggerOptions, logStatements } from './http/logging.js'
import { registerInputGuards } from './http/input-guards.js'
import { buildSerializer, validatorCompiler } from './http/schema-compilers.js'
import { answerClientError, answerFrameworkError, registerProblemHandlers } from './http/problems.js'
import { registerRateLimit } from './http/rate-limit.js'
import { registerOpenApi, SHARED_SCHEMAS } from './http/openapi.js'
import { APP_VERSION } from './version.js'
import { registerSecurityHeaders, setApiSecurityHeaders } from './http/security-headers.js'
import type { Platform } from './platform/index.js'
import { createServices, type Services, type ServicesOptions } from './services.js'
import { accountsRoutes } from './features/accounts/routes.js'
import { blocksRoutes } from './features/blocks/routes.js'
import { jobsRoutes } from './features/jobs/routes.js'
import { locationRoutes } from './features/location/routes.js'
import { messagingRoutes } from './features/messaging/routes.js'
import { realtimeRoutes } from './features/realtime/routes.js'
import { sessionsRoutes } from './features/sessions/routes.js'
import { identityRoutes } from './features/identity/routes.js'
import { systemRoutes } from './features/system/routes.js'
import { tasksRoutes } from './features/tasks/index.js'
import { twoFactorRoutes } from './features/twofactor/routes.js'
import { oidcRoutes } from './features/oidc/routes.js'
import { trackingRoutes } from './features/tracking/routes.js'
import { notificationsRoutes } from './features/notifications/routes.js'
import { adminRoutes } from './features/admin/routes.js'
import { categoriesRoutes } from './features/categories/routes.js'
import { profilesRoutes } from './features/profiles/routes.js'
import { reviewsRoutes } from './features/reviews/routes.js'
import { paymentsRoutes } from './features/payments/routes.js'
import { alertsRoutes } from './features/alerts/routes.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    platform: Platform
    accounts: Services['accounts']
    sessions: Services['sessions']
    twoFactor: Services['twoFactor']
    oidc: Services['oidc']
    identity: Services['identity']
    mail: Services['mail']
    blocks: Services['blocks']
    location: Services['location']
    messaging: Services['messaging']
    jobs: Services['jobs']
    alerts: Services['alerts']
    tracking: Services['tracking']
    notifications: Services['notifications']
    payments: Services['payments']
    tasks: Services['tasks']
    categories: Services['categories']
    profiles: Services['profiles']
    reviews: Services['reviews']
    admin: Services['admin']
    clock: Services['clock']
  }
}

export interface AppOptions extends Omit<ServicesOptions, 'log'> {
  /** Where log lines go instead of stdout (tests read them). */
  logStream?: DestinationStream
  /**
   * Services built already (by createServices), to serve instead of building them: their owner
   * closes them, not the app.
   */
  services?: Services
}

function trustNearestHops(hops: number) {
  return (_address: string, hop: number) => hop < hops
}

export async function buildApp(config: Config, platform: Platform, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    ...loggerOptions({ level: config.logLevel, pretty: config.debug, stream: options.logStream }),
    bodyLimit: 1024 * 1024,
    // Fastify 5 ignores a bare hop count (it can't tell the proxy from a client), so a count is
    // passed as what it means: trust the nearest `n` hops.
    trustProxy: typeof config.trustProxy === 'number' ? trustNearestHops(config.trustProxy) : config.trustProxy,
    // Slow clients hold a connection for a bounded time only: headers, the whole request (a body
    // dribbled a byte at a time answers 408), and the idle time between two kept-alive requests.
    requestTimeout: config.httpRequestTimeout,
    clientErrorHandler: answerClientError,
    frameworkErrors: (error, request, reply) => {
      setApiSecurityHeaders(reply)
      return answerFrameworkError(error, request, reply)
    },
    keepAliveTimeout: config.httpKeepAliveTimeout,
    http: {
      headersTimeout: config.httpHeadersTimeout,
      // Node checks the two timeouts every 30 s by default, which would let a request overstay
      // a short bound by that much.
      connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(config.httpHeadersTimeout / 4))),
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Response serializers are made at a route's first answer of each status, not all at start.
    schemaController: { compilersFactory: { buildSerializer } },
  })
  app.setValidatorCompiler(validatorCompiler())
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema)
  registerProblemHandlers(app)
  // Shutting down, Fastify answers requests that still arrive on open connections 503 by itself,
  // before any hook (return503OnClosing); this listener, ahead of Fastify's, adds Retry-After so
  // that clients come back (to another process) rather than give up.
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  app.server.prependListener('request', (_request, response) => {
    if (closing) response.setHeader('retry-after', '1')
  })
  if (config.debug) logStatements(app, platform.database)
  // JSON in and out: a text/plain body is refused (415) rather than parsed into a string.
  app.removeContentTypeParser('text/plain')
  registerInputGuards(app)

  // The services, built here with the app's log unless given; closed with the app when built here.
  const services = options.services ?? (await createServices(config, platform, { log: app.log, clock: options.clock, payments: options.payments, sms: options.sms, mail: options.mail, pushAgent: options.pushAgent }))
  if (!options.services) app.addHook('onClose', async () => services.close())
  app.decorate('config', config)
  app.decorate('platform', platform)
  app.decorate('clock', services.clock)
  app.decorate('accounts', services.accounts)
  app.decorate('sessions', services.sessions)
  app.decorate('twoFactor', services.twoFactor)
  app.decorate('oidc', services.oidc)
  app.decorate('identity', services.identity)
  app.decorate('mail', services.mail)
  app.decorate('blocks', services.blocks)
  app.decorate('location', services.location)
  app.decorate('messaging', services.messaging)
  app.decorate('jobs', services.jobs)
  app.decorate('alerts', services.alerts)
  app.decorate('tracking', services.tracking)
  app.decorate('notifications', services.notifications)
  app.decorate('payments', services.payments)
  app.decorate('tasks', services.tasks)
  app.decorate('categories', services.categories)
  app.decorate('profiles', services.profiles)
  app.decorate('reviews', services.reviews)
  app.decorate('admin', services.admin)
  app.decorate('authenticate', createAuthenticate(services.sessions.authenticate))

  registerSecurityHeaders(app)
  await app.register(cors, {
    origin: config.corsOrigins.length > 0 ? config.corsOrigins : false,
    exposedHeaders: ['x-request-id', 'retry-after', 'etag', 'www-authenticate'],
  })
  await registerRateLimit(app, services.limits, config.rateLimitMax)

  await registerOpenApi(app, { version: APP_VERSION, publicUrl: config.publicUrl })

  // Features' routes. Those that need a signed-in caller are registered by each feature in a
  // scope that authenticates every route in it (signedIn, src/http/auth.ts); the few open to
  // anyone (health, sign-up, sign-in, pictures, the socket with its ticket) are named outside it.
  await app.register(systemRoutes)
  await app.register(accountsRoutes, { authRateLimitMax: config.authRateLimitMax, pictureMaxBytes: config.pictureMaxBytes })
  await app.register(sessionsRoutes, { authRateLimitMax: config.authRateLimitMax })
  await app.register(twoFactorRoutes, { authRateLimitMax: config.authRateLimitMax })
  await app.register(oidcRoutes, { authRateLimitMax: config.authRateLimitMax })
  await app.register(identityRoutes, { authRateLimitMax: config.authRateLimitMax })
  await app.register(locationRoutes)
  await app.register(messagingRoutes)
  await app.register(blocksRoutes)
  await app.register(realtimeRoutes, { heartbeatMs: config.wsHeartbeatInterval, maxBufferedBytes: config.wsMaxBufferedBytes, ticketTtlSeconds: config.wsTicketTtl, maxPerUser: config.wsMaxPerUser, maxConnections: config.wsMaxConnections })
  await app.register(jobsRoutes)
  await app.register(alertsRoutes)
  await app.register(trackingRoutes)
  await app.register(notificationsRoutes)
  await app.register(paymentsRoutes)
  await app.register(tasksRoutes)
  await app.register(categoriesRoutes)
  await app.register(profilesRoutes)
  await app.register(reviewsRoutes)
  await app.register(adminRoutes)

  return app
}
