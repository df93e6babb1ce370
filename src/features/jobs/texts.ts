// The words of the workflow's automated messages (the brief's note 3). Plain functions of the
// job and its users, so the service decides who hears what and these only say it.

export interface Nearby {
  userId: string
  name: string
  distanceM: number
}

export interface TextJob {
  title: string
  price_amount: number | null
  price_currency: string | null
  scheduled_at: Date | null
  location_address: string | null
  expires_at: Date
  payment_fee?: number | null
  payment_refunded?: number
}

// Making an Intl.NumberFormat costs far more than using one: one a currency, made once.
const moneyFormats = new Map<string, { format: Intl.NumberFormat; digits: number }>()

export function formatMoney(amount: number, currency: string): string {
  let entry = moneyFormats.get(currency)
  if (!entry) {
    const format = new Intl.NumberFormat('en', { style: 'currency', currency })
    entry = { format, digits: format.resolvedOptions().maximumFractionDigits ?? 2 }
    moneyFormats.set(currency, entry)
  }
  return entry.format.format(amount / 10 ** entry.digits)
}

export const formatWhen = (at: Date) => `${at.toISOString().slice(0, 16).replace('T', ' ')} UTC`

export function formatDistance(meters: number): string {
  if (meters < 1000) return `${Math.max(10, Math.round(meters / 10) * 10)} m`
  return `${(meters / 1000).toFixed(meters < 10_000 ? 1 : 0)} km`
}

const priceOf = (job: TextJob) =>
  job.price_amount !== null && job.price_currency !== null ? formatMoney(job.price_amount, job.price_currency) : null

const quoted = (job: TextJob) => `"${job.title}"`

/** The price as the worker reads it in an offer: the client's, or none yet for the worker to quote. */
const offeredPrice = (job: TextJob) => priceOf(job) ?? 'none yet, quote yours'

/** "a", "a and b", "a, b and c". */
const listed = (items: string[]) => (items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`)

export const texts = {
  offer(job: TextJob, clientName: string, distanceM: number | null): string {
    const parts = [
      `${clientName} offers you a job: ${quoted(job)}.`,
      `Price: ${offeredPrice(job)}.`,
      `When: ${job.scheduled_at ? formatWhen(job.scheduled_at) : 'not set yet'}.`,
    ]
    if (job.location_address || distanceM !== null) {
      const where = [job.location_address, distanceM !== null ? `about ${formatDistance(distanceM)} from you` : null].filter(Boolean).join(', ')
      parts.push(`Where: ${where}.`)
    }
    parts.push(`Accept or decline it before ${formatWhen(job.expires_at)}, when the offer expires.`)
    return parts.join(' ')
  },

  noPictureWarning(workerName: string): string {
    return `${workerName} has no profile picture yet, and can't accept the job until they add one; they have been asked to.`
  },

  addPicture(): string {
    return 'A client has offered you a job, but you have no profile picture. Add one: clients want to see who they hire, and a job can\'t be accepted without one.'
  },

  /** `changed`: what the edit changed, in words ("the price"), in the order of the offer's fields. */
  edited(job: TextJob, clientName: string, changed: string[]): string {
    const what = changed.length > 0 ? `${listed(changed)} of the offer` : 'the offer'
    const where = job.location_address ? ` Where: ${job.location_address}.` : ''
    return `${clientName} changed ${what} ${quoted(job)}. Price: ${offeredPrice(job)}. When: ${job.scheduled_at ? formatWhen(job.scheduled_at) : 'not set yet'}.${where} It now expires ${formatWhen(job.expires_at)}.`
  },

  reminder(job: TextJob, clientName: string): string {
    return `Reminder: the offer ${quoted(job)} from ${clientName} expires ${formatWhen(job.expires_at)}. Accept or decline it before then.`
  },

  accepted(job: TextJob, workerName: string): string {
    return `${workerName} accepted ${quoted(job)}. Next steps: agree the details with ${workerName} here; ${workerName} marks the job started when the work begins and completed when it is done, and then you approve it${priceOf(job) ? ` and pay ${priceOf(job)}` : ` at the price ${workerName} quotes`}.`
  },

  declined(job: TextJob, workerName: string, reason: string | undefined, nearby: Nearby[] | null): string {
    const parts = [`${workerName} declined ${quoted(job)}${reason ? `: "${reason}"` : '.'}`]
    if (nearby === null) {
      parts.push('Search for other workers nearby to offer the job to instead.')
    } else if (nearby.length === 0) {
      parts.push('No other workers are available near the job\'s location right now; try again later or search further away.')
    } else {
      parts.push(
        `Workers available near the job's location now, to offer it to instead: ${nearby
          .map((w) => `${w.name} (${formatDistance(w.distanceM)} away, user ${w.userId})`)
          .join('; ')}.`,
      )
    }
    return parts.join(' ')
  },

  canceled(job: TextJob, byName: string, reason: string | undefined): string {
    return `${byName} canceled ${quoted(job)}${reason ? `: "${reason}"` : '.'}`
  },

  openExpired(job: TextJob): string {
    return `Your open request ${quoted(job)} expired: no worker took it. Post it again, perhaps with a wider reach or another price, or offer it to a worker you found.`
  },

  /** An open request, as each alerted worker reads it. */
  alert(job: TextJob, clientName: string, distanceM: number | null): string {
    const parts = [
      `New open request near you from ${clientName}: ${quoted(job)}.`,
      `Price: ${offeredPrice(job)}.`,
      `When: ${job.scheduled_at ? formatWhen(job.scheduled_at) : 'not set yet'}.`,
    ]
    if (job.location_address || distanceM !== null) {
      const where = [job.location_address, distanceM !== null ? `about ${formatDistance(distanceM)} from you` : null].filter(Boolean).join(', ')
      parts.push(`Where: ${where}.`)
    }
    parts.push(`Other workers were alerted too: the first to accept it gets the job. It expires ${formatWhen(job.expires_at)}.`)
    return parts.join(' ')
  },

  expired(job: TextJob, workerName: string): string {
    return `Your offer ${quoted(job)} to ${workerName} expired without an answer. Offer it again, or to another worker.`
  },

  started(job: TextJob, workerName: string): string {
    return `${workerName} started work on ${quoted(job)}.`
  },

  completed(job: TextJob, workerName: string, autoApproveAt: Date): string {
    const price = priceOf(job)
    if (!price) return `${workerName} marked ${quoted(job)} completed. It has no price yet: approve it once ${workerName} has quoted one, or reply here if something is wrong.`
    return `${workerName} marked ${quoted(job)} completed. Approve it to pay ${price}, or reply here if something is wrong. Without an answer it is approved by itself ${formatWhen(autoApproveAt)}.`
  },

  /** The worker's quote, to the client: what it is the price of, and what the client may do, by where the job is. */
  quote(job: TextJob, workerName: string, status: 'REQUESTED' | 'ACCEPTED' | 'STARTED' | 'COMPLETED', autoApproveAt: Date | null): string {
    const price = priceOf(job)
    const head = `${workerName} quotes ${price} for ${quoted(job)}`
    switch (status) {
      case 'REQUESTED':
        return `${head}: the price of the job if ${workerName} accepts it. Change or cancel your offer if it does not suit you.`
      case 'ACCEPTED':
        return `${head}: the price you approve when the work is done. If it does not suit you, cancel the job before the work starts.`
      case 'STARTED':
        return `${head}: the price you approve when the work is done.`
      case 'COMPLETED':
        return `${head}. Approve it to pay ${price}, or reply here if something is wrong. Without an answer it is approved by itself ${formatWhen(autoApproveAt!)}.`
    }
  },

  approved(job: TextJob, clientName: string): string {
    return `${clientName} approved ${quoted(job)}; the payment of ${priceOf(job) ?? 'the agreed price'} has started.`
  },

  autoApproved(job: TextJob, toClient: boolean): string {
    return toClient
      ? `${quoted(job)} was approved by itself, with no answer within the approval period; the payment of ${priceOf(job)} has started.`
      : `${quoted(job)} was approved by itself, the client not answering within the approval period; the payment of ${priceOf(job)} has started.`
  },

  quoteNeeded(job: TextJob): string {
    return `${quoted(job)} is completed, but has no price: quote yours, so that the client can approve it and you get paid.`
  },

  /** PAID: the client's receipt (the amount, the fee, the job), and the worker's payout. */
  paid(job: TextJob, toClient: boolean): string {
    const fee = job.payment_fee ?? 0
    const net = job.price_amount !== null && job.price_currency !== null ? formatMoney(job.price_amount - (job.payment_refunded ?? 0) - fee, job.price_currency) : null
    const feeText = job.price_currency !== null ? formatMoney(fee, job.price_currency) : ''
    return toClient
      ? `Receipt: you paid ${priceOf(job)} for ${quoted(job)}, of which ${feeText} is the platform's fee and ${net} goes to the worker. Thank you!`
      : `You were paid ${net} for ${quoted(job)} (${priceOf(job)} less the platform's fee of ${feeText}).`
  },
}
