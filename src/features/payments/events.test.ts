import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, startTestApp, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { waitUntil } from '../../../test/support/wait.js'
import { EVENT_TASK } from './webhooks.js'

// Provider events outside the batch applier's round: `payments.apply-event` tasks queued one an
// event before batches (drained by applying their events from their rows), and events given up
// after all their attempts, which join the failed tasks that admins list and retry (audited).

let t: TestApp
let admin: SignedIn

beforeAll(async () => {
  t = await startTestApp({ JOB_SWEEP_INTERVAL: '0' })
  admin = await newUser(t.app, { first_name: 'Ada', last_name: 'Admin' })
  expect(await t.app.accounts.setAdmin(admin.email, true)).toBe(true)
}, 240_000)
afterAll(async () => t?.close())

const db = () => t.app.platform.database.db
const queue = () => t.app.platform.queue

/** A worker's payout account, made at the local provider, enabled there without telling the app (no event). */
async function accountEnabledQuietly(): Promise<string> {
  const user = await newUser(t.app, { roles: ['WORKER'] })
  const made = await t.app.inject({ method: 'POST', url: '/payments/account', headers: user.auth })
  expect(made.statusCode, made.body).toBe(201)
  const accountId: string = made.json().account_id
  await db().updateTable('local_accounts').set({ details_submitted: true, payouts_enabled: true, currently_due: JSON.stringify([]) as never }).where('id', '=', accountId).execute()
  return accountId
}
const payoutsEnabled = async (accountId: string) =>
  (await db().selectFrom('payment_accounts').select('payouts_enabled').where('account_id', '=', accountId).executeTakeFirstOrThrow()).payouts_enabled

/** An account.updated event row as the receipt writes it, with what the applier's round left on it. */
async function eventRow(id: string, accountId: string, extra: { attempts?: number; next_attempt_at?: Date | null; applied_at?: Date | null } = {}) {
  const payload = JSON.stringify({ id, type: 'account.updated', created: Math.floor(Date.now() / 1000), data: { object: { id: accountId, object: 'account' } } })
  await db().insertInto('payment_events').values({ id, type: 'account.updated', payload, received_at: new Date(), applied_at: null, next_attempt_at: null, last_error: null, ...extra }).execute()
}
const taskState = async (id: string) => {
  const { rows } = await sql<{ state: string }>`SELECT state FROM pgboss.job WHERE id = ${id} UNION ALL SELECT state FROM pgboss.archive WHERE id = ${id}`.execute(db())
  return rows[0]?.state
}
const appliedAt = async (id: string) => (await db().selectFrom('payment_events').select('applied_at').where('id', '=', id).executeTakeFirstOrThrow()).applied_at

describe('payments.apply-event tasks queued before the batch applier', () => {
  it('drain: each applies its event from its row, once; an event applied already, or none, completes it', async () => {
    const pending = await accountEnabledQuietly()
    const done = await accountEnabledQuietly()
    // Not due for the batch applier for an hour: only the task applies it now.
    await eventRow('evt_queued_pending', pending, { next_attempt_at: new Date(Date.now() + 3_600_000) })
    await eventRow('evt_queued_done', done, { applied_at: new Date() })
    const appliedBefore = t.app.payments.appliedEvents()
    const ids = [
      await queue().add(db(), EVENT_TASK, { event_id: 'evt_queued_pending' }),
      await queue().add(db(), EVENT_TASK, { event_id: 'evt_queued_done' }),
      await queue().add(db(), EVENT_TASK, { event_id: 'evt_never_recorded' }),
    ]
    for (const id of ids) await waitUntil(async () => (await taskState(id!)) === 'completed')
    expect(await appliedAt('evt_queued_pending')).not.toBeNull()
    expect(await payoutsEnabled(pending)).toBe(true)
    // Applied once: the one due; the one applied before is left as it was (its account untouched).
    expect(t.app.payments.appliedEvents() - appliedBefore).toBe(1)
    expect(await payoutsEnabled(done)).toBe(false)
  })
})

describe('an event given up after all its attempts', () => {
  it('is listed among the failed tasks with its last error, and an admin\'s retry (audited) applies it once mended', async () => {
    // A provider account the provider does not know yet: every read fails.
    const accountId = `acct_local${'7'.repeat(20)}`
    await eventRow('evt_given_up', accountId, { attempts: 11 })
    await t.app.payments.applyEvents()
    const row = await db().selectFrom('payment_events').select(['attempts', 'applied_at', 'next_attempt_at', 'last_error']).where('id', '=', 'evt_given_up').executeTakeFirstOrThrow()
    expect(row).toMatchObject({ attempts: 12, applied_at: null, next_attempt_at: null, last_error: `No such account: ${accountId}` })
    // Not tried again by the applier.
    await t.app.payments.applyEvents()
    expect((await db().selectFrom('payment_events').select('attempts').where('id', '=', 'evt_given_up').executeTakeFirstOrThrow()).attempts).toBe(12)
    expect(t.logs.some((line) => line.includes('"level":50') && line.includes('evt_given_up'))).toBe(true)

    const listed = async () => ((await t.app.inject({ url: '/admin/tasks/failed?limit=100', headers: admin.auth })).json().items as { id: string; name: string; data: { event_id: string } }[])
      .filter((task) => task.name === EVENT_TASK && task.data.event_id === 'evt_given_up')
    const [task] = await listed()
    expect(task).toMatchObject({ name: EVENT_TASK, data: { event_id: 'evt_given_up', type: 'account.updated' }, retries: 12, error: `No such account: ${accountId}` })

    // Mended: the account exists at the provider (and in the app) now.
    const user = await newUser(t.app, { roles: ['WORKER'] })
    await db().insertInto('local_accounts').values({ id: accountId, details_submitted: true, payouts_enabled: true, currently_due: JSON.stringify([]) as never, currencies: JSON.stringify(['EUR']) as never }).execute()
    const now = new Date()
    await db().insertInto('payment_accounts').values({ user_id: user.id, provider: 'local', account_id: accountId, details_submitted: false, payouts_enabled: false, currently_due: JSON.stringify([]) as never, currencies: JSON.stringify(['EUR']) as never, created_at: now, updated_at: now }).execute()

    const retried = await t.app.inject({ method: 'POST', url: `/admin/tasks/${task!.id}/retry`, headers: admin.auth })
    expect(retried.statusCode, retried.body).toBe(204)
    const audit = (await t.app.inject({ url: `/admin/audit?action=task.retry&target_id=${task!.id}`, headers: admin.auth })).json().items
    expect(audit).toMatchObject([{ actor_id: admin.id, target_type: 'task', target_id: task!.id, request_id: retried.headers['x-request-id'] }])
    await waitUntil(async () => (await appliedAt('evt_given_up')) !== null)
    expect(await payoutsEnabled(accountId)).toBe(true)
    await waitUntil(async () => (await taskState(task!.id)) === 'completed')
    expect(await listed()).toEqual([])
  })
})
