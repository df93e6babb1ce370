import { randomBytes } from 'node:crypto'
import Stripe from 'stripe'
import { ProviderCardError, WebhookSignatureError, type ConnectedAccount, type IntentState, type PaymentProvider, type ProviderEvent } from './index.js'

// The local provider: Stripe's test mode, embedded, with no account. Stripe's test payment
// methods mean the same here; a card that needs 3-D Secure is completed by following the
// `next_action` URL (POST), and a connected account is enabled by following its onboarding link.
// Events go to the listener the app sets, as webhooks would. State lives in this process (a
// restart forgets it, like a fresh test mode): for development, tests and demos.

interface LocalIntent extends IntentState {
  payment_method: string
  refunded: number
}
interface LocalTransfer { id: string; amount: number; reversed: number }

/** What each test payment method does: Stripe's published behaviour. */
const DECLINES: Record<string, { code: string; decline_code: string }> = {
  pm_card_visa_chargeDeclined: { code: 'card_declined', decline_code: 'generic_decline' },
  pm_card_visa_chargeDeclinedInsufficientFunds: { code: 'card_declined', decline_code: 'insufficient_funds' },
  pm_card_chargeDeclinedInsufficientFunds: { code: 'card_declined', decline_code: 'insufficient_funds' },
  // Attaches to a customer fine; the charge that follows fails.
  pm_card_chargeCustomerFail: { code: 'card_declined', decline_code: 'generic_decline' },
}
const SUCCEEDS = new Set(['pm_card_visa', 'pm_card_mastercard', 'pm_card_amex', 'pm_card_createDispute', 'pm_card_authenticationRequired'])
const ACCOUNT_CURRENCIES = ['EUR', 'USD', 'GBP', 'CHF', 'SEK', 'DKK', 'NOK', 'PLN', 'CAD', 'AUD']
const DUE_AT_ONBOARDING = ['business_profile.url', 'external_account', 'individual.first_name', 'individual.last_name', 'tos_acceptance.date']

export interface LocalPaymentProvider extends PaymentProvider {
  readonly name: 'local'
  /** Where the provider's events go (the app's webhook handling). */
  onEvent(listener: (event: ProviderEvent) => Promise<void>): void
  /** The 3-D Secure page, passed: the intent succeeds. False for no such intent waiting for it. */
  completeAction(intentId: string, secret: string): Promise<boolean>
  /** The onboarding link, followed: the account can be paid. */
  completeOnboarding(accountId: string): Promise<boolean>
}

const id = (prefix: string) => `${prefix}_local${randomBytes(10).toString('hex')}`

export function createLocalPaymentProvider(options: { publicUrl?: string; webhookSecret?: string } = {}): LocalPaymentProvider {
  const base = options.publicUrl ?? ''
  const webhookSecret = options.webhookSecret ?? 'whsec_local'
  const intents = new Map<string, LocalIntent>()
  const transfers = new Map<string, LocalTransfer>()
  const accounts = new Map<string, ConnectedAccount>()
  /** Idempotency keys: the same key answers what it answered first (Stripe keeps them 24 hours). */
  const byKey = new Map<string, unknown>()
  const listeners: ((event: ProviderEvent) => Promise<void>)[] = []

  const once = async <T>(key: string, make: () => T | Promise<T>): Promise<T> => {
    if (byKey.has(key)) return structuredClone(byKey.get(key) as T)
    const made = await make()
    byKey.set(key, structuredClone(made))
    return made
  }
  const emit = async (type: string, object: Record<string, unknown> & { id: string }) => {
    const event: ProviderEvent = { id: id('evt'), type, created: Math.floor(Date.now() / 1000), data: { object: structuredClone(object) } }
    for (const listener of listeners) await listener(event)
  }
  const stateOf = (intent: LocalIntent): IntentState => {
    const { payment_method: _pm, refunded: _r, ...state } = intent
    return structuredClone(state)
  }

  return {
    name: 'local',
    onEvent(listener) {
      listeners.push(listener)
    },

    async createPaymentIntent(input, key) {
      return once(`pi:${key}`, () => {
        const piId = id('pi')
        const intent: LocalIntent = {
          id: piId,
          status: 'succeeded',
          amount: input.amount,
          currency: input.currency,
          client_secret: `${piId}_secret_${randomBytes(12).toString('hex')}`,
          next_action: null,
          failure_code: null,
          decline_code: null,
          job_id: input.jobId,
          payment_method: input.paymentMethod,
          refunded: 0,
        }
        const decline = DECLINES[input.paymentMethod]
        if (decline) {
          Object.assign(intent, { status: 'requires_payment_method', failure_code: decline.code, decline_code: decline.decline_code })
          intents.set(piId, intent)
          throw new ProviderCardError(decline.code, decline.decline_code, stateOf(intent))
        }
        if (!SUCCEEDS.has(input.paymentMethod)) {
          throw new ProviderCardError('resource_missing', null, null)
        }
        if (input.paymentMethod === 'pm_card_authenticationRequired') {
          intent.status = 'requires_action'
          intent.next_action = {
            type: 'redirect_to_url',
            redirect_to_url: { url: `${base}/payments/local/authenticate/${piId}?client_secret=${intent.client_secret}`, return_url: input.returnUrl },
          }
        }
        intents.set(piId, intent)
        if (input.paymentMethod === 'pm_card_createDispute') {
          // Disputed after the charge, as Stripe's test card is: a moment later, by event.
          setTimeout(() => {
            void emit('charge.dispute.created', { id: id('dp'), object: 'dispute', amount: intent.amount, currency: intent.currency.toLowerCase(), payment_intent: piId, reason: 'fraudulent', status: 'needs_response' }).catch(() => undefined)
          }, 20)
        }
        return stateOf(intent)
      })
    },

    async retrievePaymentIntent(intentId) {
      const intent = intents.get(intentId)
      if (!intent) throw new Error(`No such payment_intent: ${intentId}`)
      return stateOf(intent)
    },

    async refund(input, key) {
      return once(`re:${key}`, () => {
        const intent = intents.get(input.paymentIntent)
        if (!intent || intent.status !== 'succeeded') throw new Error(`No succeeded payment_intent ${input.paymentIntent} to refund`)
        if (intent.refunded + input.amount > intent.amount) throw new Error('Refund is greater than the unrefunded amount of the charge')
        intent.refunded += input.amount
        return { id: id('re') }
      })
    },

    async createTransfer(input, key) {
      return once(`tr:${key}`, () => {
        const account = accounts.get(input.destination)
        if (!account?.payouts_enabled) throw new Error(`The destination account ${input.destination} can't take transfers yet`)
        const transfer = { id: id('tr'), amount: input.amount, reversed: 0 }
        transfers.set(transfer.id, transfer)
        return { id: transfer.id }
      })
    },

    async reverseTransfer(input, key) {
      return once(`trr:${key}`, () => {
        const transfer = transfers.get(input.transfer)
        if (!transfer || transfer.reversed + input.amount > transfer.amount) throw new Error('The reversal is more than the transfer has left')
        transfer.reversed += input.amount
        return { id: id('trr') }
      })
    },

    async createAccount(_input, key) {
      return once(`acct:${key}`, () => {
        const account: ConnectedAccount = { id: id('acct'), details_submitted: false, payouts_enabled: false, currently_due: [...DUE_AT_ONBOARDING], currencies: ACCOUNT_CURRENCIES }
        accounts.set(account.id, account)
        return structuredClone(account)
      })
    },

    async createAccountLink(accountId) {
      if (!accounts.has(accountId)) throw new Error(`No such account: ${accountId}`)
      return { url: `${base}/payments/local/onboard/${accountId}` }
    },

    async retrieveAccount(accountId) {
      const account = accounts.get(accountId)
      if (!account) throw new Error(`No such account: ${accountId}`)
      return structuredClone(account)
    },

    verifyWebhook(rawBody, signature) {
      try {
        return Stripe.webhooks.constructEvent(rawBody, signature ?? '', webhookSecret, 300) as unknown as ProviderEvent
      } catch (error) {
        throw new WebhookSignatureError((error as Error).message)
      }
    },

    async completeAction(intentId, secret) {
      const intent = intents.get(intentId)
      if (!intent || intent.client_secret !== secret || intent.status !== 'requires_action') return false
      Object.assign(intent, { status: 'succeeded', next_action: null })
      await emit('payment_intent.succeeded', { ...stateOf(intent), object: 'payment_intent' })
      return true
    },

    async completeOnboarding(accountId) {
      const account = accounts.get(accountId)
      if (!account) return false
      Object.assign(account, { details_submitted: true, payouts_enabled: true, currently_due: [] })
      await emit('account.updated', { ...structuredClone(account), object: 'account' })
      return true
    },
  }
}
