// The job workflow of DESIGN.md, as data: every allowed move, and who may make it. Everything
// else (the service's checks, the docs, the tests' model) reads this one table.

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

export interface Move {
  from: JobStatus
  to: JobStatus
  by: readonly Mover[]
  /** The mover must give a reason. */
  reasonRequired?: boolean
}

export const WORKFLOW: readonly Move[] = [
  { from: 'REQUESTED', to: 'ACCEPTED', by: ['worker'] },
  { from: 'REQUESTED', to: 'DECLINED', by: ['worker'] },
  { from: 'REQUESTED', to: 'CANCELED', by: ['client'] },
  { from: 'REQUESTED', to: 'EXPIRED', by: ['time'] },
  { from: 'ACCEPTED', to: 'STARTED', by: ['worker'] },
  { from: 'ACCEPTED', to: 'CANCELED', by: ['client', 'worker'], reasonRequired: true },
  { from: 'STARTED', to: 'COMPLETED', by: ['worker'] },
  { from: 'COMPLETED', to: 'PENDING_PAYMENT', by: ['client', 'time'] },
  { from: 'PENDING_PAYMENT', to: 'PAID', by: ['payments'] },
]

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
  const move = WORKFLOW.find((m) => m.from === from && m.to === to)
  if (move) return move.by.includes(by) ? { ok: true, move } : { ok: false, why: 'not_yours' }
  return WORKFLOW.some((m) => m.to === to && m.by.includes(by)) ? { ok: false, why: 'not_now' } : { ok: false, why: 'not_yours' }
}

