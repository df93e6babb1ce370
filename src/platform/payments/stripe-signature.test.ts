import Stripe from 'stripe'
import { describe, expect, it } from 'vitest'
import { WebhookSignatureError } from './index.js'
import { verifyStripeWebhook } from './stripe-signature.js'

// The webhook check against Stripe's own SDK: what its helper signs verifies here, and what its
// constructEvent refuses (tampered, stale, wrong secret, malformed header) is refused here too.

const secret = 'whsec_test_secret_for_signatures'
const now = Math.floor(Date.now() / 1000)
const payload = JSON.stringify({ id: 'evt_1', object: 'event', type: 'account.updated', created: now, data: { object: { id: 'acct_1', object: 'account', business_profile: { name: 'Zoë\'s shelves ✓' } } } })
const sign = (body: string, options: { timestamp?: number; secret?: string } = {}) =>
  Stripe.webhooks.generateTestHeaderString({ payload: body, secret: options.secret ?? secret, timestamp: options.timestamp ?? now })

/** Both checks' verdicts: the event's id, or refused. */
function verdicts(body: string | Buffer, header: string | undefined) {
  const raw = typeof body === 'string' ? Buffer.from(body) : body
  const ours = (() => {
    try {
      return verifyStripeWebhook(raw, header, secret, 300).id
    } catch (error) {
      expect(error).toBeInstanceOf(WebhookSignatureError)
      return 'refused'
    }
  })()
  const sdks = (() => {
    try {
      return (Stripe.webhooks.constructEvent(raw, header ?? '', secret, 300) as { id: string }).id
    } catch {
      return 'refused'
    }
  })()
  return { ours, sdks }
}

describe('verifyStripeWebhook', () => {
  it('accepts what the SDK signs, as the SDK does, and answers the event', () => {
    expect(verdicts(payload, sign(payload))).toEqual({ ours: 'evt_1', sdks: 'evt_1' })
    expect(verifyStripeWebhook(Buffer.from(payload), sign(payload), secret, 300)).toEqual(JSON.parse(payload))
    // Signed 299 s ago, within the tolerance; and a header with a second, older secret's signature first.
    expect(verdicts(payload, sign(payload, { timestamp: now - 299 }))).toEqual({ ours: 'evt_1', sdks: 'evt_1' })
    const rolled = sign(payload)
    const old = /v1=([0-9a-f]+)/.exec(sign(payload, { secret: 'whsec_old' }))![1]
    expect(verdicts(payload, rolled.replace(/(t=\d+),/, `$1,v1=${old},`))).toEqual({ ours: 'evt_1', sdks: 'evt_1' })
    // v0 (test-mode) signatures beside v1 are ignored, not read as v1.
    expect(verdicts(payload, `${sign(payload)},v0=${'1'.repeat(64)}`)).toEqual({ ours: 'evt_1', sdks: 'evt_1' })
  })

  it('refuses whatever the SDK refuses: tampered, stale, another secret, a malformed or missing header, no body', () => {
    const header = sign(payload)
    const refused = { ours: 'refused', sdks: 'refused' }
    expect(verdicts(payload.replace('acct_1', 'acct_2'), header)).toEqual(refused)
    expect(verdicts(`${payload} `, header)).toEqual(refused)
    expect(verdicts(payload, sign(payload, { timestamp: now - 301 }))).toEqual(refused)
    expect(verdicts(payload, sign(payload, { secret: 'whsec_other' }))).toEqual(refused)
    expect(verdicts(payload, header.replace(/v1=[0-9a-f]+/, `v1=${'0'.repeat(64)}`))).toEqual(refused)
    expect(verdicts(payload, header.replace(/t=\d+/, `t=${now + 1}`))).toEqual(refused)
    expect(verdicts(payload, header.replace(/v1=/, 'v0='))).toEqual(refused)
    expect(verdicts(payload, header.replace(/t=\d+,/, ''))).toEqual(refused)
    expect(verdicts(payload, header.replace(/v1=[0-9a-f]+/, (s) => s.slice(0, -2)))).toEqual(refused)
    expect(verdicts(payload, 'garbage')).toEqual(refused)
    expect(verdicts(payload, '')).toEqual(refused)
    expect(verdicts(payload, undefined)).toEqual(refused)
    expect(verdicts('', sign(''))).toEqual(refused)
    expect(verdicts(Buffer.alloc(0), sign(''))).toEqual(refused)
  })

  it('refuses a signed body that is not JSON', () => {
    expect(verdicts('not json', sign('not json'))).toEqual({ ours: 'refused', sdks: 'refused' })
  })

  it('counts the tolerance from the time given', () => {
    const header = sign(payload, { timestamp: 1_000_000 })
    expect(verifyStripeWebhook(Buffer.from(payload), header, secret, 300, 1_000_300_999).id).toBe('evt_1')
    expect(() => verifyStripeWebhook(Buffer.from(payload), header, secret, 300, 1_000_301_000)).toThrow('Timestamp outside the tolerance zone')
  })
})
