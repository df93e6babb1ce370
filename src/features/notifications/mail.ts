import type { Transaction } from 'kysely'
import type { Database } from '../../platform/db/index.js'
import type { MailMessage } from '../../platform/mail/index.js'

// The email channel's seam. Mail (its outbox, SMTP or the .eml folder) is its own feature; the
// notifications take it as a dependency of this shape (the app passes its mail outbox); without
// one, the email channel reports `not configured` for each delivery and sends nothing.

export type { MailMessage }

export interface NotificationMail {
  /** Queues a mail through the outbox in the caller's transaction; the same key queues it once. */
  enqueue(trx: Transaction<Database>, message: MailMessage, idempotencyKey: string): Promise<unknown>
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

/**
 * The mail of a notification. `unsubscribeUrl`, when given, is the per-event-type link that works
 * without signing in: it goes in the text, the HTML and the List-Unsubscribe headers (RFC 8058).
 */
export function notificationMail(to: string, content: { title: string; body: string; count: number }, unsubscribeUrl?: string): MailMessage {
  const more = content.count > 1 ? ` (${content.count} in all)` : ''
  const footer = unsubscribeUrl ? `\n\nStop these emails: ${unsubscribeUrl}` : ''
  return {
    to,
    subject: `${content.title}${more}`,
    text: `${content.body}${footer}`,
    html: `<p>${escapeHtml(content.body)}</p>${unsubscribeUrl ? `<p><a href="${escapeHtml(unsubscribeUrl)}">Stop these emails</a></p>` : ''}`,
    ...(unsubscribeUrl ? { headers: { 'List-Unsubscribe': `<${unsubscribeUrl}>`, 'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click' } } : {}),
  }
}
