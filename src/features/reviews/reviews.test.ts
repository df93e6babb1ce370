import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, problem, startTestApp, type Inject, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { newAdmin, newWorker, offerJob, paidJob } from '../../../test/support/trust.js'
import { manualClock } from '../../platform/clock.js'

const DAY = 24 * 3600 * 1000
const clock = manualClock(new Date())
let t: TestApp
let admin: SignedIn

beforeAll(async () => {
  t = await startTestApp({ JOB_SWEEP_INTERVAL: '0' }, { clock })
  admin = await newAdmin(t.app)
}, 240_000)
afterAll(async () => t.close())

const inject = (options: Inject) => t.app.inject(options)
const review = (user: SignedIn, jobId: string, body: Record<string, unknown>) => inject({ method: 'POST', url: `/job/${jobId}/review`, headers: user.auth, payload: body })
const reviewsOf = async (userId: string, query = '') => {
  const res = await inject({ url: `/users/${userId}/reviews${query}` })
  expect(res.statusCode, res.body).toBe(200)
  return res.json()
}
const ratingOf = async (userId: string) => (await inject({ url: `/users/${userId}` })).json().rating

async function paid() {
  const client = await newUser(t.app, { roles: ['CLIENT'], first_name: 'Carla' })
  const worker = await newWorker(t.app)
  return { client, worker, jobId: await paidJob(t.app, client, worker) }
}

describe('reviews', () => {
  it('are blind until both sides wrote, then both are published with the ratings', async () => {
    const { client, worker, jobId } = await paid()
    const first = await review(client, jobId, { rating: 4, text: 'Good work' })
    expect(first.statusCode, first.body).toBe(201)
    expect(first.json()).toMatchObject({ job_id: jobId, status: 'submitted' })
    expect(first.body).not.toContain('Good work')
    // Visible to nobody, its author included.
    expect((await reviewsOf(worker.id)).items).toEqual([])
    expect((await reviewsOf(client.id)).items).toEqual([])
    expect(await ratingOf(worker.id)).toEqual({ average: null, count: 0 })

    const second = await review(worker, jobId, { rating: 5, text: 'Kind client' })
    expect(second.json().status).toBe('published')
    const ofWorker = await reviewsOf(worker.id)
    expect(ofWorker.items).toEqual([expect.objectContaining({ job_id: jobId, rating: 4, text: 'Good work', subject_id: worker.id, author: expect.objectContaining({ id: client.id }), reply: null })])
    expect(ofWorker.items[0].author.email).toBeUndefined()
    expect((await reviewsOf(client.id)).items.map((r: { text: string }) => r.text)).toEqual(['Kind client'])
    expect(await ratingOf(worker.id)).toEqual({ average: 4, count: 1 })
    expect(await ratingOf(client.id)).toEqual({ average: 5, count: 1 })
    expect((await inject({ url: `/users/${worker.id}` })).json().jobs_done).toBe(1)
  })

  it('tells the reviewed user when a review of them is published: a system message, and a notification of the `review` kind', async () => {
    const { client, worker, jobId } = await paid()
    const inboxOf = async (user: SignedIn) => (await inject({ url: '/inbox?limit=5', headers: user.auth })).json().items as { kind: string; job_id: string; text: string; sender: { id: string } | null }[]
    expect((await review(client, jobId, { rating: 4, text: 'Good work' })).statusCode).toBe(201)
    // Blind: nothing is said of a review before it is published.
    expect((await inboxOf(worker)).some((m) => m.text.includes('reviewed you'))).toBe(false)
    expect((await review(worker, jobId, { rating: 5, text: 'Kind client' })).json().status).toBe('published')
    const [toWorker] = await inboxOf(worker)
    expect(toWorker).toMatchObject({ kind: 'system', job_id: jobId, sender: expect.objectContaining({ id: client.id }) })
    expect(toWorker!.text).toContain('reviewed you for "Fix the tap": 4 out of 5, "Good work"')
    const [toClient] = await inboxOf(client)
    expect(toClient!.text).toContain('5 out of 5, "Kind client"')
    // The relay makes a notification of each, of the `review` kind.
    await t.app.notifications.runDueWork()
    const { rows } = await sql<{ user_id: string; event: string; title: string }>`SELECT user_id, event, title FROM notifications WHERE job_id = ${jobId} AND event = 'review' ORDER BY user_id`.execute(t.app.platform.database.db)
    expect(rows.map((r) => r.user_id).sort()).toEqual([client.id, worker.id].sort())
    expect(rows.find((r) => r.user_id === worker.id)?.title).toMatch(/reviewed you$/)
  })

  it('one review a side, only by the job\'s sides, only once PAID, only within 14 days', async () => {
    const { client, worker, jobId } = await paid()
    expect((await review(client, jobId, { rating: 3 })).statusCode).toBe(201)
    expect(problem(await review(client, jobId, { rating: 5 }), 409).code).toBe('review_exists')
    const stranger = await newUser(t.app)
    expect(problem(await review(stranger, jobId, { rating: 1 }), 404).code).toBe('job_not_found')
    expect(problem(await review(client, jobId, { rating: 6 }), 400).code).toBe('invalid_input')
    expect(problem(await review(worker, jobId, { rating: 0 }), 400).code).toBe('invalid_input')
    expect(problem(await review(worker, jobId, { rating: 5, text: 'x'.repeat(2001) }), 400).code).toBe('invalid_input')

    const open = await offerJob(t.app, client, worker)
    expect(problem(await review(client, open.id, { rating: 5 }), 409).code).toBe('review_not_allowed')

    const late = await paid()
    clock.advance(14 * DAY + 1000)
    expect(problem(await review(late.client, late.jobId, { rating: 5 }), 409).code).toBe('review_window_closed')
  })

  it('a lone review is published when the 14 days end', async () => {
    const { client, worker, jobId } = await paid()
    expect((await review(worker, jobId, { rating: 2, text: 'Paid late' })).json().status).toBe('submitted')
    clock.advance(13 * DAY)
    await t.app.reviews.publishDue()
    expect((await reviewsOf(client.id)).items).toEqual([])
    clock.advance(DAY + 1000)
    expect(await t.app.reviews.publishDue()).toBeGreaterThanOrEqual(1)
    expect((await reviewsOf(client.id)).items.map((r: { text: string }) => r.text)).toEqual(['Paid late'])
    expect(await ratingOf(client.id)).toEqual({ average: 2, count: 1 })
    // The other side's window closed with it.
    expect(problem(await review(client, jobId, { rating: 5 }), 409).code).toBe('review_window_closed')
  })

  it('the rating stays right under many publications at once', async () => {
    const worker = await newWorker(t.app, 'Busy')
    const clients = await Promise.all(Array.from({ length: 8 }, () => newUser(t.app, { roles: ['CLIENT'] })))
    const jobs: { client: SignedIn; jobId: string }[] = []
    for (const client of clients) jobs.push({ client, jobId: await paidJob(t.app, client, worker) })
    const ratings = [5, 4, 3, 5, 1, 2, 5, 4]
    // The clients first, then all the worker's reviews at once: each publishes a pair.
    await Promise.all(jobs.map(({ client, jobId }, i) => review(client, jobId, { rating: ratings[i] })))
    const answers = await Promise.all(jobs.map(({ jobId }) => review(worker, jobId, { rating: 5 })))
    expect(answers.map((a) => a.statusCode)).toEqual(jobs.map(() => 201))
    const sum = ratings.reduce((a, b) => a + b, 0)
    expect(await ratingOf(worker.id)).toEqual({ average: Math.round((sum / 8) * 100) / 100, count: 8 })
    // Pages, newest first, with cursors.
    const page1 = await reviewsOf(worker.id, '?limit=5')
    expect(page1.items).toHaveLength(5)
    const page2 = await reviewsOf(worker.id, `?limit=5&cursor=${encodeURIComponent(page1.next_cursor)}`)
    expect(page2.items).toHaveLength(3)
    expect(page2.next_cursor).toBeNull()
    const all = [...page1.items, ...page2.items]
    expect(new Set(all.map((r: { id: string }) => r.id)).size).toBe(8)
    const times = all.map((r: { published_at: string }) => r.published_at)
    expect([...times].sort().reverse()).toEqual(times)
    expect(problem(await inject({ url: `/users/${worker.id}/reviews?cursor=garbage` }), 400).code).toBe('invalid_cursor')
  })

  it('the reviewed user answers once; reports reach the admins, who hide with a reason, and the average forgets it', async () => {
    const { client, worker, jobId } = await paid()
    await review(client, jobId, { rating: 1, text: 'Rude!' })
    await review(worker, jobId, { rating: 5 })
    const [published] = (await reviewsOf(worker.id)).items
    expect(problem(await inject({ method: 'POST', url: `/reviews/${published.id}/reply`, headers: client.auth, payload: { text: 'Me again' } }), 403).code).toBe('not_your_review')
    const answered = await inject({ method: 'POST', url: `/reviews/${published.id}/reply`, headers: worker.auth, payload: { text: 'Sorry you felt so' } })
    expect(answered.statusCode, answered.body).toBe(200)
    expect(answered.json().reply).toMatchObject({ text: 'Sorry you felt so' })
    expect(problem(await inject({ method: 'POST', url: `/reviews/${published.id}/reply`, headers: worker.auth, payload: { text: 'Again' } }), 409).code).toBe('reply_exists')
    expect((await reviewsOf(worker.id)).items[0].reply.text).toBe('Sorry you felt so')

    const reported = await inject({ method: 'POST', url: '/reports', headers: worker.auth, payload: { review_id: published.id, reason: 'Not true' } })
    expect(reported.statusCode, reported.body).toBe(201)
    expect(reported.json()).toMatchObject({ review_id: published.id, user_id: client.id })
    const reports = await inject({ url: '/admin/reports', headers: admin.auth })
    const report = reports.json().items.find((r: { id: string }) => r.id === reported.json().id)
    expect(report).toMatchObject({ reason: 'Not true', review: { id: published.id, rating: 1, text: 'Rude!', hidden: false }, user: { id: client.id } })

    expect(await ratingOf(worker.id)).toEqual({ average: 1, count: 1 })
    const hide = await inject({ method: 'POST', url: `/admin/reports/${report.id}/resolve`, headers: admin.auth, payload: { action: 'hide', reason: 'Abusive' } })
    expect(hide.statusCode, hide.body).toBe(204)
    expect((await reviewsOf(worker.id)).items).toEqual([])
    expect(await ratingOf(worker.id)).toEqual({ average: null, count: 0 })
    expect(problem(await inject({ method: 'POST', url: `/admin/reports/${report.id}/resolve`, headers: admin.auth, payload: { action: 'dismiss', reason: 'x' } }), 409).code).toBe('report_resolved')
    const audit = (await inject({ url: `/admin/audit?target_id=${published.id}`, headers: admin.auth })).json().items
    expect(audit).toEqual([expect.objectContaining({ action: 'review.hide', reason: 'Abusive', actor_id: admin.id })])
    // Hidden reviews can't be reported or answered any more.
    expect(problem(await inject({ method: 'POST', url: '/reports', headers: worker.auth, payload: { review_id: published.id, reason: 'again' } }), 404).code).toBe('review_not_found')
  })
})
