import type { BaseLogger } from 'pino'
import type { Config } from './config.js'
import { systemClock, type Clock } from './platform/clock.js'
import type { Platform } from './platform/index.js'
import { localFirstCounters, type LocalFirstCounters } from './platform/live/local-first-counters.js'
import { createLocalPaymentProvider, createStripePaymentProvider, type LocalPaymentProvider, type PaymentProvider } from './platform/payments/index.js'
import { createPaymentsService, createPaymentsStore } from './features/payments/index.js'
import { createAccountsService, createAccountsStore } from './features/accounts/index.js'
import { createBlocksService, createBlocksStore } from './features/blocks/index.js'
import { createLocationService } from './features/location/index.js'
import { createMessagingService, createMessagingStore, insertMessages } from './features/messaging/index.js'
import { createSessionsService } from './features/sessions/index.js'
import { createTasksService } from './features/tasks/index.js'
import { createTwoFactorService, createTwoFactorStore } from './features/twofactor/index.js'
import { createOidcService, createOidcStore } from './features/oidc/index.js'
import { createOidcClients } from './platform/oidc.js'
import { createJobsService, createJobsStore, createWorkerLocator } from './features/jobs/index.js'
import { createMailService } from './features/mail/index.js'
import { createIdentityService } from './features/identity/index.js'
import { createMailer } from './platform/mail/index.js'
import { loadPasswordPolicy } from './features/accounts/index.js'
import { createTrackingService, createTrackingStore } from './features/tracking/index.js'
import { createNotificationsService, createNotificationsStore, createPushStore, loadVapidKeys, logOnlySmsProvider, type NotificationMail, type SmsProvider } from './features/notifications/index.js'
import { createAdminService, createAuditStore } from './features/admin/index.js'
import { createCategoriesService } from './features/categories/index.js'
import { createProfilesService } from './features/profiles/index.js'
import { createReviewsService, type ReviewsService } from './features/reviews/index.js'
import { createAlertsService, createAlertsStore } from './features/alerts/index.js'

// The composition root: every feature's service, built on the platform and wired to the others,
// with no HTTP in sight. The API (buildApp) serves them; command-line tools use them directly.

/** Where the services write their log lines: pino, or a Fastify instance's log (pino too). */
export type ServicesLogger = Pick<BaseLogger, 'debug' | 'info' | 'warn' | 'error'>

export interface ServicesOptions {
  log: ServicesLogger
  /** What time it is, for everything time-driven (tests pass a clock they move). */
  clock?: Clock
  /** Who takes payments, instead of the provider the config names. */
  payments?: PaymentProvider
  /** Who sends SMS, instead of the log-only default. */
  sms?: SmsProvider
  /** How to reach push services (an https.Agent: a proxy's, or one trusting a test's own certificate). */
  pushAgent?: import('node:https').Agent
  /** The mail outbox the email notifications go through instead of the app's own (identity's outbox). */
  mail?: NotificationMail
}

export async function createServices(config: Config, platform: Platform, options: ServicesOptions) {
  const { log } = options
  const clock = options.clock ?? systemClock
  const db = platform.database.db
  // What start()ed, closed in the reverse order: what depends on others stops before them.
  const started: { name: string; close: () => Promise<void> }[] = []
  const close = async () => {
    for (const { name, close } of started.splice(0).reverse()) {
      await close().catch((error: unknown) => log.error({ err: error }, `could not close the ${name}`))
    }
  }

  try {
    // Rate limits count in this process first and in the live store every 100 ms, so that a
    // request costs no round trip for them; failed sign-ins count in the live store directly.
    const limits: LocalFirstCounters = localFirstCounters(platform.live.counters, { onFlushError: (err) => log.warn({ err }, 'could not add rate-limit hits to the live store') })
    started.push({ name: 'rate-limit counters', close: () => limits.close() })

    // Sessions are in the database; each process keeps the authentications it serves, and hears
    // of every change to them through the database (NOTIFY in the changing transaction).
    const accountsStore = createAccountsStore(db)
    const sessions = createSessionsService({ db, listen: platform.database.listen, inProcess: platform.database.kind === 'pglite', counters: platform.live.counters, accounts: accountsStore, hasher: platform.hasher, config, clock, log })
    await sessions.start()
    started.push({ name: 'sessions', close: () => sessions.close() })
    const accounts = createAccountsService({
      store: accountsStore,
      hasher: platform.hasher,
      sessions,
      publicUrl: config.publicUrl,
      events: platform.live.events,
      log,
      clock,
      queue: platform.queue,
    })
    await accounts.start()
    started.push({ name: 'accounts', close: () => accounts.close() })

    // Mail: every one through the outbox, sent (or written as an .eml file) by the queue's workers.
    const mailer = createMailer({ smtpUrl: config.smtpUrl, mailDir: config.mailDir, from: config.mailFrom })
    const mail = createMailService({ queue: platform.queue, mailer, retryDelaySeconds: config.mailRetryDelay, log })
    await mail.start({ from: config.mailFrom })
    started.push({ name: 'mail', close: () => mail.close() })
    if (!config.smtpUrl) log.info({ mail_dir: config.mailDir }, `mails are written as .eml files in ${config.mailDir} (SMTP_URL is unset)`)

    // Confirmation of emails, password resets, changes of email, new devices: links mailed to users.
    loadPasswordPolicy()
    const identity = createIdentityService({
      db,
      accounts,
      mail,
      hasher: platform.hasher,
      queue: platform.queue,
      clock,
      appUrl: config.publicUrl ?? `http://localhost:${config.port}`,
      productName: config.productName,
    })
    await identity.start()
    started.push({ name: 'identity', close: () => identity.close() })
    sessions.onSignedIn((trx, user, context) => identity.signedIn(trx, user, context))

    // Two-factor sign-in: every sign-in whose first factor passed asks it for a challenge.
    const twoFactor = createTwoFactorService({ store: createTwoFactorStore(db), accounts: accountsStore, sessions, hasher: platform.hasher, clock, encryptionKey: config.totpEncryptionKey, issuer: config.productName, log })
    await twoFactor.start()
    started.push({ name: 'two-factor', close: () => twoFactor.close() })

    // Sign-in with OpenID Connect providers; an account's identities go with it.
    const oidc = createOidcService({ store: createOidcStore(db), clients: createOidcClients(config.oidcProviders, config.publicUrl, () => clock.now()), sessions, appRedirects: config.oidcAppRedirects, clock, log })
    await oidc.start()
    started.push({ name: 'sign-in with providers', close: () => oidc.close() })
    accounts.onDeleted((userId) => oidc.forgetUser(userId))
    // What admins do is appended to the audit log in the transaction of the act.
    const audit = createAuditStore(db)
    // An admin's acts through the accounts' own routes (POST /user, DELETE /user with an id) too.
    accounts.recordAdminActsWith((trx, context, entry, at) => audit.record(trx, context, entry, at))
    const categories = createCategoriesService({ db, events: platform.live.events, audit, clock })
    await categories.start()
    started.push({ name: 'categories', close: () => categories.close() })
    const profiles = createProfilesService({ db, events: platform.live.events, clock, categories, accounts })
    await profiles.start()
    started.push({ name: 'profiles', close: () => profiles.close() })
    // Reviews are built after the map they show ratings on; reports name them before that.
    let reviews: ReviewsService | undefined

    const messaging = createMessagingService({ store: createMessagingStore(db), live: platform.live, sendLimits: limits, summary: accounts.summary, sendRateLimit: config.sendRateLimit, clock })
    await messaging.start()
    started.push({ name: 'messaging', close: () => messaging.close() })
    accounts.onDeleted((userId) => messaging.forgetUser(userId))

    // Blocks stop messages both ways (a send reads them in its own statement) and hide users
    // from each other's searches.
    const blocks = createBlocksService({ db, store: createBlocksStore(db), queue: platform.queue, events: platform.live.events, summary: accounts.summary, receivedMessage: messaging.received, visibleReview: (id) => reviews!.visible(id), clock })
    await blocks.start()
    started.push({ name: 'blocks', close: () => blocks.close() })
    accounts.onDeleted((userId) => blocks.forgetUser(userId))

    // Live job tracking: a worker's exact position goes to its job's client alone.
    const tracking = createTrackingService({ store: createTrackingStore(db), events: platform.live.events, clock, log })
    await tracking.start()
    started.push({ name: 'tracking', close: () => tracking.close() })

    // Live location and search. Search leaves out those the viewer blocked and those who blocked
    // the viewer.
    const location = createLocationService({
      store: platform.live.locations,
      users: accounts.byIds,
      hiddenFrom: blocks.hiddenFrom,
      view: accounts.view,
      isAdmin: accounts.isAdmin,
      sessions,
      defaultTtl: config.locationDefaultTtl,
      clock,
      tracking,
      facets: profiles.facets,
      categoryScope: categories.withDescendants,
    })
    // A profile or a rating that changes shows in searches at once; the map is live state, so a
    // failure there is logged, never the change's.
    profiles.onFacetsChanged((userIds) => location.refreshFacets(userIds).catch((err: unknown) => log.warn({ err }, 'could not show a profile change on the map')))
    accounts.onDeleted((userId) => location.forget(userId))
    accounts.onChanged((user, before) => location.refresh(user, before))
    sessions.onSignedOut((userId) => location.remove(userId))
    sessions.onChanged((userIds) => void location.sessionsChanged(userIds).catch((err: unknown) => log.warn({ err }, 'could not check a location post against its session again')))

    // Payments: escrow through the provider (Stripe Connect's separate charges and transfers).
    const provider = options.payments ?? paymentProviderOf(config)
    // The local provider keeps its state (Stripe's test mode, embedded) in the app's database.
    if ('useDatabase' in provider && typeof provider.useDatabase === 'function') (provider as LocalPaymentProvider).useDatabase(db)
    const payments = createPaymentsService({
      db,
      store: createPaymentsStore(db),
      provider,
      clock,
      queue: platform.queue,
      events: platform.live.events,
      messages: { insert: insertMessages, publish: messaging.publishCreated },
      isAdmin: async (userId) => (await accounts.byIds([userId])).get(userId)?.roles.includes('ADMIN') ?? false,
      audit,
      hasRole: async (userId, role) => (await accounts.byIds([userId])).get(userId)?.roles.includes(role) ?? false,
      emailOf: async (userId) => (await accounts.byIds([userId])).get(userId)?.email ?? null,
      settings: { feeBps: config.platformFeeBps, publicUrl: config.publicUrl ?? '' },
      log,
    })
    await payments.start()
    started.push({ name: 'payments', close: () => payments.stop() })

    // Job alerts: who an open request reaches (the live map, as the client's search finds it, and saved alerts).
    const alerts = createAlertsService({
      store: createAlertsStore(db),
      clock,
      search: location.search,
      isWorker: async (userId) => (await accounts.byIds([userId])).get(userId)?.roles.includes('WORKER') ?? false,
      checkCategories: (ids, field) => categories.checkOffered(ids, field),
      reachOf: (id) => categories.withRelatives(id),
      log,
    })
    accounts.onDeleted((userId) => alerts.forgetUser(userId))

    const jobs = createJobsService({
      db,
      store: createJobsStore(db),
      clock,
      events: platform.live.events,
      messages: { insert: insertMessages, publish: messaging.publishCreated, contextOf: messaging.contextOf },
      escrow: payments,
      queue: platform.queue,
      locator: createWorkerLocator({ locations: platform.live.locations, search: location.search }),
      settings: {
        autoApproveAfterMs: config.jobAutoApproveAfter * 1000,
        reminderBeforeMs: config.jobReminderBefore * 1000,
        paymentRetryMs: 5 * 60_000,
        feeBps: config.platformFeeBps,
      },
      log,
      onChanged: (row, before) => tracking.jobChanged(row, before),
      checkCategory: (id, field) => categories.checkOffered([id], field),
      audience: (request) => alerts.audience(request),
    })
    accounts.onDeleted((userId) => jobs.cancelOpenJobsOf(userId))
    payments.payoutWith((jobId) => jobs.payOrFail(jobId))
    await jobs.start(config.jobSweepInterval * 1000)
    started.push({ name: 'jobs', close: () => jobs.stop() })

    // Notifications: every message stored is an event for its recipient's channels (in-app, email,
    // Web Push, SMS), relayed after its commit into per-channel queue tasks.
    const pushStore = createPushStore(db)
    const notifications = createNotificationsService({
      db,
      store: createNotificationsStore(db),
      push: {
        store: pushStore,
        vapid: await loadVapidKeys(db, { publicKey: config.vapidPublicKey, privateKey: config.vapidPrivateKey }),
        subject: config.vapidSubject,
        agent: options.pushAgent,
        allow: config.pushEndpointAllow,
      },
      sms: options.sms ?? logOnlySmsProvider(log),
      // Email notifications go through the mail outbox (SMTP, or .eml files); a test may pass its own.
      mail: options.mail ?? mail,
      apiUrl: config.publicUrl ?? `http://localhost:${config.port}`,
      counters: platform.live.counters,
      queue: platform.queue,
      listen: platform.database.listen,
      events: platform.live.events,
      clock,
      log,
    })
    await notifications.start(config.notificationSweepInterval * 1000)
    started.push({ name: 'notifications', close: () => notifications.close() })
    accounts.onDeleted((userId) => notifications.forgetUser(userId))

    // Background tasks' failures land in the log; their dead letters are the admins' to see.
    platform.queue.onError((error) => log.error({ err: error }, 'a background task failed'))
    const tasks = createTasksService({ queue: platform.queue, isAdmin: accounts.isAdmin, shownData: mail.shownData, db, audit, clock })

    // Reviews: published blind, their ratings shown in search once public.
    reviews = createReviewsService({ db, clock, queue: platform.queue, audit, summary: accounts.summary, ratingsChanged: (ids) => profiles.facetsChanged(ids), messages: { insert: insertMessages, publish: messaging.publishCreated }, log })
    await reviews.start()
    const startedReviews = reviews
    started.push({ name: 'reviews', close: () => startedReviews.close() })

    const admin = createAdminService({ db, clock, audit, accounts, sessions, offTheMap: (userId) => location.remove(userId), jobs, reviews, log })

    return { clock, limits, accounts, sessions, mail, identity, twoFactor, oidc, messaging, blocks, location, tracking, payments, alerts, jobs, notifications, tasks, categories, profiles, reviews: startedReviews, admin, close }
  } catch (error) {
    await close()
    throw error
  }
}

/** The provider the config names: `local` (Stripe's test mode, embedded) or Stripe itself. */
export function paymentProviderOf(config: Config): PaymentProvider {
  if (config.payments === 'stripe') {
    return createStripePaymentProvider({ secretKey: config.stripeSecretKey!, webhookSecret: config.stripeWebhookSecret!, apiUrl: config.stripeApiUrl })
  }
  return createLocalPaymentProvider({ publicUrl: config.publicUrl, webhookSecret: config.stripeWebhookSecret })
}

export type Services = Awaited<ReturnType<typeof createServices>>
