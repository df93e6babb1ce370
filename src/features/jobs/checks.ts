// Checks of what a request says on its own, before any job is read: what the schemas can't say.

import { InvalidInputError } from '../../errors.js'
import type { JobInput, MoneyInput, QuoteInput, StatusInput } from './schemas.js'

const CURRENCIES = new Set(Intl.supportedValuesOf('currency'))
/** How far ahead a job may be scheduled. */
const MAX_SCHEDULE_AHEAD_MS = 10 * 365 * 24 * 3_600_000

export function checkMoney(price: MoneyInput | null | undefined, field: string) {
  if (price && !CURRENCIES.has(price.currency)) {
    throw new InvalidInputError(`${price.currency} is not an ISO 4217 currency`, [{ field: `${field}/currency`, message: 'is not an ISO 4217 currency code' }], 'unknown_currency')
  }
}

export function checkScheduledAt(scheduledAt: string | null | undefined, now: Date) {
  if (!scheduledAt) return
  const at = Date.parse(scheduledAt)
  // The format check lets through a leap second (":60") and far years no database date holds.
  if (!Number.isFinite(at) || at > now.getTime() + MAX_SCHEDULE_AHEAD_MS) {
    throw new InvalidInputError('scheduled_at must be a real time within 10 years', [{ field: 'body/scheduled_at', message: 'must be a real time within 10 years' }], 'invalid_scheduled_at')
  }
  if (at <= now.getTime()) {
    throw new InvalidInputError('scheduled_at must be in the future', [{ field: 'body/scheduled_at', message: 'must be in the future' }], 'scheduled_in_past')
  }
}

/** A new offer: who for and what, a real currency and a date to come. */
export function checkOffer(input: JobInput, now: Date): asserts input is JobInput & { worker_id: string; title: string } {
  const missing = (['worker_id', 'title'] as const).filter((f) => input[f] === undefined)
  if (missing.length > 0) {
    throw new InvalidInputError(`A new offer needs ${missing.join(' and ')}`, missing.map((f) => ({ field: `body/${f}`, message: 'is required' })))
  }
  checkEdit(input, now)
}

/** An edit: a real currency and a date to come, when it changes them. */
export function checkEdit(input: JobInput, now: Date) {
  checkMoney(input.price, 'body/price')
  checkScheduledAt(input.scheduled_at, now)
}

/**
 * A move takes no price: a job's price is the offer's or its worker's quote (POST /job/{id}/quote),
 * and the client approves it as it stands, never naming one.
 */
export function checkMove(input: StatusInput) {
  if (input.price === undefined) return
  if (input.status === 'PENDING_PAYMENT') {
    throw new InvalidInputError(
      'An approval pays the job\'s price as it stands (the offer\'s, or the worker\'s quote) and names none: leave price out',
      [{ field: 'body/price', message: 'is not taken with an approval' }],
      'approval_takes_no_price',
    )
  }
  throw new InvalidInputError('A move takes no price: a worker quotes one with POST /job/{id}/quote', [{ field: 'body/price', message: 'is not taken with a move' }], 'price_not_expected')
}

/** A quote: a real currency. */
export function checkQuote(input: QuoteInput) {
  checkMoney(input.price, 'body/price')
}
