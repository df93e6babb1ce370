import type { BaseLogger } from 'pino'
import type { Config } from './config.js'
import { systemClock, type Clock } from './platform/clock.js'
import type { Platform } from './platform/index.js'
import { localFirstCounters, type LocalFirstCounters } from './platform/live/local-first-counters.js'
import { createLocalPaymentProvider, createStripePaymentProvider, type PaymentProvider } from './platform/payments/index.js'
import { createPaymentsService, createPaymentsStore } from './features/payments/index.js'
import { createAccountsService, createAccountsStore } from './features/accounts/index.js'
import { createBlocksService, createBlocksStore } from './features/blocks/index.js'
import { createLocationService } from './features/location/index.js'
import { createMessagingService, createMessagingStore, insertMessages } from './features/messaging/index.js'
import { createSessionsService } from './features/sessions/index.js'
import { createTasksService } from './features/tasks/index.js'
import { createJobsService, createJobsStore, createWorkerLocator } from './features/jobs/index.js'

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

    const messaging = createMessagingService({ store: createMessagingStore(db), live: platform.live, sendLimits: limits, summary: accounts.summary, sendRateLimit: config.sendRateLimit, clock })
    await messaging.start()
    started.push({ name: 'messaging', close: () => messaging.close() })
    accounts.onDeleted((userId) => messaging.forgetUser(userId))

    // Blocks stop messages both ways (a send reads them in its own statement) and hide users
    // from each other's searches.
    const blocks = createBlocksService({ db, store: createBlocksStore(db), queue: platform.queue, events: platform.live.events, summary: accounts.summary, receivedMessage: messaging.received, clock })
    await blocks.start()
    started.push({ name: 'blocks', close: () => blocks.close() })
    accounts.onDeleted((userId) => blocks.forgetUser(userId))

    // Live location and search. Search leaves out those the viewer blocked and those who blocked
    // the viewer.
    const location = createLocationService({
      store: platform.live.locations,
      users: accounts.byIds,
      hiddenFrom: blocks.hiddenFrom,
      view: accounts.view,
      isAdmin: accounts.isAdmin,
      stillSignedIn: sessions.stillSignedIn,
      defaultTtl: config.locationDefaultTtl,
      clock,
    })
    accounts.onDeleted((userId) => location.forget(userId))
    accounts.onChanged((user, before) => location.refresh(user, before))
    sessions.onSignedOut((userId) => location.remove(userId))

    // Payments: escrow through the provider (Stripe Connect's separate charges and transfers).
    const provider = options.payments ?? paymentProviderOf(config)
    const payments = createPaymentsService({
      db,
      store: createPaymentsStore(db),
      provider,
      clock,
      queue: platform.queue,
      messages: { insert: insertMessages, publish: messaging.publishCreated },
      isAdmin: async (userId) => (await accounts.byIds([userId])).get(userId)?.roles.includes('ADMIN') ?? false,
      hasRole: async (userId, role) => (await accounts.byIds([userId])).get(userId)?.roles.includes(role) ?? false,
      emailOf: async (userId) => (await accounts.byIds([userId])).get(userId)?.email ?? null,
      settings: { feeBps: config.platformFeeBps, publicUrl: config.publicUrl ?? '' },
      log,
    })
    await payments.start()
    started.push({ name: 'payments', close: () => payments.stop() })

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
    })
    accounts.onDeleted((userId) => jobs.cancelOpenJobsOf(userId))
    await jobs.start(config.jobSweepInterval * 1000)
    started.push({ name: 'jobs', close: () => jobs.stop() })

    // Background tasks' failures land in the log; their dead letters are the admins' to see.
    platform.queue.onError((error) => log.error({ err: error }, 'a background task failed'))
    const tasks = createTasksService({ queue: platform.queue, isAdmin: accounts.isAdmin })

    return { clock, limits, accounts, sessions, messaging, blocks, location, payments, jobs, tasks, close }
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
