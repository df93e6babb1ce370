import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { DB } from '../../platform/db/index.js'
import { EVENT_TYPE_NAMES, type EventType } from './preferences.js'

// Unsubscribe links: a token that names a user and an event type, signed (HMAC-SHA256) with a key
// of the service's own, so that it works without signing in and can do one thing only: turn off
// the email of that event type for that user. The key is made on first start and kept in the
// database (as the VAPID keys are), so every process signs and checks with the same one; it is
// never logged. A token does not expire: an old mail's link still works, and can do no more harm
// than stopping those mails, which the user may turn on again.

/** What the signature covers besides the user and the event: a token of another purpose never passes. */
const PURPOSE = 'notifications.unsubscribe-email'

/** The signing key: the one kept in the database, made there on first start. */
export async function loadUnsubscribeKey(db: DB): Promise<Buffer> {
  // Processes starting together each make one; the first stored is everyone's.
  await db.insertInto('service_keys').values({ name: 'unsubscribe', value: JSON.stringify({ key: randomBytes(32).toString('base64url') }) }).onConflict((oc) => oc.column('name').doNothing()).execute()
  const row = await db.selectFrom('service_keys').select('value').where('name', '=', 'unsubscribe').executeTakeFirstOrThrow()
  const value = (typeof row.value === 'string' ? JSON.parse(row.value) : row.value) as { key: string }
  return Buffer.from(value.key, 'base64url')
}

const signatureOf = (key: Buffer, userId: string, event: EventType) => createHmac('sha256', key).update(`${PURPOSE}\n${userId}\n${event}`).digest()

/** `<user id>.<event type>.<signature>`: URL-safe as it is. */
export function unsubscribeToken(key: Buffer, userId: string, event: EventType): string {
  return `${userId}.${event}.${signatureOf(key, userId, event).toString('base64url')}`
}

/** The user and event type a token names, or null when it is not one this service signed. */
export function readUnsubscribeToken(key: Buffer, token: string): { userId: string; event: EventType } | null {
  const parts = token.split('.')
  if (parts.length !== 3) return null
  const [userId, event, signature] = parts as [string, string, string]
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(userId) || !(EVENT_TYPE_NAMES as string[]).includes(event)) return null
  const given = Buffer.from(signature, 'base64url')
  const expected = signatureOf(key, userId, event as EventType)
  // base64url decoding skips stray characters: the token must be exactly the canonical form.
  if (given.length !== expected.length || given.toString('base64url') !== signature || !timingSafeEqual(given, expected)) return null
  return { userId, event: event as EventType }
}
