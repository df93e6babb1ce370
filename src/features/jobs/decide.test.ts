// The decisions on jobs, without a database: the job as read, the command and fixed dates in,
// the refusal or the plan (changes, log entry, notes, follow-ups) out.

import { describe, expect, it } from 'vitest'
import { decideOffer, decideOfferParties, decideOpenRequest, decideOpenRequestClient } from './decide-offer.js'
import {
  decideCancelForDeletion,
  decideDue,
  decideEdit,
  decideExpiry,
  decideMove,
  decidePaid,
  decideQuote,
  planMove,
  type Decision,
  type JobsSettings,
  type MovePlan,
  type Plan,
} from './decide.js'
import type { JobWithParties } from './store.js'
import { JOB_STATUSES, WORKFLOW, judge, type JobStatus, type Mover } from './workflow.js'

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR
const T0 = new Date('2026-03-02T10:00:00.000Z')
const at = (ms: number) => new Date(T0.getTime() + ms)
const settings: JobsSettings = { autoApproveAfterMs: 7 * DAY, reminderBeforeMs: DAY, paymentRetryMs: 5 * MINUTE, feeBps: 1000 }

const C = '01900000-0000-7000-8000-00000000000c'
const W = '01900000-0000-7000-8000-00000000000a'
const OUTSIDER = '01900000-0000-7000-8000-0000000000ff'
const JOB = '01900000-0000-7000-8000-000000000001'
const client = { id: C, first_name: 'Carla', last_name: 'Client', picture_etag: null, deleted_at: null }
const worker = { id: W, first_name: 'Wanda', last_name: 'Worker', picture_etag: 'e1', deleted_at: null }

/** A job of Carla's offered to Wanda a day before T0, in `status`, at version 3. */
function job(status: JobStatus, over: Partial<JobWithParties> = {}): JobWithParties {
  return {
    id: JOB,
    client_id: C,
    worker_id: W,
    open_request: false,
    title: 'Paint the fence',
    description: '',
    status,
    price_amount: 2500,
    price_currency: 'EUR',
    scheduled_at: null,
    location_lat: null,
    location_lon: null,
    location_address: null,
    category_id: null,
    expires_at: at(2 * DAY),
    remind_at: status === 'REQUESTED' ? at(DAY) : null,
    completed_at: status === 'COMPLETED' ? at(-HOUR) : null,
    due_at: null,
    // The price is held: the workflow's moves are checked here, the escrow in payments.test.ts.
    payment_status: 'held',
    payment_fee: 250,
    payment_intent_id: 'pi_1',
    payment_client_secret: null,
    payment_next_action: null,
    payment_failure_code: null,
    payment_decline_code: null,
    payment_attempts: 0,
    payment_charged: 2500,
    payment_refunded: 0,
    payment_transfer_id: null,
    payment_disputed: false,
    payment_dispute_id: null,
    version: 3,
    created_at: at(-DAY),
    updated_at: at(-DAY),
    client,
    worker,
    client_name: 'Carla Client',
    worker_name: 'Wanda Worker',
    worker_has_picture: true,
    worker_payouts_enabled: true,
    status_log: [{ job_id: JOB, status: 'REQUESTED', by: C, at: at(-DAY), reason: null }],
    ...over,
  }
}

function planOf<P>(decision: Decision<P>): P {
  if (!decision.ok) throw new Error(`refused: ${decision.refusal.code}`)
  expect(decision.refusalAfter).toBeUndefined()
  return decision.plan
}

function refusalOf<P>(decision: Decision<P>) {
  if (decision.ok) throw new Error('not refused')
  const { refusal } = decision
  return { status: refusal.status, code: refusal.code, message: refusal.message, name: refusal.name }
}

const idOf = { client: C, worker: W, time: null, payments: null } as const

/** What each move of the table does, mover by mover: the notes each side gets and what it asks to happen next. */
const EXPECTED: Record<string, { notes: { from: string | null; to: string; text: string }[]; followUps?: { do: string; at: Date }[] }> = {
  'REQUESTED>ACCEPTED:worker': {
    notes: [{ from: W, to: C, text: 'Wanda Worker accepted "Paint the fence". Next steps: agree the details with Wanda Worker here; Wanda Worker marks the job started when the work begins and completed when it is done, and then you approve it and pay €25.00.' }],
  },
  'REQUESTED>DECLINED:worker': {
    notes: [{ from: W, to: C, text: 'Wanda Worker declined "Paint the fence": "Plans changed" Search for other workers nearby to offer the job to instead.' }],
    // The held price goes back to the client.
    followUps: [{ do: 'release_payment', at: T0 }],
  },
  'REQUESTED>CANCELED:client': { notes: [{ from: C, to: W, text: 'Carla Client canceled "Paint the fence": "Plans changed"' }], followUps: [{ do: 'release_payment', at: T0 }] },
  'REQUESTED>EXPIRED:time': {
    notes: [{ from: null, to: C, text: 'Your offer "Paint the fence" to Wanda Worker expired without an answer. Offer it again, or to another worker.' }],
    followUps: [{ do: 'release_payment', at: T0 }],
  },
  'ACCEPTED>STARTED:worker': { notes: [{ from: W, to: C, text: 'Wanda Worker started work on "Paint the fence".' }] },
  'ACCEPTED>CANCELED:client': { notes: [{ from: C, to: W, text: 'Carla Client canceled "Paint the fence": "Plans changed"' }], followUps: [{ do: 'release_payment', at: T0 }] },
  'ACCEPTED>CANCELED:worker': { notes: [{ from: W, to: C, text: 'Wanda Worker canceled "Paint the fence": "Plans changed"' }], followUps: [{ do: 'release_payment', at: T0 }] },
  'STARTED>COMPLETED:worker': {
    notes: [{ from: W, to: C, text: 'Wanda Worker marked "Paint the fence" completed. Approve it to pay €25.00, or reply here if something is wrong. Without an answer it is approved by itself 2026-03-09 10:00 UTC.' }],
    followUps: [{ do: 'auto_approve', at: at(7 * DAY) }],
  },
  'COMPLETED>PENDING_PAYMENT:client': {
    notes: [{ from: C, to: W, text: 'Carla Client approved "Paint the fence"; the payment of €25.00 has started.' }],
    followUps: [{ do: 'request_payment', at: at(5 * MINUTE) }],
  },
  'COMPLETED>PENDING_PAYMENT:time': {
    notes: [
      { from: null, to: W, text: '"Paint the fence" was approved by itself, the client not answering within the approval period; the payment of €25.00 has started.' },
      { from: null, to: C, text: '"Paint the fence" was approved by itself, with no answer within the approval period; the payment of €25.00 has started.' },
    ],
    followUps: [{ do: 'request_payment', at: at(5 * MINUTE) }],
  },
  'PENDING_PAYMENT>PAID:payments': {
    notes: [
      { from: null, to: W, text: 'You were paid €22.50 for "Paint the fence" (€25.00 less the platform\'s fee of €2.50).' },
      { from: null, to: C, text: 'Receipt: you paid €25.00 for "Paint the fence", of which €2.50 is the platform\'s fee and €22.50 goes to the worker. Thank you!' },
    ],
  },
}

/** A move of the table by its mover: the users' through decideMove (with its checks), time's and payments' as planned. */
function decideRow(from: JobStatus, to: JobStatus, mover: Mover): MovePlan {
  const read = job(from, from === 'REQUESTED' ? {} : { remind_at: null })
  if (mover === 'client' || mover === 'worker') return planOf(decideMove(read, { actorId: idOf[mover], status: to, reason: 'Plans changed', ifMatch: '"3"' }, T0, settings))
  return planMove(read, to, mover, T0, settings)
}

describe('every move of the workflow table', () => {
  const rows = WORKFLOW.flatMap((move) => move.by.map((mover) => ({ move, mover, key: `${move.from}>${move.to}:${mover}` })))

  it('has its expectations here, and nothing more', () => {
    expect(rows.map((r) => r.key).sort()).toEqual(Object.keys(EXPECTED).sort())
  })

  it.each(rows)('$key: the status, its log entry, the notes to each side and the follow-ups', ({ move, mover, key }) => {
    const plan = decideRow(move.from, move.to, mover)
    const expected = EXPECTED[key]!
    const followUps = expected.followUps ?? []
    expect(plan.at).toEqual(T0)
    expect(plan.entry).toEqual({ job_id: JOB, status: move.to, by: idOf[mover], at: T0, reason: mover === 'client' || mover === 'worker' ? 'Plans changed' : null })
    expect(plan.notes).toEqual(expected.notes)
    expect(plan.followUps).toEqual(followUps)
    expect(plan.changes).toMatchObject({ status: move.to, updated_at: T0, due_at: followUps[0]?.at ?? null, remind_at: null })
    expect(plan.changes.completed_at).toEqual(move.to === 'COMPLETED' ? T0 : undefined)
    expect(plan.warnings).toBeUndefined()
  })

  it('suggests the workers nearby with a decline, or says none are near', () => {
    const decline = (nearby: { userId: string; name: string; distanceM: number }[]) =>
      planOf(decideMove(job('REQUESTED'), { actorId: W, status: 'DECLINED', nearby }, T0, settings)).notes[0]!.text
    expect(decline([{ userId: OUTSIDER, name: 'Nora Near', distanceM: 1234 }])).toBe(
      `Wanda Worker declined "Paint the fence". Workers available near the job's location now, to offer it to instead: Nora Near (1.2 km away, user ${OUTSIDER}).`,
    )
    expect(decline([])).toContain('No other workers are available near the job\'s location right now')
  })

  it('agrees with judge() for every status, target and user: a plan when allowed, 403 or 409 when not', () => {
    for (const from of JOB_STATUSES) {
      for (const mover of ['client', 'worker'] as const) {
        for (const to of JOB_STATUSES) {
          const decision = decideMove(job(from), { actorId: idOf[mover], status: to, reason: 'r', ifMatch: '"3"' }, T0, settings)
          const verdict = judge(from, to, mover)
          if (verdict.ok) expect(decision.ok, `${mover} ${from}>${to}`).toBe(true)
          else expect(refusalOf(decision).code, `${mover} ${from}>${to}`).toBe(verdict.why === 'not_yours' ? 'not_your_move' : 'move_not_allowed')
        }
      }
    }
  })
})

describe('refusals of a move', () => {
  const move = (read: JobWithParties | undefined, actorId: string, status: JobStatus, extra: Record<string, unknown> = {}) => decideMove(read, { actorId, status, ...extra }, T0, settings)

  it('hides the job from anyone but its two users (404), and answers 404 for no job', () => {
    expect(refusalOf(move(job('REQUESTED'), OUTSIDER, 'ACCEPTED'))).toEqual({ status: 404, code: 'job_not_found', message: 'No such job', name: 'NotFoundError' })
    expect(refusalOf(move(undefined, W, 'ACCEPTED')).code).toBe('job_not_found')
  })

  it('is 403 not_your_move for a move of the other side, 409 move_not_allowed for one not allowed now', () => {
    expect(refusalOf(move(job('REQUESTED'), C, 'ACCEPTED'))).toEqual({ status: 403, code: 'not_your_move', message: 'Moving a job to ACCEPTED is not the client\'s move', name: 'ForbiddenError' })
    expect(refusalOf(move(job('PENDING_PAYMENT'), W, 'PAID'))).toMatchObject({ status: 403, code: 'not_your_move' })
    expect(refusalOf(move(job('REQUESTED'), W, 'STARTED'))).toEqual({ status: 409, code: 'move_not_allowed', message: 'The job is REQUESTED, and can\'t move to STARTED from there (the worker may move it to ACCEPTED or DECLINED)', name: 'ConflictError' })
  })

  it('needs a reason to cancel an ACCEPTED job (400 reason_required)', () => {
    const decision = move(job('ACCEPTED'), C, 'CANCELED')
    expect(refusalOf(decision)).toEqual({ status: 400, code: 'reason_required', message: 'Say why: moving the job from ACCEPTED to CANCELED needs a reason', name: 'InvalidInputError' })
    expect(!decision.ok && 'errors' in decision.refusal && decision.refusal.errors).toEqual([{ field: 'body/reason', message: 'is required for this move' }])
  })

  it('needs a picture to accept (409 worker_has_no_picture)', () => {
    expect(refusalOf(move(job('REQUESTED', { worker_has_picture: false }), W, 'ACCEPTED', { ifMatch: '"3"' }))).toMatchObject({ status: 409, code: 'worker_has_no_picture' })
    expect(move(job('REQUESTED', { worker_has_picture: false }), W, 'DECLINED').ok).toBe(true)
  })

  it('approves the price as it stands, and a job without one only once its worker has quoted (409 quote_required)', () => {
    const unpriced = job('COMPLETED', { price_amount: null, price_currency: null })
    expect(refusalOf(move(unpriced, C, 'PENDING_PAYMENT'))).toEqual({
      status: 409, code: 'quote_required', message: 'The job has no price yet: its worker quotes one (POST /job/{id}/quote), and then it can be approved', name: 'ConflictError',
    })
    const approved = planOf(move(job('COMPLETED'), C, 'PENDING_PAYMENT'))
    expect(approved.changes.price_amount).toBeUndefined()
    expect(approved.notes[0]!.text).toBe('Carla Client approved "Paint the fence"; the payment of €25.00 has started.')
  })

  it('honours If-Match: 412 version_mismatch for another version, carrying the job as it is now; the same one and * pass', () => {
    const decision = move(job('ACCEPTED'), W, 'STARTED', { ifMatch: '"2"' })
    expect(refusalOf(decision)).toEqual({
      status: 412, code: 'version_mismatch', message: 'The job has changed since you read it: `job` is the job as it is now', name: 'PreconditionFailedError',
    })
    expect(!decision.ok && decision.refusal.extensions).toEqual({ job: expect.objectContaining({ id: JOB, status: 'ACCEPTED', version: 3, price: { amount: 2500, currency: 'EUR' } }) })
    expect(refusalOf(move(job('ACCEPTED'), W, 'STARTED', { ifMatch: 'W/"3"' })).code).toBe('version_mismatch')
    expect(move(job('ACCEPTED'), W, 'STARTED', { ifMatch: '"3"' }).ok).toBe(true)
    expect(move(job('ACCEPTED'), W, 'STARTED', { ifMatch: '"1", *' }).ok).toBe(true)
    expect(move(job('ACCEPTED'), W, 'STARTED').ok).toBe(true)
  })

  it('binds an accept to the terms read: the version must be named (428 version_required; * names none), and be the current one (412 with the job)', () => {
    for (const ifMatch of [undefined, '*', ' * ']) {
      expect(refusalOf(move(job('REQUESTED'), W, 'ACCEPTED', { ifMatch }))).toEqual({
        status: 428,
        code: 'version_required',
        message: 'Moving a job to ACCEPTED binds you to its terms as you read them: name that version, with the job\'s ETag in an If-Match header',
        name: 'PreconditionRequiredError',
      })
    }
    for (const ifMatch of ['"2"', '"2", *']) {
      const decision = move(job('REQUESTED', { price_amount: 1 }), W, 'ACCEPTED', { ifMatch })
      expect(refusalOf(decision).code).toBe('version_mismatch')
      expect(!decision.ok && decision.refusal.extensions?.job).toMatchObject({ status: 'REQUESTED', version: 3, price: { amount: 1, currency: 'EUR' } })
    }
    expect(move(job('REQUESTED'), W, 'ACCEPTED', { ifMatch: '"2", "3"' }).ok).toBe(true)
    // Whose move it is comes first: the client's accept is 403 with or without a version.
    expect(refusalOf(move(job('REQUESTED'), C, 'ACCEPTED')).code).toBe('not_your_move')
  })

  it('expires an offer found past its expiry, and refuses the move after (409 job_expired), before any other check', () => {
    const stale = job('REQUESTED', { expires_at: T0 })
    const decision = move(stale, C, 'ACCEPTED', { ifMatch: '"1"' })
    if (!decision.ok) throw new Error('expected the expiry')
    expect(decision.plan.entry).toEqual({ job_id: JOB, status: 'EXPIRED', by: null, at: T0, reason: null })
    expect(decision.plan.notes).toEqual([{ from: null, to: C, text: expect.stringContaining('expired without an answer') }])
    expect(decision.refusalAfter).toMatchObject({ status: 409, code: 'job_expired', message: 'The offer has expired' })
  })
})

describe('an edit of an offer', () => {
  const edit = (read: JobWithParties | undefined, input: Record<string, unknown>, extra: { actorId?: string; blocked?: boolean; ifMatch?: string } = {}) =>
    decideEdit({ job: read, blocked: extra.blocked ?? false }, { actorId: extra.actorId ?? C, input, ifMatch: extra.ifMatch }, T0, settings)

  it('changes what it names, tells the worker, and asks for a new reminder and expiry only with expires_in', () => {
    // An offer not paid for yet: its price may change (or go); a held one can't (see payments.test.ts).
    const unpaid = job('REQUESTED', { payment_status: 'requires_payment_method', payment_charged: 0, payment_intent_id: null })
    const plan: Plan = planOf(edit(unpaid, { title: '  Paint the gate ', description: '', price: null, expires_in: 4 * 3600 }))
    expect(plan.changes).toEqual({
      updated_at: T0, title: 'Paint the gate', description: '', price_amount: null, price_currency: null, expires_at: at(4 * HOUR), due_at: at(2 * HOUR), remind_at: at(2 * HOUR),
      payment_status: null, payment_fee: null, payment_failure_code: null, payment_decline_code: null,
    })
    expect(refusalOf(edit(job('REQUESTED'), { price: { amount: 100, currency: 'EUR' } })).code).toBe('payment_price_locked')
    expect(plan.entry).toBeUndefined()
    expect(plan.followUps).toEqual([{ do: 'remind', at: at(2 * HOUR) }, { do: 'expire', at: at(4 * HOUR) }])
    // What changed is named (the description given is the one it had).
    expect(plan.notes).toEqual([{ from: C, to: W, text: 'Carla Client changed the title, the price and the expiry of the offer "Paint the gate". Price: none yet, quote yours. When: not set yet. It now expires 2026-03-02 14:00 UTC.' }])
    expect(plan.warnings).toEqual([])

    const plain = planOf(edit(job('REQUESTED'), { scheduled_at: '2026-03-10T08:30:00Z', location: { lat: 48.8, lon: 2.3, address: '3 rue Oberkampf' } }))
    expect(plain.changes).toEqual({ updated_at: T0, scheduled_at: new Date('2026-03-10T08:30:00Z'), location_lat: 48.8, location_lon: 2.3, location_address: '3 rue Oberkampf' })
    expect(plain.followUps).toEqual([])
    expect(plain.notes[0]!.text).toBe('Carla Client changed the date and the place of the offer "Paint the fence". Price: €25.00. When: 2026-03-10 08:30 UTC. Where: 3 rue Oberkampf. It now expires 2026-03-04 10:00 UTC.')
    // An edit that changes nothing still tells the worker, without naming a change.
    expect(planOf(edit(job('REQUESTED'), { title: 'Paint the fence', price: { amount: 2500, currency: 'EUR' } })).notes[0]!.text).toMatch(/^Carla Client changed the offer "Paint the fence"\. Price: €25\.00\./)
  })

  it('warns the client when the worker has no picture', () => {
    expect(planOf(edit(job('REQUESTED', { worker_has_picture: false }), { title: 'x' })).warnings).toEqual([
      { code: 'worker_has_no_picture', detail: 'Wanda Worker has no profile picture yet, and can\'t accept the job until they add one; they have been asked to.' },
    ])
  })

  it('refuses outsiders (404), the worker (403), a block (403), a stale version (412), a job past REQUESTED (409) and a new worker (400)', () => {
    expect(refusalOf(edit(job('REQUESTED'), {}, { actorId: OUTSIDER })).code).toBe('job_not_found')
    expect(refusalOf(edit(undefined, {})).code).toBe('job_not_found')
    expect(refusalOf(edit(job('REQUESTED'), {}, { actorId: W }))).toEqual({ status: 403, code: 'not_your_offer', message: 'Only the client who made the offer may change it', name: 'ForbiddenError' })
    expect(refusalOf(edit(job('REQUESTED'), {}, { blocked: true }))).toMatchObject({ status: 403, code: 'blocked' })
    expect(refusalOf(edit(job('REQUESTED'), {}, { ifMatch: '"2"' }))).toMatchObject({ status: 412, code: 'version_mismatch' })
    expect(refusalOf(edit(job('ACCEPTED'), {}))).toEqual({ status: 409, code: 'job_not_editable', message: 'An offer can be changed only while REQUESTED; it is ACCEPTED', name: 'ConflictError' })
    expect(refusalOf(edit(job('REQUESTED'), { worker_id: OUTSIDER }))).toMatchObject({ status: 400, code: 'worker_fixed' })
    expect(edit(job('REQUESTED'), { worker_id: W }).ok).toBe(true)
  })

  it('expires a stale offer instead, and refuses the edit after', () => {
    const decision = edit(job('REQUESTED', { expires_at: at(-1) }), { title: 'x' })
    expect(decision.ok && decision.plan.changes.status).toBe('EXPIRED')
    expect(decision.ok && decision.refusalAfter?.code).toBe('job_expired')
  })
})

describe('a quote', () => {
  const unpriced = (status: JobStatus, over: Partial<JobWithParties> = {}) => job(status, { price_amount: null, price_currency: null, ...over })
  const quote = (read: JobWithParties | undefined, extra: { actorId?: string; ifMatch?: string } = {}) =>
    decideQuote(read, { actorId: extra.actorId ?? W, price: { amount: 4500, currency: 'EUR' }, ifMatch: extra.ifMatch }, T0, settings)

  it('sets the price of a job without one, from the offer until approval, and tells the client what it is the price of', () => {
    const texts: Record<string, string> = {
      REQUESTED: 'Wanda Worker quotes €45.00 for "Paint the fence": the price of the job if Wanda Worker accepts it. Change or cancel your offer if it does not suit you.',
      ACCEPTED: 'Wanda Worker quotes €45.00 for "Paint the fence": the price you approve when the work is done. If it does not suit you, cancel the job before the work starts.',
      STARTED: 'Wanda Worker quotes €45.00 for "Paint the fence": the price you approve when the work is done.',
      COMPLETED: 'Wanda Worker quotes €45.00 for "Paint the fence". Approve it to pay €45.00, or reply here if something is wrong. Without an answer it is approved by itself 2026-03-09 10:00 UTC.',
    }
    for (const status of JOB_STATUSES) {
      const decision = quote(unpriced(status))
      if (!(status in texts)) {
        expect(refusalOf(decision), status).toMatchObject({ status: 409, code: 'job_not_quotable' })
        continue
      }
      const plan = planOf(decision)
      expect(plan.entry).toBeUndefined()
      expect(plan.notes).toEqual([{ from: W, to: C, text: texts[status] }])
      if (status === 'COMPLETED') {
        // The approval period starts again from the quote.
        expect(plan.changes).toEqual({ updated_at: T0, price_amount: 4500, price_currency: 'EUR', payment_status: 'requires_payment_method', payment_fee: 450, due_at: at(7 * DAY), remind_at: null })
        expect(plan.followUps).toEqual([{ do: 'auto_approve', at: at(7 * DAY) }])
      } else {
        expect(plan.changes).toEqual({ updated_at: T0, price_amount: 4500, price_currency: 'EUR', payment_status: 'requires_payment_method', payment_fee: 450 })
        expect(plan.followUps).toEqual([])
      }
    }
  })

  it('is the worker\'s alone (403 for the client, 404 for anyone else), once (409 price_already_set), on the version named (412)', () => {
    expect(refusalOf(quote(unpriced('ACCEPTED'), { actorId: C }))).toEqual({
      status: 403, code: 'not_your_quote', message: 'Only the job\'s worker quotes its price; a client names it with the offer', name: 'ForbiddenError',
    })
    expect(refusalOf(quote(unpriced('ACCEPTED'), { actorId: OUTSIDER })).code).toBe('job_not_found')
    expect(refusalOf(quote(undefined)).code).toBe('job_not_found')
    expect(refusalOf(quote(job('ACCEPTED')))).toMatchObject({ status: 409, code: 'price_already_set' })
    expect(refusalOf(quote(unpriced('ACCEPTED'), { ifMatch: '"2"' }))).toMatchObject({ status: 412, code: 'version_mismatch' })
    expect(quote(unpriced('ACCEPTED'), { ifMatch: '"3"' }).ok).toBe(true)
  })

  it('expires a stale offer instead, and refuses the quote after', () => {
    const decision = quote(unpriced('REQUESTED', { expires_at: T0 }))
    expect(decision.ok && decision.plan.changes.status).toBe('EXPIRED')
    expect(decision.ok && decision.refusalAfter?.code).toBe('job_expired')
  })
})

describe('a new offer', () => {
  const user = (id: string, roles: string[], over: Record<string, unknown> = {}) => ({ ...(id === C ? client : worker), id, roles, ...over })
  const parties = (users: ReturnType<typeof user>[], blockerId: string | null = null, workerId = W) => decideOfferParties({ users, blockerId }, C, workerId)

  it('is between a client and a worker with no block between them', () => {
    expect(planOf(parties([user(C, ['CLIENT']), user(W, ['WORKER'])]))).toMatchObject({ client: { id: C }, worker: { id: W } })
    expect(refusalOf(parties([user(W, ['WORKER'])]))).toMatchObject({ status: 401, code: 'unauthenticated' })
    expect(refusalOf(parties([user(C, ['CLIENT'], { deleted_at: T0 }), user(W, ['WORKER'])])).code).toBe('unauthenticated')
    expect(refusalOf(parties([user(C, ['WORKER']), user(W, ['WORKER'])]))).toMatchObject({ status: 403, code: 'not_a_client' })
    expect(refusalOf(parties([user(C, ['CLIENT', 'WORKER'])], null, C))).toMatchObject({ status: 400, code: 'offer_to_self' })
    expect(refusalOf(parties([user(C, ['CLIENT'])]))).toMatchObject({ status: 404, code: 'worker_not_found' })
    expect(refusalOf(parties([user(C, ['CLIENT']), user(W, ['WORKER'], { deleted_at: T0 })])).code).toBe('worker_not_found')
    expect(refusalOf(parties([user(C, ['CLIENT']), user(W, ['CLIENT'])]))).toMatchObject({ status: 400, code: 'not_a_worker' })
    expect(refusalOf(parties([user(C, ['CLIENT']), user(W, ['WORKER'])], W))).toEqual({
      status: 403, code: 'blocked', message: 'You and this worker have blocked one another: no offers between you', name: 'ForbiddenError',
    })
  })

  it('is REQUESTED, tells the worker where and how far, and asks for a reminder a day before it expires in 72 h', () => {
    const input = { worker_id: W, title: ' Fix the tap ', price: { amount: 4500, currency: 'EUR' }, location: { lat: 48.85, lon: 2.35, address: '1 rue de Rivoli' } }
    const plan = decideOffer({ id: JOB, client, worker, input, distanceM: 1234 }, T0, settings)
    expect(plan.row).toMatchObject({
      id: JOB, client_id: C, worker_id: W, title: 'Fix the tap', description: '', status: 'REQUESTED', price_amount: 4500, price_currency: 'EUR',
      location_lat: 48.85, location_lon: 2.35, location_address: '1 rue de Rivoli', expires_at: at(3 * DAY), remind_at: at(2 * DAY), due_at: at(2 * DAY),
      completed_at: null, version: 1, created_at: T0, updated_at: T0,
    })
    expect(plan.entry).toEqual({ job_id: JOB, status: 'REQUESTED', by: C, at: T0, reason: null })
    expect(plan.followUps).toEqual([{ do: 'remind', at: at(2 * DAY) }, { do: 'expire', at: at(3 * DAY) }])
    expect(plan.notes).toEqual([{
      from: C, to: W,
      text: 'Carla Client offers you a job: "Fix the tap". Price: €45.00. When: not set yet. Where: 1 rue de Rivoli, about 1.2 km from you. Accept or decline it before 2026-03-05 10:00 UTC, when the offer expires.',
    }])
    expect(plan.warnings).toEqual([])
  })

  it('asks a worker without a picture for one, warns the client, and reminds at half the life of a short offer', () => {
    const plan = decideOffer({ id: JOB, client, worker: { ...worker, picture_etag: null }, input: { worker_id: W, title: 'Tap', expires_in: 3600 }, distanceM: null }, T0, settings)
    expect(plan.followUps).toEqual([{ do: 'remind', at: at(30 * MINUTE) }, { do: 'expire', at: at(HOUR) }])
    expect(plan.notes).toEqual([
      { from: C, to: W, text: 'Carla Client offers you a job: "Tap". Price: none yet, quote yours. When: not set yet. Accept or decline it before 2026-03-02 11:00 UTC, when the offer expires.' },
      { from: null, to: W, text: expect.stringContaining('you have no profile picture') },
    ])
    expect(plan.warnings).toEqual([{ code: 'worker_has_no_picture', detail: expect.stringContaining('Wanda Worker has no profile picture yet') }])
  })
})

describe('time-driven work', () => {
  it('expires an offer at its expiry, telling the client', () => {
    const decision = decideDue(job('REQUESTED', { expires_at: T0 }), T0, settings)
    expect(decision.kind === 'move' && decision.plan).toMatchObject({ entry: { status: 'EXPIRED', by: null }, notes: [{ from: null, to: C }], followUps: [{ do: 'release_payment', at: T0 }] })
  })

  it('reminds the worker once when the reminder is due, then waits for the expiry', () => {
    const decision = decideDue(job('REQUESTED', { remind_at: T0 }), T0, settings)
    expect(decision).toEqual({
      kind: 'touch',
      touch: {
        at: T0,
        changes: { due_at: at(2 * DAY), remind_at: null },
        notes: [{ from: null, to: W, text: 'Reminder: the offer "Paint the fence" from Carla Client expires 2026-03-04 10:00 UTC. Accept or decline it before then.' }],
        followUps: [{ do: 'expire', at: at(2 * DAY) }],
      },
    })
  })

  it('comes back later to an offer whose work is not due yet', () => {
    expect(decideDue(job('REQUESTED'), T0, settings)).toMatchObject({ kind: 'touch', touch: { changes: { due_at: at(DAY), remind_at: at(DAY) }, notes: [] } })
    expect(decideDue(job('REQUESTED', { remind_at: null }), T0, settings)).toMatchObject({ kind: 'touch', touch: { changes: { due_at: at(2 * DAY), remind_at: null }, notes: [] } })
  })

  it('approves a COMPLETED job 7 days after completion and asks for its payment; not before', () => {
    const early = decideDue(job('COMPLETED', { completed_at: at(-7 * DAY + MINUTE), updated_at: at(-7 * DAY + MINUTE) }), T0, settings)
    expect(early).toMatchObject({ kind: 'touch', touch: { changes: { due_at: at(MINUTE) }, notes: [], followUps: [{ do: 'auto_approve', at: at(MINUTE) }] } })
    const due = decideDue(job('COMPLETED', { completed_at: at(-7 * DAY), updated_at: at(-7 * DAY) }), T0, settings)
    if (due.kind !== 'move') throw new Error('expected the approval')
    expect(due.plan.entry).toMatchObject({ status: 'PENDING_PAYMENT', by: null })
    expect(due.plan.notes.map((n) => n.to)).toEqual([W, C])
    expect(due.plan.followUps).toEqual([{ do: 'request_payment', at: at(5 * MINUTE) }])
  })

  it('asks the worker for a quote instead when a due job has none, and nothing more', () => {
    expect(decideDue(job('COMPLETED', { completed_at: at(-8 * DAY), updated_at: at(-8 * DAY), price_amount: null, price_currency: null }), T0, settings)).toEqual({
      kind: 'touch',
      touch: {
        at: T0,
        changes: { due_at: null, remind_at: null },
        notes: [{ from: null, to: W, text: '"Paint the fence" is completed, but has no price: quote yours, so that the client can approve it and you get paid.' }],
        followUps: [],
      },
    })
  })

  it('counts the approval period from a quote given after the completion', () => {
    const quotedLate = job('COMPLETED', { completed_at: at(-8 * DAY), updated_at: at(-DAY) })
    expect(decideDue(quotedLate, T0, settings)).toMatchObject({ kind: 'touch', touch: { changes: { due_at: at(6 * DAY) }, notes: [] } })
    expect(decideDue(quotedLate, at(6 * DAY), settings).kind).toBe('move')
  })

  it('hands a pending payment to a payment task once, and drops what is due on other jobs', () => {
    expect(decideDue(job('PENDING_PAYMENT'), T0, settings)).toMatchObject({ kind: 'touch', touch: { changes: { due_at: null, remind_at: null }, followUps: [{ do: 'request_payment', at: T0 }] } })
    expect(decideDue(job('PAID'), T0, settings)).toMatchObject({ kind: 'touch', touch: { changes: { due_at: null }, notes: [], followUps: [] } })
  })
})

describe('moves of locked jobs', () => {
  it('expires only a stale offer', () => {
    expect(decideExpiry(job('REQUESTED', { expires_at: T0 }), T0, settings)?.changes.status).toBe('EXPIRED')
    expect(decideExpiry(job('REQUESTED'), T0, settings)).toBeUndefined()
    expect(decideExpiry(job('ACCEPTED', { expires_at: T0 }), T0, settings)).toBeUndefined()
    expect(decideExpiry(undefined, T0, settings)).toBeUndefined()
  })

  it('marks a job PAID once: a confirmation of a job already PAID changes nothing', () => {
    expect(decidePaid(job('PENDING_PAYMENT'), T0, settings)?.entry).toEqual({ job_id: JOB, status: 'PAID', by: null, at: T0, reason: null })
    expect(decidePaid(job('PAID'), T0, settings)).toBeUndefined()
    expect(decidePaid(job('PENDING_PAYMENT', { price_amount: null, price_currency: null }), T0, settings)).toBeUndefined()
  })

  it('cancels the jobs of a deleted account that have not started, on its behalf', () => {
    const byWorker = decideCancelForDeletion(job('REQUESTED'), W, T0, settings)
    expect(byWorker?.entry).toEqual({ job_id: JOB, status: 'CANCELED', by: W, at: T0, reason: 'The account was deleted' })
    expect(byWorker?.notes).toEqual([{ from: W, to: C, text: 'Wanda Worker canceled "Paint the fence": "The account was deleted"' }])
    expect(decideCancelForDeletion(job('ACCEPTED'), C, T0, settings)?.notes).toEqual([{ from: C, to: W, text: 'Carla Client canceled "Paint the fence": "The account was deleted"' }])
    expect(decideCancelForDeletion(job('STARTED'), C, T0, settings)).toBeUndefined()
  })
})


describe('open requests', () => {
  /** Carla's open request, nobody's yet, at version 1. */
  const open = (over: Partial<JobWithParties> = {}) =>
    job('REQUESTED', { worker_id: null, worker: null, worker_name: '', worker_has_picture: false, worker_payouts_enabled: false, open_request: true, remind_at: null, version: 1, ...over })
  const candidate = { worker, payoutsEnabled: true }

  it('are posted with no worker, alert each worker of the audience from the client, and ask only for their expiry', () => {
    const plan = decideOpenRequest({
      id: JOB,
      client: { ...client, roles: ['CLIENT'] },
      input: { title: ' Paint the fence ', category_id: OUTSIDER, location: { lat: 48.85, lon: 2.35, address: '1 rue de Rivoli' }, price: { amount: 2500, currency: 'EUR' } },
      audience: [{ workerId: W, distanceM: 1234 }, { workerId: OUTSIDER, distanceM: null }],
    }, T0, settings)
    expect(plan.row).toMatchObject({ worker_id: null, open_request: true, status: 'REQUESTED', title: 'Paint the fence', remind_at: null, due_at: at(3 * DAY), payment_status: 'requires_payment_method' })
    expect(plan.followUps).toEqual([{ do: 'expire', at: at(3 * DAY) }])
    expect(plan.notes.map((n) => [n.from, n.to])).toEqual([[C, W], [C, OUTSIDER]])
    expect(plan.notes[0]!.text).toBe('New open request near you from Carla Client: "Paint the fence". Price: €25.00. When: not set yet. Where: 1 rue de Rivoli, about 1.2 km from you. Other workers were alerted too: the first to accept it gets the job. It expires 2026-03-05 10:00 UTC.')
    expect(refusalOf(decideOpenRequestClient({ ...worker, roles: ['WORKER'] })).code).toBe('not_a_client')
  })

  it('are taken by an alerted worker\'s accept: the plan sets the worker, and tells the client', () => {
    const plan = planOf(decideMove(open(), { actorId: W, status: 'ACCEPTED', ifMatch: '"1"', candidate }, T0, settings))
    expect(plan.changes).toMatchObject({ status: 'ACCEPTED', worker_id: W })
    expect(plan.entry).toMatchObject({ status: 'ACCEPTED', by: W })
    expect(plan.notes.map((n) => [n.from, n.to])).toEqual([[W, C]])
  })

  it('refuse a worker who comes too late (409 job_taken, before a stale If-Match), one not alerted (404), and any move but an accept (403)', () => {
    const taken = open({ worker_id: OUTSIDER, worker: { ...worker, id: OUTSIDER }, status: 'ACCEPTED', version: 2 })
    expect(refusalOf(decideMove(taken, { actorId: W, status: 'ACCEPTED', ifMatch: '"1"', candidate }, T0, settings))).toMatchObject({ status: 409, code: 'job_taken' })
    expect(refusalOf(decideMove(open(), { actorId: W, status: 'ACCEPTED', ifMatch: '"1"' }, T0, settings))).toMatchObject({ status: 404, code: 'job_not_found' })
    expect(refusalOf(decideMove(open(), { actorId: W, status: 'DECLINED', candidate }, T0, settings))).toMatchObject({ status: 403, code: 'not_your_move' })
    expect(refusalOf(decideMove(open(), { actorId: W, status: 'ACCEPTED', candidate }, T0, settings))).toMatchObject({ status: 428, code: 'version_required' })
    expect(refusalOf(decideMove(open(), { actorId: W, status: 'ACCEPTED', ifMatch: '"1"', candidate: { worker: { ...worker, picture_etag: null }, payoutsEnabled: true } }, T0, settings)).code).toBe('worker_has_no_picture')
    expect(refusalOf(decideMove(open(), { actorId: W, status: 'ACCEPTED', ifMatch: '"1"', candidate: { worker, payoutsEnabled: false } }, T0, settings)).code).toBe('payouts_not_enabled')
  })

  it('refuse a worker in a block with the client (403 blocked), after job_taken and before the accept\'s other checks', () => {
    const blockedCandidate = { ...candidate, blocked: true }
    expect(refusalOf(decideMove(open(), { actorId: W, status: 'ACCEPTED', ifMatch: '"1"', candidate: blockedCandidate }, T0, settings))).toMatchObject({ status: 403, code: 'blocked' })
    expect(refusalOf(decideMove(open(), { actorId: W, status: 'ACCEPTED', candidate: blockedCandidate }, T0, settings)).code).toBe('blocked')
    const taken = open({ worker_id: OUTSIDER, worker: { ...worker, id: OUTSIDER }, status: 'ACCEPTED', version: 2 })
    expect(refusalOf(decideMove(taken, { actorId: W, status: 'ACCEPTED', ifMatch: '"1"', candidate: blockedCandidate }, T0, settings)).code).toBe('job_taken')
    expect(planOf(decideMove(open(), { actorId: W, status: 'ACCEPTED', ifMatch: '"1"', candidate: { ...candidate, blocked: false } }, T0, settings)).changes.worker_id).toBe(W)
  })

  it('expire telling the client nobody took it, and are canceled telling nobody else', () => {
    const expired = decideExpiry(open({ expires_at: at(-1) }), T0, settings)!
    expect(expired.notes).toEqual([{ from: null, to: C, text: 'Your open request "Paint the fence" expired: no worker took it. Post it again, perhaps with a wider reach or another price, or offer it to a worker you found.' }])
    const canceled = planOf(decideMove(open(), { actorId: C, status: 'CANCELED' }, T0, settings))
    expect(canceled.notes).toEqual([])
    expect(canceled.followUps).toEqual([{ do: 'release_payment', at: T0 }])
  })
})
