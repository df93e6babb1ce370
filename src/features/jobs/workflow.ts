// The job workflow of DESIGN.md, as data: every allowed move, who may make it, what it needs, what
// it tells whom and what it asks to happen next. Everything else (decide.ts, the docs, the tests'
// model) reads this one table; the offer, its edit and what time does short of a move are below it.

import { texts, type Nearby, type TextJob } from './texts.js'

export const JOB_STATUSES = [
  'REQUESTED',
  'ACCEPTED',
  'DECLINED',
  'CANCELED',
  'EXPIRED',
  'STARTED',
  'COMPLETED',
  'PENDING_PAYMENT',
  'PAID',
] as const
export type JobStatus = (typeof JOB_STATUSES)[number]

/** Who makes a move: one of the job's two users, time (the due-work sweep), or the payment provider. */
export type Mover = 'client' | 'worker' | 'time' | 'payments'

/** A system message about a job: from the user who changed it, or from no one (time, payments). */
export interface Note {
  from: string | null
  to: string
  text: string
}

/**
 * What a change asks to happen after it, with no time yet (decide.ts dates them):
 * - `remind`: remind the worker of the offer before it expires;
 * - `expire`: expire the offer at `expires_at`;
 * - `auto_approve`: approve the completed job if the client does not;
 * - `request_payment`: pay the worker from the held money now, and again later if that fails;
 * - `release_payment`: give the money held for a job that ended without work back to the client.
 */
export type FollowUpKind = 'remind' | 'expire' | 'auto_approve' | 'request_payment' | 'release_payment'

/** Where a job ends without work: money held for it goes back to the client in full. */
export const RELEASES_PAYMENT: readonly JobStatus[] = ['DECLINED', 'CANCELED', 'EXPIRED']

/**
 * The worker of an open request nobody took yet, as the notes name it: notes to it are dropped
 * (the alerted workers hear of the request by its alerts, and of nothing after).
 */
export const NOBODY = ''

/** A user of the job, as the texts name them. */
export interface Party {
  id: string
  name: string
}

/** What a move's notes are made of. */
export interface MoveFacts {
  /** The job as the move leaves it. */
  job: TextJob
  mover: Mover
  client: Party
  worker: Party
  reason: string | undefined
  /** Workers near the job's location now, for a decline; null when unknown. */
  nearby: Nearby[] | null
  /** When a COMPLETED job approves itself (the auto_approve follow-up). */
  autoApproveAt: Date | null
}

export interface Move {
  from: JobStatus
  to: JobStatus
  by: readonly Mover[]
  /** The mover must give a reason. */
  reasonRequired?: boolean
  /** The worker must have a profile picture (note 4). */
  pictureRequired?: boolean
  /**
   * The move binds the mover to the job's terms (price, date, place) as they read them: they must
   * name that version (If-Match with the job's ETag), and a job changed since refuses the move.
   */
  bindsTerms?: boolean
  /** The job must have a price: the offer's, or its worker's quote. */
  priceRequired?: boolean
  /**
   * A priced job's money must be held (the escrow) before the move: the worker commits to a job
   * that is paid for, and an approval pays out what is held. With `payoutsRequired`, the worker
   * must also be able to be paid (their payout account enabled).
   */
  paymentHeld?: boolean
  payoutsRequired?: boolean
  /** The job's column that records when the move happened. */
  stamps?: 'completed_at'
  /** The system messages of the move (note 3). */
  tells: (facts: MoveFacts) => Note[]
  /** What the move asks to happen next. Every move replaces what was asked before. */
  then?: readonly FollowUpKind[]
}

/** The mover's note to the other party, for moves either user may make. */
function fromMoverToOther(f: MoveFacts, text: (byName: string) => string): Note[] {
  const [by, other] = f.mover === 'client' ? [f.client, f.worker] : [f.worker, f.client]
  return [{ from: by.id, to: other.id, text: text(by.name) }]
}

/** The same words to both users, from no one. */
const toBoth = (f: MoveFacts, text: (toClient: boolean) => string): Note[] => [
  { from: null, to: f.worker.id, text: text(false) },
  { from: null, to: f.client.id, text: text(true) },
]

export const WORKFLOW: readonly Move[] = [
  {
    from: 'REQUESTED', to: 'ACCEPTED', by: ['worker'], bindsTerms: true, pictureRequired: true, paymentHeld: true, payoutsRequired: true,
    tells: (f) => [{ from: f.worker.id, to: f.client.id, text: texts.accepted(f.job, f.worker.name) }],
  },
  {
    from: 'REQUESTED', to: 'DECLINED', by: ['worker'],
    tells: (f) => [{ from: f.worker.id, to: f.client.id, text: texts.declined(f.job, f.worker.name, f.reason, f.nearby) }],
  },
  {
    from: 'REQUESTED', to: 'CANCELED', by: ['client'],
    tells: (f) => fromMoverToOther(f, (name) => texts.canceled(f.job, name, f.reason)),
  },
  {
    from: 'REQUESTED', to: 'EXPIRED', by: ['time'],
    tells: (f) => [{ from: null, to: f.client.id, text: f.worker.id === NOBODY ? texts.openExpired(f.job) : texts.expired(f.job, f.worker.name) }],
  },
  {
    from: 'ACCEPTED', to: 'STARTED', by: ['worker'],
    tells: (f) => [{ from: f.worker.id, to: f.client.id, text: texts.started(f.job, f.worker.name) }],
  },
  {
    from: 'ACCEPTED', to: 'CANCELED', by: ['client', 'worker'], reasonRequired: true,
    tells: (f) => fromMoverToOther(f, (name) => texts.canceled(f.job, name, f.reason)),
  },
  {
    from: 'STARTED', to: 'COMPLETED', by: ['worker'], stamps: 'completed_at', then: ['auto_approve'],
    tells: (f) => [{ from: f.worker.id, to: f.client.id, text: texts.completed(f.job, f.worker.name, f.autoApproveAt!) }],
  },
  {
    from: 'COMPLETED', to: 'PENDING_PAYMENT', by: ['client', 'time'], priceRequired: true, paymentHeld: true, then: ['request_payment'],
    tells: (f) => f.mover === 'client'
      ? [{ from: f.client.id, to: f.worker.id, text: texts.approved(f.job, f.client.name) }]
      : toBoth(f, (toClient) => texts.autoApproved(f.job, toClient)),
  },
  {
    from: 'PENDING_PAYMENT', to: 'PAID', by: ['payments'],
    tells: (f) => toBoth(f, (toClient) => texts.paid(f.job, toClient)),
  },
]

/** Where a job takes its worker's quote: from the offer until the client approves. */
export const QUOTABLE = ['REQUESTED', 'ACCEPTED', 'STARTED', 'COMPLETED'] as const satisfies readonly JobStatus[]
export type Quotable = (typeof QUOTABLE)[number]

/** What changes other than moves do: the offer, its edit, the worker's quote, and what time does short of a move. */
export const CHANGES = {
  /** A new offer: the worker hears of it (and is asked for a picture if they have none). */
  offer: {
    tells: (f: { job: TextJob; client: Party; worker: Party; workerHasPicture: boolean; distanceM: number | null }): Note[] => [
      { from: f.client.id, to: f.worker.id, text: texts.offer(f.job, f.client.name, f.distanceM) },
      ...(f.workerHasPicture ? [] : [{ from: null, to: f.worker.id, text: texts.addPicture() }]),
    ],
    then: ['remind', 'expire'] as const,
  },
  /** The client changed the offer: the worker is told, every time, what changed and the terms now. A new expiry asks for a new reminder too. */
  edit: {
    tells: (f: { job: TextJob; client: Party; worker: Party; changed: string[] }): Note[] => [{ from: f.client.id, to: f.worker.id, text: texts.edited(f.job, f.client.name, f.changed) }],
    thenWithNewExpiry: ['remind', 'expire'] as const,
  },
  /** Time to remind the worker of an offer; its expiry stays asked for. */
  reminder: {
    tells: (f: { job: TextJob; client: Party; worker: Party }): Note[] => [{ from: null, to: f.worker.id, text: texts.reminder(f.job, f.client.name) }],
    then: ['expire'] as const,
  },
  /**
   * The worker quotes the price of a job that has none (the offer named none): from the offer
   * until the client approves, so while REQUESTED, ACCEPTED, STARTED or COMPLETED. The client is
   * told, and approves that price, never one of its own. A quote on a COMPLETED job starts the
   * approval period again, so the client always has all of it with the price in view.
   */
  quote: {
    while: QUOTABLE,
    tells: (f: { job: TextJob; client: Party; worker: Party; status: Quotable; autoApproveAt: Date | null }): Note[] => [
      { from: f.worker.id, to: f.client.id, text: texts.quote(f.job, f.worker.name, f.status, f.autoApproveAt) },
    ],
    thenWhenCompleted: ['auto_approve'] as const,
  },
  /** Time to approve a job that has no price: its worker is asked for a quote; nothing more is asked (the quote asks for the approval). */
  quoteAsked: {
    tells: (f: { job: TextJob; worker: Party }): Note[] => [{ from: null, to: f.worker.id, text: texts.quoteNeeded(f.job) }],
    then: [] as const,
  },
}

/** The workflow's move from one status to another, whoever makes it. */
export const moveOf = (from: JobStatus, to: JobStatus): Move | undefined => WORKFLOW.find((m) => m.from === from && m.to === to)

export type Verdict =
  | { ok: true; move: Move }
  /** The mover never makes a move to this status: 403. */
  | { ok: false; why: 'not_yours' }
  /** The mover makes such moves, but not from the job's current status: 409. */
  | { ok: false; why: 'not_now' }

/**
 * Judges a move. The workflow's move from the job's status to the one asked for, when the mover
 * is not among those who make it, is not theirs (403); so is a status the mover never moves any
 * job to. A status the mover does move jobs to, but not from where this job is now, conflicts
 * with the job's state (409).
 */
export function judge(from: JobStatus, to: JobStatus, by: Mover): Verdict {
  const move = moveOf(from, to)
  if (move) return move.by.includes(by) ? { ok: true, move } : { ok: false, why: 'not_yours' }
  return WORKFLOW.some((m) => m.to === to && m.by.includes(by)) ? { ok: false, why: 'not_now' } : { ok: false, why: 'not_yours' }
}
