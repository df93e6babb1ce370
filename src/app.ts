import Fastify, { type FastifyInstance } from 'fastify'
import cors from '@fastify/cors'
import multipart from '@fastify/multipart'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import type { DestinationStream } from 'pino'
import type { Config } from './config.js'
import { createAuthenticate } from './http/auth.js'
import { loggerOptions } from './http/logging.js'
import { registerInputGuards } from './http/input-guards.js'
import { registerProblemHandlers } from './http/problems.js'
import { registerRateLimit } from './http/rate-limit.js'
import { DOCS_PREFIX, registerSecurityHeaders } from './http/security-headers.js'
import { localFirstCounters } from './platform/live/local-first-counters.js'
import type { Platform } from './platform/index.js'
import { accountsRoutes } from './features/accounts/routes.js'
import { createAccountsService, type AccountsService } from './features/accounts/service.js'
import { createAccountsStore } from './features/accounts/store.js'
import { sessionsRoutes } from './features/sessions/routes.js'
import { createSessionsService, type SessionsService } from './features/sessions/service.js'
import { systemRoutes } from './features/system/routes.js'
import { locationRoutes } from './features/location/routes.js'
import { createLocationService, type LocationService } from './features/location/service.js'
import { createMessagingService, type MessagingService } from './features/messaging/service.js'
import { createMessagingStore } from './features/messaging/store.js'
import { messagingRoutes } from './features/messaging/routes.js'
import { realtimeRoutes } from './features/realtime/routes.js'
import { jobsRoutes } from './features/jobs/routes.js'
import { createJobsService, type JobsService } from './features/jobs/service.js'
import { createJobsStore } from './features/jobs/store.js'
import { createWorkerLocator } from './features/jobs/locator.js'
import { insertMessages } from './features/messaging/store.js'
import { systemClock, type Clock } from './platform/clock.js'
import { createPaymentProvider, type PaymentProvider } from './platform/payments/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    platform: Platform
    accounts: AccountsService
    sessions: SessionsService
    location: LocationService
    messaging: MessagingService
    jobs: JobsService
    clock: Clock
  }
}

export interface AppOptions {
  /** Where log lines go instead of stdout (tests read them). */
  logStream?: DestinationStream
  /** What time it is, for everything time-driven (tests pass a clock they move). */
  clock?: Clock
  /** Who takes payments, instead of the provider the config names. */
  payments?: PaymentProvider
}

/** Two Ajv instances: query strings, params and headers are coerced from text; bodies never are. */
function validatorCompiler() {
  const common = { useDefaults: true, allErrors: false, addUsedSchema: false, strict: false } as const
  const forBody = new Ajv({ ...common, coerceTypes: false, removeAdditional: false })
  const forText = new Ajv({ ...common, coerceTypes: 'array', removeAdditional: false })
  addFormats.default(forBody)
  addFormats.default(forText)
  return ({ schema, httpPart }: { schema: object; httpPart?: string }) =>
    (httpPart === 'body' ? forBody : forText).compile(schema)
}

export async function buildApp(config: Config, platform: Platform, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    ...loggerOptions({ level: config.logLevel, pretty: config.debug, stream: options.logStream }),
    bodyLimit: 1024 * 1024,
    trustProxy: true,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  })
  app.setValidatorCompiler(validatorCompiler())
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
  registerProblemHandlers(app)
  // JSON in and out: a text/plain body is refused (415) rather than parsed into a string.
  app.removeContentTypeParser('text/plain')
  registerInputGuards(app)

  app.decorate('config', config)
  app.decorate('platform', platform)

  registerSecurityHeaders(app)
  await app.register(cors, {
    origin: config.corsOrigins.length > 0 ? config.corsOrigins : false,
    exposedHeaders: ['x-request-id', 'retry-after', 'etag', 'www-authenticate'],
  })
  await app.register(multipart, { throwFileSizeLimit: true })
  // Rate limits count in this process first and in the live store every 100 ms, so that a
  // request costs no round trip for them; failed sign-ins count in the live store directly.
  const limits = localFirstCounters(platform.live.counters, { onFlushError: (err) => app.log.warn({ err }, 'could not add rate-limit hits to the live store') })
  app.addHook('onClose', async () => limits.close())
  await registerRateLimit(app, limits, config.rateLimitMax)

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Freelancer API',
        version: '0.1.0',
        description: 'Backend of a local-services marketplace. Errors are RFC 9457 `application/problem+json`. Lists page with an opaque `cursor`.',
      },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'The access_token from POST /authorize' } } },
    },
  })
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX, staticCSP: true, uiConfig: { deepLinking: true } })
  app.get('/openapi.json', { schema: { hide: true }, config: { rateLimit: false } }, async () => app.swagger())

  // Features: stores talk to storage, services decide, routes parse and answer.
  const accountsStore = createAccountsStore(platform.database.db)
  const sessions = createSessionsService({ live: platform.live, accounts: accountsStore, hasher: platform.hasher, config })
  const accounts = createAccountsService({
    store: accountsStore,
    hasher: platform.hasher,
    endSessions: sessions.endAll,
    publicUrl: config.publicUrl,
    events: platform.live.events,
    log: app.log,
  })
  await accounts.start()
  app.addHook('onClose', async () => accounts.close())
  app.decorate('accounts', accounts)
  app.decorate('sessions', sessions)
  app.decorate('authenticate', createAuthenticate(sessions.authenticate))
  const clock = options.clock ?? systemClock
  app.decorate('clock', clock)
  const messaging = createMessagingService({ store: createMessagingStore(platform.database.db), live: platform.live, sendLimits: limits, pictureUrl: accounts.pictureUrl, sendRateLimit: config.sendRateLimit, clock })
  await messaging.start()
  app.decorate('messaging', messaging)
  accounts.onDeleted((userId) => messaging.forgetUser(userId))
  app.addHook('onClose', async () => messaging.close())
  // Live location and search. Search leaves out those the viewer blocked and those who blocked
  // the viewer (messaging knows).
  const location = createLocationService({
    store: platform.live.locations,
    users: accounts.byIds,
    hiddenFrom: messaging.hiddenFrom,
    view: accounts.view,
    isAdmin: accounts.isAdmin,
    stillSignedIn: sessions.stillSignedIn,
    defaultTtl: config.locationDefaultTtl,
  })
  app.decorate('location', location)
  accounts.onDeleted((userId) => location.remove(userId))
  accounts.onChanged((user, before) => location.refresh(user, before))
  sessions.onSignedOut((userId) => location.remove(userId))

  const jobs = createJobsService({
    db: platform.database.db,
    store: createJobsStore(platform.database.db),
    clock,
    events: platform.live.events,
    messages: { insert: insertMessages, publish: messaging.publishCreated, contextOf: messaging.contextOf },
    payments: options.payments ?? createPaymentProvider(config.payments),
    locator: createWorkerLocator({ locations: platform.live.locations, search: location.search }),
    settings: {
      autoApproveAfterMs: config.jobAutoApproveAfter * 1000,
      reminderBeforeMs: config.jobReminderBefore * 1000,
      paymentRetryMs: 5 * 60_000,
    },
    log: app.log,
  })
  app.decorate('jobs', jobs)
  accounts.onDeleted((userId) => jobs.cancelOpenJobsOf(userId))
  jobs.start(config.jobSweepInterval * 1000)
  app.addHook('onClose', async () => jobs.stop())

  await app.register(systemRoutes)
  await app.register(accountsRoutes, { authRateLimitMax: config.authRateLimitMax, pictureMaxBytes: config.pictureMaxBytes })
  await app.register(sessionsRoutes, { authRateLimitMax: config.authRateLimitMax })
  await app.register(locationRoutes)
  await app.register(messagingRoutes)
  await app.register(realtimeRoutes, { heartbeatMs: config.wsHeartbeatInterval, maxBufferedBytes: config.wsMaxBufferedBytes, ticketTtlSeconds: config.wsTicketTtl })
  await app.register(jobsRoutes)

  return app
}
