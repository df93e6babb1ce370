import { sql, type Transaction } from 'kysely'
import type { DB, Database } from '../../platform/db/index.js'
import type { NotificationSettingsRow, QueuedChannel } from './preferences.js'

declare module '../../platform/db/types.js' {
  interface Database {
    notification_settings: { user_id: string; time_zone: string; quiet_start: string | null; quiet_end: string | null; events: unknown }
    notification_events: { message_id: string; created_at: import('kysely').Generated<Date> }
    notifications: NotificationRow
    notification_deliveries: DeliveryRow
    phone_numbers: PhoneRow
  }
}

export interface NotificationRow {
  id: string
  user_id: string
  event: string
  urgent: boolean
  title: string
  body: string
  job_id: string | null
  peer_id: string | null
  created_at: Date
}

export type DeliveryState = 'pending' | 'queued' | 'sent' | 'grouped' | 'skipped'

export interface DeliveryRow {
  notification_id: string
  channel: QueuedChannel
  state: DeliveryState
  due_at: Date
  group_key: string | null
  grouped_into: string | null
  sent_to: string[]
  detail: string | null
  created_at: Date
  sent_at: Date | null
}

export interface PhoneRow {
  user_id: string
  number: string
  confirmed_at: Date | null
  code_hash: string | null
  code_expires_at: Date | null
  attempts: number
}

/** A stored message as the relay reads it: with its sender's name, its job, the status logged with it and the recipient's settings. */
export interface EventSource {
  id: string
  sender_id: string | null
  recipient_id: string
  text: string
  kind: 'user' | 'system'
  job_id: string | null
  created_at: Date
  sender_first: string | null
  sender_last: string | null
  job_title: string | null
  job_status: string | null
  logged_status: string | null
  /** Of a system message from no one: the kind of the job's money movement recorded just before it (payments' notes: receipts, refunds, disputes). */
  ledger_kind: string | null
  /** The message is an open request's alert to a worker (recorded with it in job_alerts). */
  alert: boolean
  /** The message tells its recipient of a review of them, published at its time. */
  review: boolean
  /** The recipient has a push subscription, a confirmed phone number, a confirmed email address: without them those channels have nothing to do. */
  has_push: boolean
  has_phone: boolean
  has_email: boolean
  time_zone: string | null
  quiet_start: string | null
  quiet_end: string | null
  events: unknown
}

type Trx = Transaction<Database>

const parseJson = (value: unknown) => (typeof value === 'string' ? JSON.parse(value) : value)

export function createNotificationsStore(db: DB) {
  return {
    async settings(userId: string): Promise<NotificationSettingsRow | undefined> {
      const row = await db.selectFrom('notification_settings').selectAll().where('user_id', '=', userId).executeTakeFirst()
      return row && { time_zone: row.time_zone, quiet_start: row.quiet_start, quiet_end: row.quiet_end, events: parseJson(row.events) as NotificationSettingsRow['events'] }
    },

    async saveSettings(userId: string, settings: NotificationSettingsRow): Promise<void> {
      const values = { time_zone: settings.time_zone, quiet_start: settings.quiet_start, quiet_end: settings.quiet_end, events: JSON.stringify(settings.events) }
      await db.insertInto('notification_settings').values({ user_id: userId, ...values }).onConflict((oc) => oc.column('user_id').doUpdateSet(values)).execute()
    },

    /**
     * Takes up to `limit` events off the outbox, oldest message first, in the caller's transaction
     * (others' claims are skipped). In the order of the key (a message id is a UUIDv7, made when
     * the message was): read off the index a batch at a time, where an order by the time recorded
     * sorted every waiting event each time, a backlog of them quadratic.
     */
    async claimEvents(trx: Trx, limit: number): Promise<string[]> {
      const { rows } = await sql<{ message_id: string }>`
        DELETE FROM notification_events WHERE message_id IN (
          SELECT message_id FROM notification_events ORDER BY message_id LIMIT ${limit} FOR UPDATE SKIP LOCKED
        ) RETURNING message_id`.execute(trx)
      return rows.map((r) => r.message_id)
    },

    /** The messages of claimed events, to recipients that still exist. */
    async sources(trx: Trx, messageIds: string[]): Promise<EventSource[]> {
      if (messageIds.length === 0) return []
      const { rows } = await sql<EventSource>`
        SELECT m.id, m.sender_id, m.recipient_id, m.text, m.kind, m.job_id, m.created_at,
               s.first_name AS sender_first, s.last_name AS sender_last, j.title AS job_title, j.status AS job_status,
               (SELECT l.status FROM job_status_log l WHERE l.job_id = m.job_id AND l.at = m.created_at ORDER BY l.id DESC LIMIT 1) AS logged_status,
               (SELECT t.kind FROM ledger_transactions t
                 WHERE m.kind = 'system' AND m.sender_id IS NULL AND t.job_id = m.job_id
                   AND t.at <= m.created_at AND t.at > m.created_at - interval '1 minute'
                 ORDER BY t.at DESC LIMIT 1) AS ledger_kind,
               EXISTS (SELECT 1 FROM job_alerts a WHERE a.job_id = m.job_id AND a.worker_id = m.recipient_id AND a.alerted_at = m.created_at) AS alert,
               EXISTS (SELECT 1 FROM reviews rv WHERE m.kind = 'system' AND rv.job_id = m.job_id AND rv.subject_id = m.recipient_id AND rv.published_at = m.created_at) AS review,
               EXISTS (SELECT 1 FROM push_subscriptions p WHERE p.user_id = m.recipient_id) AS has_push,
               EXISTS (SELECT 1 FROM phone_numbers ph WHERE ph.user_id = m.recipient_id AND ph.confirmed_at IS NOT NULL) AS has_phone,
               (r.email IS NOT NULL AND r.email_confirmed_at IS NOT NULL) AS has_email,
               ns.time_zone, ns.quiet_start, ns.quiet_end, ns.events
          FROM messages m
          JOIN users r ON r.id = m.recipient_id AND r.deleted_at IS NULL
          LEFT JOIN users s ON s.id = m.sender_id
          LEFT JOIN jobs j ON j.id = m.job_id
          LEFT JOIN notification_settings ns ON ns.user_id = m.recipient_id
         WHERE m.id = ANY(${messageIds}::uuid[])
         ORDER BY m.id`.execute(trx)
      return rows.map((r) => ({ ...r, events: parseJson(r.events) }))
    },

    /** Inserts a batch's notifications in one statement; answers the ids that were new. */
    async insertNotifications(trx: Trx, rows: NotificationRow[]): Promise<Set<string>> {
      if (rows.length === 0) return new Set()
      const { rows: inserted } = await sql<{ id: string }>`
        INSERT INTO notifications (id, user_id, event, urgent, title, body, job_id, peer_id, created_at)
        SELECT * FROM unnest(${rows.map((r) => r.id)}::uuid[], ${rows.map((r) => r.user_id)}::uuid[], ${rows.map((r) => r.event)}::text[],
          ${rows.map((r) => r.urgent)}::boolean[], ${rows.map((r) => r.title)}::text[], ${rows.map((r) => r.body)}::text[],
          ${rows.map((r) => r.job_id)}::uuid[], ${rows.map((r) => r.peer_id)}::uuid[], ${rows.map((r) => r.created_at)}::timestamptz[])
        ON CONFLICT (id) DO NOTHING RETURNING id`.execute(trx)
      return new Set(inserted.map((r) => r.id))
    },

    /** The delivery of a conversation's group that a new one joins or waits after: one still pending, or one sent within the window. */
    async groupHead(trx: Trx, channel: QueuedChannel, groupKey: string, since: Date): Promise<Pick<DeliveryRow, 'notification_id' | 'state' | 'due_at'> | undefined> {
      return trx
        .selectFrom('notification_deliveries')
        .select(['notification_id', 'state', 'due_at'])
        .where('channel', '=', channel)
        .where('group_key', '=', groupKey)
        .where((eb) => eb.or([eb('state', '=', 'pending'), eb.and([eb('state', 'in', ['queued', 'sent']), eb('created_at', '>', since)])]))
        .orderBy('created_at', 'desc')
        .limit(1)
        .executeTakeFirst()
    },

    async insertDelivery(trx: Trx, row: Omit<DeliveryRow, 'sent_to' | 'detail' | 'sent_at'>): Promise<void> {
      await trx.insertInto('notification_deliveries').values({ ...row, sent_to: sql<string[]>`'{}'::text[]` as unknown as string[] }).onConflict((oc) => oc.columns(['notification_id', 'channel']).doNothing()).execute()
    },

    /** Deliveries with nothing to do (no device, no phone), recorded as skipped at once, in one statement. */
    async insertSkipped(trx: Trx, rows: { notification_id: string; channel: QueuedChannel; detail: string; at: Date }[]): Promise<void> {
      if (rows.length === 0) return
      await sql`
        INSERT INTO notification_deliveries (notification_id, channel, state, due_at, group_key, grouped_into, detail, created_at, sent_to)
        SELECT d.notification_id, d.channel, 'skipped', d.at, NULL, NULL, d.detail, d.at, '{}'::text[]
          FROM unnest(${rows.map((r) => r.notification_id)}::uuid[], ${rows.map((r) => r.channel)}::text[], ${rows.map((r) => r.detail)}::text[], ${rows.map((r) => r.at)}::timestamptz[])
            AS d (notification_id, channel, detail, at)
        ON CONFLICT (notification_id, channel) DO NOTHING`.execute(trx)
    },

    /** Deliveries whose time came (quiet hours ended, a group's window closed), marked queued. */
    async claimDue(trx: Trx, now: Date, limit: number): Promise<{ notification_id: string; channel: QueuedChannel }[]> {
      const { rows } = await sql<{ notification_id: string; channel: QueuedChannel }>`
        UPDATE notification_deliveries SET state = 'queued'
         WHERE (notification_id, channel) IN (
           SELECT notification_id, channel FROM notification_deliveries WHERE state = 'pending' AND due_at <= ${now}::timestamptz
            ORDER BY due_at LIMIT ${limit} FOR UPDATE SKIP LOCKED)
        RETURNING notification_id, channel`.execute(trx)
      return rows
    },

    async delivery(notificationId: string, channel: QueuedChannel): Promise<(DeliveryRow & { notification: NotificationRow }) | undefined> {
      const d = await db.selectFrom('notification_deliveries').selectAll().where('notification_id', '=', notificationId).where('channel', '=', channel).executeTakeFirst()
      if (!d) return undefined
      const n = await db.selectFrom('notifications').selectAll().where('id', '=', notificationId).executeTakeFirstOrThrow()
      return { ...d, notification: n }
    },

    /** The notifications grouped into one delivery: how many, and the newest one's text. */
    async groupedInto(notificationId: string, channel: QueuedChannel): Promise<{ count: number; latestBody: string | null }> {
      const rows = await db
        .selectFrom('notification_deliveries as d')
        .innerJoin('notifications as n', 'n.id', 'd.notification_id')
        .select(['n.body'])
        .where('d.grouped_into', '=', notificationId)
        .where('d.channel', '=', channel)
        .orderBy('n.id', 'desc')
        .execute()
      return { count: rows.length, latestBody: rows[0]?.body ?? null }
    },

    /** Marks a delivery done (sent, or skipped with why); only a queued one, so a second run changes nothing. */
    async finish(executor: DB | Trx, notificationId: string, channel: QueuedChannel, state: 'sent' | 'skipped', at: Date, detail: string | null = null): Promise<boolean> {
      const rows = await executor
        .updateTable('notification_deliveries')
        .set({ state, sent_at: state === 'sent' ? at : null, detail })
        .where('notification_id', '=', notificationId)
        .where('channel', '=', channel)
        .where('state', '=', 'queued')
        .returning('notification_id')
        .execute()
      return rows.length > 0
    },

    /** One subscription of a push delivery was sent to: a retry skips it. */
    async sentTo(notificationId: string, target: string): Promise<void> {
      await db
        .updateTable('notification_deliveries')
        .set({ sent_to: sql<string[]>`array_append(sent_to, ${target}::text)` })
        .where('notification_id', '=', notificationId)
        .where('channel', '=', 'push')
        .execute()
    },

    async noteFailure(notificationId: string, channel: QueuedChannel, detail: string): Promise<void> {
      await db.updateTable('notification_deliveries').set({ detail }).where('notification_id', '=', notificationId).where('channel', '=', channel).execute()
    },

    async emailOf(userId: string): Promise<string | null> {
      // Only a confirmed address is mailed (migration 0011's column).
      const { rows } = await sql<{ email: string | null; email_confirmed_at: Date | null }>`SELECT email, email_confirmed_at FROM users WHERE id = ${userId} AND deleted_at IS NULL`.execute(db)
      const r = rows[0]
      return r?.email && r.email_confirmed_at ? r.email : null
    },

    async phone(userId: string): Promise<PhoneRow | undefined> {
      return db.selectFrom('phone_numbers').selectAll().where('user_id', '=', userId).executeTakeFirst()
    },

    async savePhone(row: PhoneRow): Promise<void> {
      const { user_id, ...values } = row
      await db.insertInto('phone_numbers').values(row).onConflict((oc) => oc.column('user_id').doUpdateSet(values)).execute()
    },

    async forgetUser(userId: string): Promise<void> {
      await db.deleteFrom('notification_settings').where('user_id', '=', userId).execute()
      await db.deleteFrom('phone_numbers').where('user_id', '=', userId).execute()
      await db.deleteFrom('notifications').where('user_id', '=', userId).execute()
    },
  }
}

export type NotificationsStore = ReturnType<typeof createNotificationsStore>
