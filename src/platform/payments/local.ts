import { randomBytes } from 'node:crypto'
import { sql, type Transaction } from 'kysely'
import type { DB, Database } from '../db/index.js'
import { ProviderCardError, type ConnectedAccount, type IntentState, type PaymentProvider, type ProviderEvent } from './index.js'
import { verifyStripeWebhook } from './stripe-signature.js'

// The local provider: Stripe's test mode, embedded, with no account. Stripe's test payment
// methods mean the same here; a card that needs 3-D Secure is completed by following the
// `next_action` URL (POST), a connected account is enabled by following its onboarding link, and
// a dispute is won or lost by the evidence submitted (`winning_evidence`, `losing_evidence`), as
// in Stripe's test mode. Events go to the listener the app sets, as webhooks would. Its state
// (intents, accounts, transfers, disputes, idempotency keys) lives in the app's database, so a
// restart forgets nothing, as a test-mode account doesn't.

declare module '../db/types.js' {
  interface Database {
    local_payment_intents: {
      id: string
      status: IntentState['status']
      amount: number
      currency: string
      client_secret: string
      next_action: Record<string, unknown> | null
      failure_code: string | null
      decline_code: string | null
      job_id: string | null
      payment_method: string
      refunded: number
      created_at: import('kysely').Generated<Date>
    }
    local_accounts: { id: string; details_submitted: boolean; payouts_enabled: boolean; currently_due: string[]; currencies: string[]; created_at: import('kysely').Generated<Date> }
    local_transfers: { id: string; destination: string; amount: number; reversed: number; created_at: import('kysely').Generated<Date> }
    local_disputes: { id: string; payment_intent: string; amount: number; currency: string; status: string; evidence: string | null; created_at: import('kysely').Generated<Date> }
    local_idempotency_keys: { key: string; answer: unknown; created_at: import('kysely').Generated<Date> }
  }
}

type Trx = Transaction<Database>

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
  /** The database its state lives in (the app's): set once, before the first call. */
  useDatabase(db: DB): void
  /** Where the provider's events go (the app's webhook handling). */
  onEvent(listener: (event: ProviderEvent) => Promise<void>): void
  /** The 3-D Secure page, passed: the intent succeeds. False for no such intent waiting for it. */
  completeAction(intentId: string, secret: string): Promise<boolean>
  /** The onboarding link, followed: the account can be paid. */
  completeOnboarding(accountId: string): Promise<boolean>
}

const id = (prefix: string) => `${prefix}_local${randomBytes(10).toString('hex')}`

/** What a key answered first: a result, or a card error (Stripe answers a decline again too). */
type Stored = { ok: unknown } | { card_error: { code: string; decline_code: string | null; intent: IntentState | null } }

const json = (value: unknown) => JSON.stringify(value) as never
const parsed = <T>(value: unknown): T => (typeof value === 'string' ? JSON.parse(value) : value) as T

export function createLocalPaymentProvider(options: { publicUrl?: string; webhookSecret?: string; db?: DB } = {}): LocalPaymentProvider {
  const base = options.publicUrl ?? ''
  const webhookSecret = options.webhookSecret ?? 'whsec_local'
  let database = options.db
  const listeners: ((event: ProviderEvent) => Promise<void>)[] = []

  const db = (): DB => {
    if (!database) throw new Error('the local payment provider has no database yet (useDatabase)')
    return database
  }

  /**
   * Runs a keyed call once: the same key answers what it answered first, a decline included.
   * Calls with one key wait for each other (an advisory lock), so two at once make one object.
   */
  const once = async <T>(key: string, make: (trx: Trx) => Promise<T>): Promise<T> => {
    const stored = await db().transaction().execute(async (trx): Promise<Stored> => {
      await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`local-payments:${key}`}, 0))`.execute(trx)
      const found = await trx.selectFrom('local_idempotency_keys').select('answer').where('key', '=', key).executeTakeFirst()
      if (found) return parsed<Stored>(found.answer)
      let answer: Stored
      try {
        answer = { ok: await make(trx) }
      } catch (error) {
        if (!(error instanceof ProviderCardError) || error.code === 'resource_missing') throw error
        answer = { card_error: { code: error.code, decline_code: error.declineCode, intent: error.intent } }
      }
      await trx.insertInto('local_idempotency_keys').values({ key, answer: json(answer) }).execute()
      return answer
    })
    if ('card_error' in stored) throw new ProviderCardError(stored.card_error.code, stored.card_error.decline_code, stored.card_error.intent)
    return stored.ok as T
  }

  const emit = async (type: string, object: Record<string, unknown> & { id: string }) => {
    const event: ProviderEvent = { id: id('evt'), type, created: Math.floor(Date.now() / 1000), data: { object: structuredClone(object) } }
    for (const listener of listeners) await listener(event)
  }

  type IntentRow = Database['local_payment_intents']
  const stateOf = (row: Omit<IntentRow, 'created_at' | 'payment_method' | 'refunded'>): IntentState => ({
    id: row.id,
    status: row.status,
    amount: row.amount,
    currency: row.currency,
    client_secret: row.client_secret,
    next_action: row.next_action === null ? null : parsed(row.next_action),
    failure_code: row.failure_code,
    decline_code: row.decline_code,
    job_id: row.job_id,
  })
  const intentRow = (intentId: string, trx: Trx | DB = db()) => trx.selectFrom('local_payment_intents').selectAll().where('id', '=', intentId).executeTakeFirst()
  const accountOf = (row: { id: string; details_submitted: boolean; payouts_enabled: boolean; currently_due: unknown; currencies: unknown }): ConnectedAccount => ({
    id: row.id,
    details_submitted: row.details_submitted,
    payouts_enabled: row.payouts_enabled,
    currently_due: parsed(row.currently_due),
    currencies: parsed(row.currencies),
  })

  return {
    name: 'local',
    useDatabase(value) {
      database = value
    },
    onEvent(listener) {
      listeners.push(listener)
    },

    async createPaymentIntent(input, key) {
      const intent = await once(`pi:${key}`, async (trx) => {
        if (!SUCCEEDS.has(input.paymentMethod) && !DECLINES[input.paymentMethod]) throw new ProviderCardError('resource_missing', null, null)
        const piId = id('pi')
        const row: Omit<IntentRow, 'created_at'> = {
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
        if (decline) Object.assign(row, { status: 'requires_payment_method', failure_code: decline.code, decline_code: decline.decline_code })
        if (input.paymentMethod === 'pm_card_authenticationRequired') {
          row.status = 'requires_action'
          row.next_action = {
            type: 'redirect_to_url',
            redirect_to_url: { url: `${base}/payments/local/authenticate/${piId}?client_secret=${row.client_secret}`, return_url: input.returnUrl },
          }
        }
        await trx.insertInto('local_payment_intents').values({ ...row, next_action: row.next_action ? json(row.next_action) : null }).execute()
        if (decline) throw new ProviderCardError(decline.code, decline.decline_code, stateOf(row))
        if (input.paymentMethod === 'pm_card_createDispute') {
          await trx.insertInto('local_disputes').values({ id: id('dp'), payment_intent: piId, amount: input.amount, currency: input.currency, status: 'needs_response', evidence: null }).execute()
        }
        return stateOf(row)
      })
      // Stripe's dispute test card is disputed right after its charge: the event says so.
      const dispute = await db().selectFrom('local_disputes').selectAll().where('payment_intent', '=', intent.id).where('status', '=', 'needs_response').executeTakeFirst()
      if (dispute) await emit('charge.dispute.created', { id: dispute.id, object: 'dispute', amount: dispute.amount, currency: dispute.currency.toLowerCase(), payment_intent: intent.id, reason: 'fraudulent', status: dispute.status })
      return intent
    },

    async retrievePaymentIntent(intentId) {
      const row = await intentRow(intentId)
      if (!row) throw new Error(`No such payment_intent: ${intentId}`)
      return stateOf(row)
    },

    async refund(input, key) {
      return once(`re:${key}`, async (trx) => {
        const intent = await intentRow(input.paymentIntent, trx)
        if (!intent || intent.status !== 'succeeded') throw new Error(`No succeeded payment_intent ${input.paymentIntent} to refund`)
        if (intent.refunded + input.amount > intent.amount) throw new Error('Refund is greater than the unrefunded amount of the charge')
        await trx.updateTable('local_payment_intents').set({ refunded: intent.refunded + input.amount }).where('id', '=', intent.id).execute()
        return { id: id('re') }
      })
    },

    async createTransfer(input, key) {
      return once(`tr:${key}`, async (trx) => {
        const account = await trx.selectFrom('local_accounts').select('payouts_enabled').where('id', '=', input.destination).executeTakeFirst()
        if (!account?.payouts_enabled) throw new Error(`The destination account ${input.destination} can't take transfers yet`)
        const transfer = { id: id('tr'), destination: input.destination, amount: input.amount, reversed: 0 }
        await trx.insertInto('local_transfers').values(transfer).execute()
        return { id: transfer.id }
      })
    },

    async reverseTransfer(input, key) {
      return once(`trr:${key}`, async (trx) => {
        const transfer = await trx.selectFrom('local_transfers').selectAll().where('id', '=', input.transfer).forUpdate().executeTakeFirst()
        if (!transfer || transfer.reversed + input.amount > transfer.amount) throw new Error('The reversal is more than the transfer has left')
        await trx.updateTable('local_transfers').set({ reversed: transfer.reversed + input.amount }).where('id', '=', transfer.id).execute()
        return { id: id('trr') }
      })
    },

    async createAccount(_input, key) {
      return once(`acct:${key}`, async (trx) => {
        const account: ConnectedAccount = { id: id('acct'), details_submitted: false, payouts_enabled: false, currently_due: [...DUE_AT_ONBOARDING], currencies: ACCOUNT_CURRENCIES }
        await trx.insertInto('local_accounts').values({ ...account, currently_due: json(account.currently_due), currencies: json(account.currencies) }).execute()
        return account
      })
    },

    async createAccountLink(accountId) {
      if (!(await db().selectFrom('local_accounts').select('id').where('id', '=', accountId).executeTakeFirst())) throw new Error(`No such account: ${accountId}`)
      return { url: `${base}/payments/local/onboard/${accountId}` }
    },

    async retrieveAccount(accountId) {
      const row = await db().selectFrom('local_accounts').selectAll().where('id', '=', accountId).executeTakeFirst()
      if (!row) throw new Error(`No such account: ${accountId}`)
      return accountOf(row)
    },

    async submitDisputeEvidence(disputeId, evidence) {
      // Stripe's test mode: the evidence text decides the outcome at once.
      const outcome = evidence.includes('winning_evidence') ? 'won' : evidence.includes('losing_evidence') ? 'lost' : 'under_review'
      const row = await db()
        .updateTable('local_disputes')
        .set({ status: outcome, evidence })
        .where('id', '=', disputeId)
        .where('status', 'in', ['needs_response', 'warning_needs_response'])
        .returningAll()
        .executeTakeFirst()
      if (!row) throw new Error(`No dispute ${disputeId} waiting for evidence`)
      if (outcome !== 'under_review') {
        await emit('charge.dispute.closed', { id: row.id, object: 'dispute', amount: row.amount, currency: row.currency.toLowerCase(), payment_intent: row.payment_intent, reason: 'fraudulent', status: outcome })
      }
      return { status: outcome }
    },

    verifyWebhook(rawBody, signature) {
      return verifyStripeWebhook(rawBody, signature, webhookSecret, 300)
    },

    async completeAction(intentId, secret) {
      const row = await db()
        .updateTable('local_payment_intents')
        .set({ status: 'succeeded', next_action: null })
        .where('id', '=', intentId)
        .where('client_secret', '=', secret)
        .where('status', '=', 'requires_action')
        .returningAll()
        .executeTakeFirst()
      if (!row) return false
      await emit('payment_intent.succeeded', { ...stateOf(row), object: 'payment_intent' })
      return true
    },

    async completeOnboarding(accountId) {
      const row = await db()
        .updateTable('local_accounts')
        .set({ details_submitted: true, payouts_enabled: true, currently_due: json([]) })
        .where('id', '=', accountId)
        .returningAll()
        .executeTakeFirst()
      if (!row) return false
      await emit('account.updated', { ...accountOf(row), object: 'account' })
      return true
    },
  }
}
