import { createHash, randomInt, timingSafeEqual } from 'node:crypto'
import { ConflictError, InvalidInputError, NotFoundError, TooManyRequestsError } from '../../errors.js'
import { decodeCursor, pageOf } from '../../http/cursor.js'
import { Type } from 'typebox'
import type { Clock } from '../../platform/clock.js'
import type { DB, Listen } from '../../platform/db/index.js'
import type { EventBus } from '../../platform/live/index.js'
import type { Queue, StopHandling } from '../../platform/queue/index.js'
import { classify, clip, contentOf } from './content.js'
import { createDeliver, DELIVER_TASK, SKIPPED, taskId } from './deliver.js'
import type { NotificationMail } from './mail.js'
import { checkPushEndpoint, type PushStore, type VapidKeys } from './push.js'
import {
  CHANNELS, choiceFor, DEFAULT_SETTINGS, EVENT_TYPE_NAMES, isTimeZone, QUEUED_CHANNELS, quietUntil,
  type ChannelChoice, type EventType, type NotificationSettingsRow, type QueuedChannel,
} from './preferences.js'
import type { SmsProvider } from './sms.js'
import type { EventSource, NotificationRow, NotificationsStore } from './store.js'
import { loadUnsubscribeKey, readUnsubscribeToken, unsubscribeToken } from './unsubscribe.js'

export { classify } from './content.js'
export { DELIVER_TASK } from './deliver.js'

// Notifications: each message stored (a user's, or a job's system message) is an event for its
// recipient. The relay turns events (recorded by a trigger with the message) into a notification
// and one delivery per channel the user chose; each delivery is a queue task of its own, retried
// on its own, so one failing channel never holds up another, and nothing here can fail the change
// that caused it. A delivery's row says whether it went: a task run twice sends once.

/** Messages in one conversation within this window go out as one push (and one mail). */
export const GROUP_WINDOW_MS = 60_000
const RELAY_BATCH = 100
/** How long events gather before a relay run (a burst is one batch). */
const RELAY_DELAY_MS = 20
const DUE_BATCH = 500
const PHONE_CODE_TTL_MS = 10 * 60_000
const PHONE_CODE_ATTEMPTS = 5
/** Codes sent to one user within an hour at most. */
const PHONE_CODES_PER_HOUR = 5

const hashCode = (userId: string, code: string) => createHash('sha256').update(`${userId}:${code}`).digest('base64url')

export interface NotificationsDeps {
  db: DB
  store: NotificationsStore
  push: {
    store: PushStore
    vapid: VapidKeys
    subject: string
    agent?: import('node:https').Agent
    /** Hosts whose endpoints skip the check of their addresses (PUSH_ENDPOINT_ALLOW). */
    allow?: readonly string[]
  }
  sms: SmsProvider
  /** The mail outbox; absent, the email channel reports `not configured`. */
  mail?: NotificationMail
  /** This API's base URL, for the unsubscribe links in mails. */
  apiUrl: string
  /** Counts codes sent per user (the live store's counters). */
  counters: { hit(key: string, windowMs: number): Promise<{ count: number; resetMs: number }> }
  queue: Queue
  listen: Listen
  events: EventBus
  clock: Clock
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void }
}

export interface NotificationSettingsView {
  time_zone: string
  quiet_hours: { start: string; end: string } | null
  events: Record<EventType, ChannelChoice>
}

export interface NotificationSettingsInput {
  time_zone?: string
  quiet_hours?: { start: string; end: string } | null
  events?: Partial<Record<EventType, Partial<ChannelChoice>>>
}

const SubscriptionCursor = Type.Object({ id: Type.String({ format: 'uuid' }) })

export function createNotificationsService(deps: NotificationsDeps) {
  const { db, store, queue, clock, log } = deps

  // The unsubscribe links' signing key, read (or made) on first use.
  let unsubscribeKey: Promise<Buffer> | undefined
  const keyOf = () => {
    unsubscribeKey ??= loadUnsubscribeKey(db).catch((error: unknown) => {
      unsubscribeKey = undefined
      throw error
    })
    return unsubscribeKey
  }
  const unsubscribeUrl = async (userId: string, event: EventType) => `${deps.apiUrl}/notifications/unsubscribe?token=${unsubscribeToken(await keyOf(), userId, event)}`
  const tokenFacts = async (token: string) => {
    const facts = readUnsubscribeToken(await keyOf(), token)
    if (!facts) throw new InvalidInputError('This unsubscribe link is not one we sent: use the link of the mail as it came', [{ field: 'querystring/token', message: 'is not a valid unsubscribe token' }], 'invalid_unsubscribe_token')
    return facts
  }

  const settingsOf = async (userId: string) => (await store.settings(userId)) ?? DEFAULT_SETTINGS

  const viewSettings = (s: NotificationSettingsRow): NotificationSettingsView => ({
    time_zone: s.time_zone,
    quiet_hours: s.quiet_start && s.quiet_end ? { start: s.quiet_start, end: s.quiet_end } : null,
    events: Object.fromEntries(EVENT_TYPE_NAMES.map((e) => [e, choiceFor(s, e)])) as Record<EventType, ChannelChoice>,
  })

  /**
   * Why a channel has nothing to do for an event's recipient, as the relay can tell from its
   * sources (the delivery checks again when it runs): recorded skipped then, with no task.
   */
  const nothingToReach = (channel: QueuedChannel, event: string, source: EventSource): string | null => {
    if (channel === 'push') return source.has_push ? null : SKIPPED.noPush
    if (channel === 'sms') return source.has_phone ? null : SKIPPED.noPhone
    if (event === 'sign_in') return SKIPPED.signIn
    if (!deps.mail) return SKIPPED.noMail
    return source.has_email ? null : SKIPPED.noEmail
  }

  /**
   * Turns recorded events into notifications and deliveries, a batch per transaction; deliveries
   * due now are queued in that transaction. Answers how many events it handled.
   */
  const relay = async (): Promise<number> => {
    let handled = 0
    for (;;) {
      const inApp: NotificationRow[] = []
      const count = await db.transaction().execute(async (trx) => {
        const ids = await store.claimEvents(trx, RELAY_BATCH)
        const now = clock.now()
        const planned = (await store.sources(trx, ids)).map((source) => {
          const { event, urgent } = classify(source)
          const settings: NotificationSettingsRow = source.time_zone
            ? { time_zone: source.time_zone, quiet_start: source.quiet_start, quiet_end: source.quiet_end, events: (source.events ?? {}) as NotificationSettingsRow['events'] }
            : DEFAULT_SETTINGS
          const row: NotificationRow = { id: source.id, user_id: source.recipient_id, event, urgent, ...contentOf(source, event), job_id: source.job_id, peer_id: source.sender_id, created_at: now }
          return { source, settings, choice: choiceFor(settings, event), row }
        })
        // One statement for the batch's notifications (a message relayed twice is not new twice),
        // one for the deliveries that have nothing to do: the work a message costs stays flat.
        const inserted = await store.insertNotifications(trx, planned.map((p) => p.row))
        const skipped: Parameters<typeof store.insertSkipped>[1] = []
        for (const { source, settings, choice, row } of planned) {
          if (!inserted.has(row.id)) continue
          const { event, urgent } = row
          if (choice.in_app) inApp.push(row)
          const quietEnd = urgent ? null : quietUntil(settings, now)
          for (const channel of QUEUED_CHANNELS) {
            if (!choice[channel]) continue
            const unreachable = nothingToReach(channel, event, source)
            if (unreachable) {
              skipped.push({ notification_id: row.id, channel, detail: unreachable, at: now })
              continue
            }
            let due = quietEnd ?? now
            let state: 'pending' | 'grouped' = 'pending'
            let groupedInto: string | null = null
            // Messages of one conversation: one push (and mail) a window.
            const groupKey = event === 'message' && channel !== 'sms' && source.sender_id ? `${source.recipient_id}:${source.sender_id}` : null
            if (groupKey) {
              const head = await store.groupHead(trx, channel, groupKey, new Date(now.getTime() - GROUP_WINDOW_MS))
              if (head?.state === 'pending') {
                state = 'grouped'
                groupedInto = head.notification_id
              } else if (head) {
                const windowEnds = new Date(head.due_at.getTime() + GROUP_WINDOW_MS)
                if (windowEnds > due) due = windowEnds
              }
            }
            const queued = state === 'pending' && due <= now
            await store.insertDelivery(trx, { notification_id: row.id, channel, state: queued ? 'queued' : state, due_at: due, group_key: groupKey, grouped_into: groupedInto, created_at: now })
            if (queued) await queue.add(trx, DELIVER_TASK, { notification_id: row.id, channel }, { id: taskId(row.id, channel) })
          }
        }
        await store.insertSkipped(trx, skipped)
        return ids.length
      })
      handled += count
      // Sent together: one connection keeps their order, without a round trip each.
      await Promise.all(
        inApp.map((n) =>
          deps.events
            .publish({ to: [n.user_id], type: 'notification', data: { id: n.id, event: n.event, title: n.title, body: n.body, job_id: n.job_id, peer_id: n.peer_id, created_at: n.created_at.toISOString() } })
            .catch((error: unknown) => log.warn({ err: error }, 'could not push a notification in-app')),
        ),
      )
      if (count < RELAY_BATCH) return handled
    }
  }

  /** Queues the deliveries whose time came: quiet hours over, a conversation's window closed. */
  const queueDue = async (now = clock.now()): Promise<number> => {
    let handled = 0
    for (;;) {
      const count = await db.transaction().execute(async (trx) => {
        const due = await store.claimDue(trx, now, DUE_BATCH)
        for (const d of due) await queue.add(trx, DELIVER_TASK, d, { id: taskId(d.notification_id, d.channel) })
        return due.length
      })
      handled += count
      if (count < DUE_BATCH) return handled
    }
  }

  const deliver = createDeliver({ ...deps, unsubscribeUrl })

  let stopDeliveries: StopHandling | undefined
  let stopListening: (() => Promise<void>) | undefined
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined
  let again = false
  let dueToo = false
  let soon: NodeJS.Timeout | undefined

  /**
   * Runs the relay (and, from the sweep, the due deliveries) once; asked while a run is under
   * way, runs once more after it.
   */
  const kick = (withDue = true): Promise<void> => {
    if (withDue) dueToo = true
    if (running) {
      again = true
      return running
    }
    running = (async () => {
      do {
        again = false
        const due = dueToo
        dueToo = false
        await relay()
        if (due) await queueDue()
      } while (again)
    })()
      .catch((error: unknown) => log.warn({ err: error }, 'could not relay notifications; the next run will'))
      .finally(() => {
        running = undefined
      })
    return running
  }

  /**
   * A commit recorded events: relayed a moment later, so that a burst of messages goes as one
   * batch instead of a transaction a message in every process. Deliveries due later (quiet hours,
   * a conversation's window) are the sweep's.
   */
  const kickSoon = () => {
    soon ??= setTimeout(() => {
      soon = undefined
      void kick(false)
    }, RELAY_DELAY_MS)
  }

  return {
    classify,

    async settings(userId: string): Promise<NotificationSettingsView> {
      return viewSettings(await settingsOf(userId))
    },

    async updateSettings(userId: string, input: NotificationSettingsInput): Promise<NotificationSettingsView> {
      if (input.time_zone !== undefined && !isTimeZone(input.time_zone)) {
        throw new InvalidInputError('Not an IANA time zone', [{ field: 'body/time_zone', message: 'must be an IANA time zone such as Europe/Berlin' }], 'invalid_time_zone')
      }
      const current = await settingsOf(userId)
      const events = { ...current.events }
      for (const [event, choice] of Object.entries(input.events ?? {}) as [EventType, Partial<ChannelChoice>][]) {
        events[event] = { ...(events[event] ?? {}), ...Object.fromEntries(CHANNELS.filter((c) => choice[c] !== undefined).map((c) => [c, choice[c]])) }
      }
      const next: NotificationSettingsRow = {
        time_zone: input.time_zone ?? current.time_zone,
        quiet_start: input.quiet_hours === undefined ? current.quiet_start : (input.quiet_hours?.start ?? null),
        quiet_end: input.quiet_hours === undefined ? current.quiet_end : (input.quiet_hours?.end ?? null),
        events,
      }
      await store.saveSettings(userId, next)
      return viewSettings(next)
    },

    pushPublicKey: () => deps.push.vapid.publicKey,

    /** What an unsubscribe link would turn off, changing nothing (mail scanners follow links). */
    async unsubscribeInfo(token: string): Promise<{ event: EventType; email: boolean }> {
      const { userId, event } = await tokenFacts(token)
      if (!(await store.emailOf(userId))) return { event, email: false }
      return { event, email: choiceFor(await settingsOf(userId), event).email }
    },

    /** Turns off the email of the token's event type for its user (and nothing else). */
    async unsubscribeEmail(token: string): Promise<{ event: EventType; email: boolean }> {
      const { userId, event } = await tokenFacts(token)
      // A deleted account, or one without a confirmed address, is mailed nothing already.
      if (!(await store.emailOf(userId))) return { event, email: false }
      const current = await settingsOf(userId)
      await store.saveSettings(userId, { ...current, events: { ...current.events, [event]: { ...(current.events[event] ?? {}), email: false } } })
      log.info({ user_id: userId, event }, 'email notifications turned off by an unsubscribe link')
      return { event, email: false }
    },

    async subscribe(userId: string, input: { endpoint: string; keys: { p256dh: string; auth: string } }, userAgent: string | null) {
      // Only https on public addresses: the server calls this URL, so it must not reach inward (SSRF).
      await checkPushEndpoint(input.endpoint, deps.push.allow ?? [])
      const p256dh = Buffer.from(input.keys.p256dh, 'base64url')
      const auth = Buffer.from(input.keys.auth, 'base64url')
      if (p256dh.length !== 65 || p256dh[0] !== 4 || auth.length !== 16) {
        throw new InvalidInputError('The subscription\'s keys are not a P-256 public key and a 16-byte auth secret', [{ field: 'body/keys', message: 'p256dh: 65 bytes, auth: 16 bytes, base64url' }], 'invalid_push_keys')
      }
      return deps.push.store.upsert(userId, { endpoint: input.endpoint, p256dh: input.keys.p256dh, auth: input.keys.auth, userAgent: userAgent ? clip(userAgent, 300) : null }, clock.now())
    },

    async subscriptions(userId: string, query: { limit?: number; cursor?: string }) {
      const limit = query.limit ?? 20
      const after = decodeCursor(query.cursor, SubscriptionCursor)
      const rows = await deps.push.store.list(userId, { limit, beforeId: after?.id })
      return pageOf(rows, limit, (last) => ({ id: last.id }))
    },

    async unsubscribe(userId: string, id: string): Promise<void> {
      if (!(await deps.push.store.remove(userId, id))) throw new NotFoundError('You have no push subscription of this id', 'push_subscription_not_found')
    },

    /** Sets the user's phone number, unconfirmed, and sends it a code. */
    async setPhone(userId: string, number: string): Promise<{ number: string; confirmed: boolean }> {
      const hit = await deps.counters.hit(`phone-code:${userId}`, 3_600_000)
      if (hit.count > PHONE_CODES_PER_HOUR) throw new TooManyRequestsError('Too many codes sent this hour; try again later', Math.max(1, Math.ceil(hit.resetMs / 1000)), 'rate_limited')
      const code = String(randomInt(0, 1_000_000)).padStart(6, '0')
      const now = clock.now()
      await store.savePhone({ user_id: userId, number, confirmed_at: null, code_hash: hashCode(userId, code), code_expires_at: new Date(now.getTime() + PHONE_CODE_TTL_MS), attempts: 0 })
      await deps.sms.send({ to: number, text: `Your confirmation code: ${code}` }, `phone:${userId}:${now.getTime()}`)
      return { number, confirmed: false }
    },

    async confirmPhone(userId: string, code: string): Promise<{ number: string; confirmed: boolean }> {
      const phone = await store.phone(userId)
      if (!phone || !phone.code_hash || !phone.code_expires_at) throw new ConflictError('No phone number waits for a code: POST /user/phone first', 'no_phone_pending')
      if (phone.code_expires_at <= clock.now() || phone.attempts >= PHONE_CODE_ATTEMPTS) throw new ConflictError('The code expired or was tried too often: ask for a new one', 'code_expired')
      const given = Buffer.from(hashCode(userId, code))
      const expected = Buffer.from(phone.code_hash)
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        await store.savePhone({ ...phone, attempts: phone.attempts + 1 })
        throw new InvalidInputError('Wrong code', [{ field: 'body/code', message: 'is not the code sent' }], 'wrong_code')
      }
      await store.savePhone({ ...phone, confirmed_at: clock.now(), code_hash: null, code_expires_at: null, attempts: 0 })
      return { number: phone.number, confirmed: true }
    },

    async phone(userId: string): Promise<{ number: string; confirmed: boolean } | null> {
      const phone = await store.phone(userId)
      return phone ? { number: phone.number, confirmed: phone.confirmed_at !== null } : null
    },

    /** One delivery run (the queue's handler; a retry runs it again). */
    deliver,

    /** Relays recorded events and queues what is due at `now`: the sweep, and what tests call after moving the clock. */
    async runDueWork(now?: Date): Promise<void> {
      await kick()
      if (now) await queueDue(now)
    },

    async forgetUser(userId: string): Promise<void> {
      await store.forgetUser(userId)
      await deps.push.store.forgetUser(userId)
    },

    /** Handles deliveries, relays on each commit that records events, and sweeps every `intervalMs` (0: only when woken). */
    async start(intervalMs: number) {
      stopDeliveries = await queue.handle<{ notification_id: string; channel: QueuedChannel }>(DELIVER_TASK, (task) => deliver(task.data.notification_id, task.data.channel), { retryLimit: 8, retryDelaySeconds: 10 })
      const listener = await deps.listen('notification_events', { payload: kickSoon, resumed: () => void kick() })
      stopListening = () => listener.stop()
      if (intervalMs > 0) {
        timer = setInterval(() => void kick(), intervalMs)
        timer.unref()
      }
      void kick()
    },

    async close() {
      clearInterval(timer)
      clearTimeout(soon)
      await stopListening?.()
      await running
      await stopDeliveries?.()
    },
  }
}

export type NotificationsService = ReturnType<typeof createNotificationsService>
