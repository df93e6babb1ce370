import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import Stripe from 'stripe'

// A small local Stripe: answers the calls the app makes through the official SDK (payment
// intents, refunds, transfers and their reversals, Express accounts and their links) in Stripe's
// own shapes (objects built from Stripe's published fixtures), honours Idempotency-Key the way
// Stripe does, and makes the events Stripe would send, signed with the SDK's test header.

// The objects this peer answers, taken from Stripe's published fixtures (fixtures3.json of stripe/openapi).
const FIXTURES = JSON.parse(readFileSync(new URL('./stripe-fixtures.json', import.meta.url), 'utf8')).resources as Record<string, Record<string, unknown>>
const fixture = (name: string) => structuredClone(FIXTURES[name]!)
const id = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`
const now = () => Math.floor(Date.now() / 1000)

const DECLINES: Record<string, string> = {
  pm_card_visa_chargeDeclined: 'generic_decline',
  pm_card_visa_chargeDeclinedInsufficientFunds: 'insufficient_funds',
  pm_card_chargeCustomerFail: 'generic_decline',
}

/** Stripe's form encoding (`metadata[job_id]=...`) back into objects. */
function parseForm(body: string): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of new URLSearchParams(body)) {
    const path = key.replace(/\]/g, '').split('[')
    let at = out
    for (const part of path.slice(0, -1)) at = (at[part] ??= {}) as Record<string, unknown>
    at[path[path.length - 1]!] = value
  }
  return out
}

export interface StripePeer {
  url: string
  secretKey: string
  webhookSecret: string
  /** How many charges (payment intents that took money) were made. */
  charges(): number
  /** Calls received, by method and path. */
  calls: { method: string; path: string; idempotencyKey?: string }[]
  /** The next call to `path` is answered only after `delayMs` (a timeout, for the app). */
  delayNext(path: string, delayMs: number): void
  /** The card holder passes 3-D Secure: the intent succeeds. */
  authenticate(intentId: string): Record<string, unknown>
  /** The account finishes onboarding. */
  enableAccount(accountId: string): Record<string, unknown>
  intent(intentId: string): Record<string, unknown>
  /** A dispute opened on an intent's charge (as Stripe does for pm_card_createDispute), in Stripe's shape. */
  openDispute(intentId: string): Record<string, unknown>
  /** The dispute closed with `status` (won, lost): the object of its charge.dispute.closed event. */
  closeDispute(disputeId: string, status: 'won' | 'lost'): Record<string, unknown>
  /** Evidence submitted for each dispute. */
  evidence: Map<string, string>
  /** An event of `type` about `object`, with its JSON body and a valid signature (or one made at `timestamp`). */
  event(type: string, object: Record<string, unknown>, timestamp?: number): { id: string; payload: string; signature: string }
  sign(payload: string, timestamp?: number): string
  close(): Promise<void>
}

export async function startStripePeer(): Promise<StripePeer> {
  const secretKey = `sk_test_${randomBytes(12).toString('hex')}`
  const webhookSecret = `whsec_${randomBytes(16).toString('hex')}`
  const intents = new Map<string, Record<string, unknown>>()
  const accounts = new Map<string, Record<string, unknown>>()
  const transfers = new Map<string, Record<string, unknown>>()
  const disputes = new Map<string, Record<string, unknown>>()
  const evidence = new Map<string, string>()
  const byKey = new Map<string, { status: number; body: string }>()
  const delays = new Map<string, number>()
  const calls: StripePeer['calls'] = []
  let charged = 0

  const newIntent = (params: Record<string, unknown>) => {
    const pi = fixture('payment_intent')
    const piId = id('pi')
    Object.assign(pi, {
      id: piId,
      amount: Number(params.amount),
      currency: params.currency,
      client_secret: `${piId}_secret_${randomBytes(8).toString('hex')}`,
      created: now(),
      metadata: params.metadata ?? {},
      payment_method: params.payment_method,
      transfer_group: params.transfer_group ?? null,
      last_payment_error: null,
      next_action: null,
      transfer_data: null,
      latest_charge: null,
      amount_received: 0,
      status: 'requires_payment_method',
    })
    intents.set(piId, pi)
    return pi
  }

  const succeed = (pi: Record<string, unknown>) => {
    Object.assign(pi, { status: 'succeeded', amount_received: pi.amount, latest_charge: id('ch'), next_action: null })
    charged++
  }

  function route(method: string, path: string, params: Record<string, unknown>): { status: number; body: unknown } {
    const [, , resource, resourceId, sub] = path.split('/')
    if (method === 'POST' && resource === 'payment_intents' && !resourceId) {
      const pi = newIntent(params)
      const pm = String(params.payment_method)
      const decline = DECLINES[pm]
      if (decline) {
        pi.last_payment_error = { type: 'card_error', code: 'card_declined', decline_code: decline, message: 'Your card was declined.' }
        return { status: 402, body: { error: { type: 'card_error', code: 'card_declined', decline_code: decline, message: 'Your card was declined.', payment_intent: pi } } }
      }
      if (!pm.startsWith('pm_card_')) {
        return { status: 400, body: { error: { type: 'invalid_request_error', code: 'resource_missing', param: 'payment_method', message: `No such PaymentMethod: '${pm}'` } } }
      }
      if (pm === 'pm_card_authenticationRequired') {
        Object.assign(pi, { status: 'requires_action', next_action: { type: 'use_stripe_sdk', use_stripe_sdk: { type: 'three_d_secure_redirect' } } })
      } else succeed(pi)
      return { status: 200, body: pi }
    }
    if (method === 'GET' && resource === 'payment_intents' && resourceId) {
      const pi = intents.get(resourceId)
      return pi ? { status: 200, body: pi } : { status: 404, body: { error: { type: 'invalid_request_error', code: 'resource_missing', message: 'No such payment_intent' } } }
    }
    if (method === 'POST' && resource === 'refunds') {
      const pi = intents.get(String(params.payment_intent))
      if (!pi || pi.status !== 'succeeded') return { status: 400, body: { error: { type: 'invalid_request_error', message: 'No charge to refund' } } }
      return { status: 200, body: { ...fixture('refund'), id: id('re'), amount: Number(params.amount), currency: pi.currency, payment_intent: pi.id, charge: pi.latest_charge, created: now() } }
    }
    if (method === 'POST' && resource === 'transfers' && !resourceId) {
      const account = accounts.get(String(params.destination))
      if (!account?.payouts_enabled) return { status: 400, body: { error: { type: 'invalid_request_error', message: 'The destination account needs capabilities' } } }
      const transfer = { ...fixture('transfer'), id: id('tr'), amount: Number(params.amount), currency: params.currency, destination: params.destination, transfer_group: params.transfer_group ?? null, metadata: params.metadata ?? {}, created: now(), amount_reversed: 0 }
      transfers.set(transfer.id, transfer)
      return { status: 200, body: transfer }
    }
    if (method === 'POST' && resource === 'transfers' && resourceId && sub === 'reversals') {
      const transfer = transfers.get(resourceId)
      const amount = Number(params.amount)
      if (!transfer || Number(transfer.amount_reversed) + amount > Number(transfer.amount)) return { status: 400, body: { error: { type: 'invalid_request_error', message: 'Reversal too large' } } }
      transfer.amount_reversed = Number(transfer.amount_reversed) + amount
      return { status: 200, body: { ...fixture('transfer_reversal'), id: id('trr'), amount, transfer: resourceId, currency: transfer.currency, created: now() } }
    }
    if (method === 'POST' && resource === 'accounts' && !resourceId) {
      const account = { ...fixture('account'), id: id('acct'), type: 'express', email: params.email ?? null, metadata: params.metadata ?? {}, default_currency: 'eur', details_submitted: false, payouts_enabled: false, charges_enabled: false, created: now() }
      accounts.set(account.id, account)
      return { status: 200, body: account }
    }
    if (method === 'GET' && resource === 'accounts' && resourceId) {
      const account = accounts.get(resourceId)
      return account ? { status: 200, body: account } : { status: 404, body: { error: { type: 'invalid_request_error', code: 'resource_missing', message: 'No such account' } } }
    }
    if (method === 'POST' && resource === 'disputes' && resourceId) {
      const dispute = disputes.get(resourceId)
      if (!dispute) return { status: 404, body: { error: { type: 'invalid_request_error', code: 'resource_missing', message: 'No such dispute' } } }
      if (!['needs_response', 'warning_needs_response'].includes(String(dispute.status))) return { status: 400, body: { error: { type: 'invalid_request_error', message: 'This dispute is already closed' } } }
      const text = String((params.evidence as Record<string, unknown> | undefined)?.uncategorized_text ?? '')
      evidence.set(resourceId, text)
      Object.assign(dispute, { status: 'under_review', evidence: { ...(dispute.evidence as object), uncategorized_text: text }, evidence_details: { ...(dispute.evidence_details as object), has_evidence: true, submission_count: 1 } })
      return { status: 200, body: dispute }
    }
    if (method === 'POST' && resource === 'account_links') {
      return { status: 200, body: { ...fixture('account_link'), url: `https://connect.stripe.com/setup/e/${String(params.account)}/${randomBytes(6).toString('hex')}`, created: now(), expires_at: now() + 300 } }
    }
    return { status: 404, body: { error: { type: 'invalid_request_error', message: `Unrecognized request URL (${method}: ${path})` } } }
  }

  const server: Server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = []
    request.on('data', (c: Buffer) => chunks.push(c))
    request.on('end', () => {
      const path = (request.url ?? '/').split('?')[0]!
      const method = request.method ?? 'GET'
      const key = request.headers['idempotency-key'] as string | undefined
      calls.push({ method, path, ...(key ? { idempotencyKey: key } : {}) })
      const send = (status: number, body: string) => {
        const delay = delays.get(path)
        delays.delete(path)
        const write = () => {
          if (response.destroyed) return
          response.writeHead(status, { 'content-type': 'application/json', 'request-id': id('req'), ...(key ? { 'idempotency-key': key } : {}) }).end(body)
        }
        if (delay) setTimeout(write, delay)
        else write()
      }
      if (request.headers.authorization !== `Bearer ${secretKey}`) return send(401, JSON.stringify({ error: { type: 'invalid_request_error', message: 'Invalid API Key provided' } }))
      if (key && method === 'POST' && byKey.has(`${path}:${key}`)) {
        const stored = byKey.get(`${path}:${key}`)!
        return send(stored.status, stored.body)
      }
      const { status, body } = route(method, path, parseForm(Buffer.concat(chunks).toString('utf8')))
      const text = JSON.stringify(body)
      if (key && method === 'POST') byKey.set(`${path}:${key}`, { status, body: text })
      send(status, text)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  const sign = (payload: string, timestamp?: number) => Stripe.webhooks.generateTestHeaderString({ payload, secret: webhookSecret, ...(timestamp ? { timestamp } : {}) })

  return {
    url: `http://127.0.0.1:${port}`,
    secretKey,
    webhookSecret,
    charges: () => charged,
    calls,
    delayNext: (path, delayMs) => delays.set(path, delayMs),
    authenticate(intentId) {
      const pi = intents.get(intentId)!
      succeed(pi)
      return pi
    },
    enableAccount(accountId) {
      const account = accounts.get(accountId)!
      Object.assign(account, { details_submitted: true, payouts_enabled: true, charges_enabled: true, requirements: { ...(account.requirements as object), currently_due: [], past_due: [], disabled_reason: null } })
      return account
    },
    intent: (intentId) => intents.get(intentId)!,
    openDispute(intentId) {
      const pi = intents.get(intentId)!
      const dispute = { ...fixture('dispute'), id: id('dp'), amount: pi.amount, currency: pi.currency, charge: pi.latest_charge, payment_intent: intentId, reason: 'fraudulent', status: 'needs_response', created: now() }
      disputes.set(dispute.id, dispute)
      return structuredClone(dispute)
    },
    closeDispute(disputeId, status) {
      const dispute = disputes.get(disputeId)!
      dispute.status = status
      return structuredClone(dispute)
    },
    evidence,
    event(type, object, timestamp) {
      const event = { ...fixture('event'), id: id('evt'), type, created: now(), data: { object: structuredClone(object) }, livemode: false, pending_webhooks: 1 }
      const payload = JSON.stringify(event)
      return { id: event.id, payload, signature: sign(payload, timestamp) }
    },
    sign,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
