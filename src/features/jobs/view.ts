import type { JobView } from './schemas.js'
import type { JobRow, StatusLogRow } from './store.js'

/** The job's escrow as both its users see it (what only the client sees is added by withClientSecret). */
export function paymentOf(row: Pick<JobRow, 'payment_status' | 'price_amount' | 'price_currency' | 'payment_fee' | 'payment_refunded' | 'payment_failure_code' | 'payment_decline_code'>): JobView['payment'] {
  if (row.payment_status === null || row.price_amount === null || row.price_currency === null) return null
  return {
    status: row.payment_status,
    amount: row.price_amount,
    fee: row.payment_fee ?? 0,
    currency: row.price_currency,
    refunded: row.payment_refunded,
    ...(row.payment_failure_code && row.payment_status === 'failed' ? { failure_code: row.payment_failure_code } : {}),
    ...(row.payment_decline_code && row.payment_status === 'failed' ? { decline_code: row.payment_decline_code } : {}),
  }
}

/** The client's view adds what its app needs for 3-D Secure; the worker never sees it. */
export function withClientSecret(job: JobView, row: JobRow, viewerId: string): JobView {
  if (viewerId !== row.client_id || !job.payment || row.payment_status !== 'requires_action' || !row.payment_client_secret) return job
  return { ...job, payment: { ...job.payment, client_secret: row.payment_client_secret, ...(row.payment_next_action ? { next_action: row.payment_next_action } : {}) } }
}

/** A job as its users see it, with its status log and, for the answer to an offer or edit, its warnings. */
export function view(row: JobRow, statusLog: StatusLogRow[], warnings?: JobView['warnings']): JobView {
  return {
    id: row.id,
    client_id: row.client_id,
    worker_id: row.worker_id,
    open_request: row.open_request,
    title: row.title,
    description: row.description,
    status: row.status,
    price: row.price_amount !== null && row.price_currency !== null ? { amount: row.price_amount, currency: row.price_currency } : null,
    payment: paymentOf(row),
    scheduled_at: row.scheduled_at?.toISOString() ?? null,
    location:
      row.location_lat !== null && row.location_lon !== null
        ? { lat: row.location_lat, lon: row.location_lon, ...(row.location_address !== null ? { address: row.location_address } : {}) }
        : null,
    category_id: row.category_id,
    expires_at: row.expires_at.toISOString(),
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    version: row.version,
    status_log: statusLog.map((e) => ({ status: e.status, by: e.by, at: e.at.toISOString(), ...(e.reason !== null ? { reason: e.reason } : {}) })),
    ...(warnings && warnings.length > 0 ? { warnings } : {}),
  }
}

export const etagOf = (version: number) => `"${version}"`

const tagsOf = (header: string) => header.split(',').map((t) => t.trim())

/**
 * Whether an If-Match header names this version (strong comparison; `*` matches any, unless
 * `exact`: then the version itself must be named). No header holds.
 */
export function ifMatchHolds(header: string | undefined, version: number, exact = false): boolean {
  if (header === undefined) return true
  const tags = tagsOf(header)
  return (!exact && tags.includes('*')) || tags.includes(etagOf(version))
}

/** Whether an If-Match header names a version at all (`*` names none). */
export const namesVersion = (header: string | undefined): boolean => header !== undefined && tagsOf(header).some((t) => t !== '' && t !== '*')
