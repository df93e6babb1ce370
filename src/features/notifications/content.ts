import type { EventType } from './preferences.js'
import type { EventSource } from './store.js'

// What a notification is and says: its event type, read from the message that caused it, and
// its title and text.

/** Text cut to `max` characters, with an ellipsis when it was longer. */
export const clip = (text: string, max: number) => ([...text].length > max ? `${[...text].slice(0, max - 1).join('')}…` : text)

/** Money movements only payments' notes follow (money back, a dispute): what comes from no one just after one is a `payment` event. */
const PAYMENT_NOTE_LEDGER_KINDS = ['refund', 'reversal', 'dispute']

/**
 * What an event is, from the message, the job status logged with it and the money movement just
 * before it. Jobs' moves are told by their logged status; payments' notes (the held money released
 * or refunded: the receipt of the money back; a dispute) come from no one, without a status, just
 * after their ledger movement. An open request's alert to a worker is `job_alert` (its row in
 * job_alerts has the message's time), and the note of a published review to the reviewed user is
 * `review` (the review's publication time). Identity mails a new-device sign-in itself, so
 * `sign_in` has no message to classify.
 */
export function classify(source: Pick<EventSource, 'kind' | 'job_id' | 'logged_status' | 'job_status'> & Partial<Pick<EventSource, 'ledger_kind' | 'alert' | 'review'>>): { event: EventType; urgent: boolean } {
  if (source.kind === 'user') return { event: 'message', urgent: false }
  if (source.alert) return { event: 'job_alert', urgent: false }
  if (source.review) return { event: 'review', urgent: false }
  const status = source.logged_status ?? source.job_status
  if (!source.job_id) return { event: 'job_update', urgent: false }
  // Before the logged status: a release note may share its instant with the move that caused it (a decline).
  if (source.ledger_kind && PAYMENT_NOTE_LEDGER_KINDS.includes(source.ledger_kind)) return { event: 'payment', urgent: false }
  if (source.logged_status === 'REQUESTED' || (!source.logged_status && status === 'REQUESTED')) return { event: 'job_offer', urgent: false }
  if (source.logged_status === 'PENDING_PAYMENT' || source.logged_status === 'PAID') return { event: 'payment', urgent: false }
  // A job called off is worth waking for: someone may be on the way.
  return { event: 'job_update', urgent: source.logged_status === 'CANCELED' }
}

const nameOf = (first: string | null, last: string | null) => [first, last].filter(Boolean).join(' ') || 'Someone'

/** What a notification says: its title and text. */
export const contentOf = (source: Pick<EventSource, 'sender_first' | 'sender_last' | 'job_title' | 'text'>, event: EventType) => {
  const sender = nameOf(source.sender_first, source.sender_last)
  const title = event === 'message' ? `New message from ${sender}`
    : event === 'job_alert' ? `Open request near you: ${clip(source.job_title ?? '', 80)}`
    : event === 'review' ? `${sender} reviewed you`
    : source.job_title ? `Job: ${clip(source.job_title, 80)}` : 'Update'
  return { title, body: clip(source.text, 240) }
}
