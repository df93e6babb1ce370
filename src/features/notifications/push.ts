import { lookup as dnsLookup } from 'node:dns/promises'
import ipaddr from 'ipaddr.js'
import { v7 as uuidv7 } from 'uuid'
import webpush from 'web-push'
import { InvalidInputError } from '../../errors.js'
import type { DB } from '../../platform/db/index.js'

// Web Push (RFC 8030, payloads encrypted per RFC 8291, signed with VAPID per RFC 8292) through
// the `web-push` package. The service's VAPID keys come from the settings, or else are made on
// first start and kept in the database, so every process signs with the same ones.

declare module '../../platform/db/types.js' {
  interface Database {
    push_subscriptions: { id: string; user_id: string; endpoint: string; p256dh: string; auth: string; user_agent: string | null; created_at: Date }
    service_keys: { name: string; value: unknown; created_at: import('kysely').Generated<Date> }
  }
}

export interface VapidKeys {
  publicKey: string
  privateKey: string
}

/** The settings' keys, or the ones kept in the database, made there on first start. */
export async function loadVapidKeys(db: DB, configured: { publicKey?: string; privateKey?: string }): Promise<VapidKeys> {
  if (configured.publicKey && configured.privateKey) return { publicKey: configured.publicKey, privateKey: configured.privateKey }
  const made = webpush.generateVAPIDKeys()
  // Processes starting together each make a pair; the first stored is everyone's.
  await db.insertInto('service_keys').values({ name: 'vapid', value: JSON.stringify(made) }).onConflict((oc) => oc.column('name').doNothing()).execute()
  const row = await db.selectFrom('service_keys').select('value').where('name', '=', 'vapid').executeTakeFirstOrThrow()
  const value = (typeof row.value === 'string' ? JSON.parse(row.value) : row.value) as VapidKeys
  return { publicKey: value.publicKey, privateKey: value.privateKey }
}

export interface PushSubscriptionRow {
  id: string
  user_id: string
  endpoint: string
  p256dh: string
  auth: string
  user_agent: string | null
  created_at: Date
}

export function createPushStore(db: DB) {
  return {
    /**
     * Keeps a subscription for the user. An endpoint belongs to one browser: subscribed again (by
     * its new user, after a sign-in as someone else), it moves to that user with its new keys.
     */
    async upsert(userId: string, input: { endpoint: string; p256dh: string; auth: string; userAgent: string | null }, now: Date): Promise<PushSubscriptionRow> {
      return db
        .insertInto('push_subscriptions')
        .values({ id: uuidv7(), user_id: userId, endpoint: input.endpoint, p256dh: input.p256dh, auth: input.auth, user_agent: input.userAgent, created_at: now })
        .onConflict((oc) => oc.column('endpoint').doUpdateSet((eb) => ({ user_id: eb.ref('excluded.user_id'), p256dh: eb.ref('excluded.p256dh'), auth: eb.ref('excluded.auth'), user_agent: eb.ref('excluded.user_agent') })))
        .returningAll()
        .executeTakeFirstOrThrow()
    },
    async list(userId: string, options: { limit: number; beforeId?: string }): Promise<PushSubscriptionRow[]> {
      let q = db.selectFrom('push_subscriptions').selectAll().where('user_id', '=', userId)
      if (options.beforeId) q = q.where('id', '<', options.beforeId)
      return q.orderBy('id', 'desc').limit(options.limit + 1).execute()
    },
    async allOf(userId: string): Promise<PushSubscriptionRow[]> {
      return db.selectFrom('push_subscriptions').selectAll().where('user_id', '=', userId).orderBy('id').execute()
    },
    /** Removes one of the user's subscriptions; false when the user has none of that id. */
    async remove(userId: string, id: string): Promise<boolean> {
      const rows = await db.deleteFrom('push_subscriptions').where('id', '=', id).where('user_id', '=', userId).returning('id').execute()
      return rows.length > 0
    },
    /** The push service said the subscription is gone (404, 410). */
    async drop(id: string): Promise<void> {
      await db.deleteFrom('push_subscriptions').where('id', '=', id).execute()
    },
    async forgetUser(userId: string): Promise<void> {
      await db.deleteFrom('push_subscriptions').where('user_id', '=', userId).execute()
    },
  }
}

export type PushStore = ReturnType<typeof createPushStore>

export type PushOutcome = 'sent' | 'gone'

/** Sends one encrypted payload to one subscription; 404 and 410 mean it is gone, other failures throw. */
export async function sendPush(
  subscription: PushSubscriptionRow,
  payload: string,
  options: { vapid: VapidKeys; subject: string; topic: string; urgent: boolean; ttlSeconds: number; agent?: import('node:https').Agent },
): Promise<PushOutcome> {
  try {
    await webpush.sendNotification({ endpoint: subscription.endpoint, keys: { p256dh: subscription.p256dh, auth: subscription.auth } }, payload, {
      vapidDetails: { subject: options.subject, publicKey: options.vapid.publicKey, privateKey: options.vapid.privateKey },
      TTL: options.ttlSeconds,
      // A notification sent again (a retry) replaces the first while it waits at the push service.
      topic: options.topic,
      urgency: options.urgent ? 'high' : 'normal',
      contentEncoding: 'aes128gcm',
      timeout: 10_000,
      ...(options.agent ? { agent: options.agent } : {}),
    })
    return 'sent'
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode
    if (status === 404 || status === 410) return 'gone'
    // The push service's answer may quote the endpoint (a capability URL): only the status goes on.
    throw new Error(`the push service answered ${status ?? 'nothing'}`)
  }
}

/**
 * Refuses a push endpoint the server must not be made to call (SSRF): anything but https, and a
 * host that is, or resolves to, an address that is not public unicast (private, loopback,
 * link-local, unique local, carrier-grade NAT, multicast, reserved, unspecified), every address
 * of the name. Hosts on `allow` (`host` or `host:port`) are taken as they are. Checked when
 * subscribing and again before each send, so a name that later resolves inward is refused then.
 */
export async function checkPushEndpoint(endpoint: string, allow: readonly string[], lookup: (host: string) => Promise<string[]> = lookupAll): Promise<void> {
  const refuse = (why: string) => new InvalidInputError(`The push endpoint ${why}`, [{ field: 'body/endpoint', message: why }], 'invalid_push_endpoint')
  let url: URL
  try {
    url = new URL(endpoint)
  } catch {
    throw refuse('is not a URL')
  }
  if (url.protocol !== 'https:') throw refuse('must be an https URL')
  if (url.username || url.password) throw refuse('must not carry credentials')
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase()
  if (allow.includes(host) || allow.includes(url.host.toLowerCase())) return
  let addresses: string[]
  if (ipaddr.isValid(host)) addresses = [host]
  else {
    try {
      addresses = await lookup(host)
    } catch {
      throw refuse('has a host name that does not resolve')
    }
  }
  if (addresses.length === 0) throw refuse('has a host name that does not resolve')
  for (const address of addresses) {
    let parsed = ipaddr.parse(address)
    // An IPv4 address written as IPv6 (::ffff:10.0.0.1) is judged as the IPv4 one.
    if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address()
    if (parsed.range() !== 'unicast') throw refuse(`resolves to a ${parsed.range()} address, which push services never use`)
  }
}

const lookupAll = async (host: string): Promise<string[]> => (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address)
