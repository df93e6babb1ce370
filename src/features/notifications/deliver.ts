import { createHash } from 'node:crypto'
import { v5 as uuidv5 } from 'uuid'
import { clip } from './content.js'
import { notificationMail } from './mail.js'
import type { EventType, QueuedChannel } from './preferences.js'
import { checkPushEndpoint, sendPush, type PushSubscriptionRow } from './push.js'
import type { NotificationsDeps } from './service.js'

// Sending a delivery by its channel (Web Push, SMS, email), once: its row says whether it went.

export const DELIVER_TASK = 'notifications.deliver'
const TASK_IDS = '3c0f7a52-5d7e-4b8e-9d55-0c2b8f1e6a73'
/** A push waits at the push service this long for an offline device. */
const PUSH_TTL_SECONDS = 24 * 3600

/** Why a delivery was skipped: the relay records these itself, before any task, when it can tell already. */
export const SKIPPED = {
  noPush: 'no push subscriptions',
  noPhone: 'no confirmed phone number',
  noEmail: 'no confirmed email address',
  signIn: 'mailed by the sign-in itself',
  noMail: 'not configured',
} as const

/** The queue task of a delivery (and the key of what it sends): one per notification and channel. */
export const taskId = (notificationId: string, channel: QueuedChannel) => uuidv5(`${DELIVER_TASK}:${notificationId}:${channel}`, TASK_IDS)

export function createDeliver(deps: Pick<NotificationsDeps, 'db' | 'store' | 'push' | 'sms' | 'mail' | 'clock' | 'log'> & {
  /** The unsubscribe link of a user's mails of an event type. */
  unsubscribeUrl: (userId: string, event: EventType) => Promise<string>
}) {
  const { db, store, clock, log, unsubscribeUrl } = deps

  /** Sends one delivery, once: a delivery no longer queued (sent, skipped) is left alone, so a retried task sends nothing twice. */
  return async (notificationId: string, channel: QueuedChannel): Promise<void> => {
    const d = await store.delivery(notificationId, channel)
    if (!d || d.state !== 'queued') return
    const n = d.notification
    const grouped = await store.groupedInto(notificationId, channel)
    const content = { title: n.title, body: grouped.latestBody ?? n.body, count: 1 + grouped.count }
    if (content.count > 1 && n.event === 'message') content.title = `${content.count} ${n.title.replace(/^New message/, 'new messages')}`
    const now = () => clock.now()

    if (channel === 'push') {
      const subscriptions = await deps.push.store.allOf(n.user_id)
      if (subscriptions.length === 0) {
        await store.finish(db, notificationId, channel, 'skipped', now(), SKIPPED.noPush)
        return
      }
      const payload = JSON.stringify({ id: n.id, event: n.event, title: content.title, body: content.body, count: content.count, job_id: n.job_id, peer_id: n.peer_id, created_at: n.created_at.toISOString() })
      const topic = createHash('sha256').update(n.id).digest('base64url').slice(0, 32)
      const failures: string[] = []
      for (const sub of subscriptions.filter((s: PushSubscriptionRow) => !d.sent_to.includes(s.id))) {
        // An endpoint whose name came to resolve inward since it was taken is never called: it goes.
        const refused = await checkPushEndpoint(sub.endpoint, deps.push.allow ?? []).then(() => false, () => true)
        if (refused) {
          log.warn({ subscription_id: sub.id }, 'a push endpoint resolves to an address that is not public; the subscription is dropped')
          await deps.push.store.drop(sub.id)
          continue
        }
        try {
          const outcome = await sendPush(sub, payload, { vapid: deps.push.vapid, subject: deps.push.subject, topic, urgent: n.urgent, ttlSeconds: PUSH_TTL_SECONDS, agent: deps.push.agent })
          if (outcome === 'gone') await deps.push.store.drop(sub.id)
          else await store.sentTo(notificationId, sub.id)
        } catch (error) {
          failures.push(error instanceof Error ? error.message : String(error))
        }
      }
      if (failures.length > 0) {
        await store.noteFailure(notificationId, channel, failures.join('; '))
        throw new Error(`push not delivered to ${failures.length} subscription(s): ${failures[0]}`)
      }
      await store.finish(db, notificationId, channel, 'sent', now())
      return
    }

    if (channel === 'sms') {
      const phone = await store.phone(n.user_id)
      if (!phone?.confirmed_at) {
        await store.finish(db, notificationId, channel, 'skipped', now(), SKIPPED.noPhone)
        return
      }
      await deps.sms.send({ to: phone.number, text: clip(`${content.title}: ${content.body}`, 300) }, taskId(notificationId, channel))
      await store.finish(db, notificationId, channel, 'sent', now())
      return
    }

    // Email: queued in the mail outbox in the transaction that marks it sent, so it goes once.
    // A sign-in from a new device is mailed by identity itself (always, as a security notice, in
    // the sign-in's transaction): the email channel of sign_in sends no second mail.
    if (n.event === 'sign_in') {
      await store.finish(db, notificationId, channel, 'skipped', now(), SKIPPED.signIn)
      return
    }
    const mail = deps.mail
    if (!mail) {
      await store.finish(db, notificationId, channel, 'skipped', now(), SKIPPED.noMail)
      return
    }
    const to = await store.emailOf(n.user_id)
    if (!to) {
      await store.finish(db, notificationId, channel, 'skipped', now(), SKIPPED.noEmail)
      return
    }
    const message = notificationMail(to, content, await unsubscribeUrl(n.user_id, n.event as EventType))
    await db.transaction().execute(async (trx) => {
      if (await store.finish(trx, notificationId, channel, 'sent', now())) await mail.enqueue(trx, message, taskId(notificationId, channel))
    })
  }
}
