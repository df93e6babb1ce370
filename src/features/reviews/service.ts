import { Type } from 'typebox'
import { v5 as uuidv5, v7 as uuidv7 } from 'uuid'
import { ConflictError, ForbiddenError, NotFoundError } from '../../errors.js'
import { cursorTime, decodeCursor, pageOf } from '../../http/cursor.js'
import type { Clock } from '../../platform/clock.js'
import type { DB } from '../../platform/db/index.js'
import type { Queue, StopHandling } from '../../platform/queue/index.js'
import type { AccountsService } from '../accounts/index.js'
import type { AdminContext, AuditStore } from '../admin/index.js'
import type { MessageRow, NewMessage } from '../messaging/index.js'
import type { ReviewInput, ReviewView } from './schemas.js'
import { createReviewsStore, ReviewExistsError, type ReviewRow } from './store.js'

/** How long after a job is PAID its two sides may review each other; then what was written is published. */
export const REVIEW_WINDOW_MS = 14 * 24 * 3600 * 1000
/** The task that publishes a job's reviews when its window closes (one a job). */
export const PUBLISH_TASK = 'reviews.publish'
const TASK_IDS = '8c0e6a52-4d7b-4f0a-9d2e-3b1c5a7e9f20'
const DUE_BATCH = 500

const Position = Type.Object({ at: Type.String({ format: 'date-time' }), id: Type.String({ format: 'uuid' }) })

const jobNotFound = () => new NotFoundError('No such job among the caller\'s', 'job_not_found')
const reviewNotFound = () => new NotFoundError('No such published review', 'review_not_found')

export function createReviewsService(deps: {
  db: DB
  clock: Clock
  queue: Queue
  audit: AuditStore
  summary: AccountsService['summary']
  /** Told after ratings changed (search shows them). */
  ratingsChanged: (userIds: readonly string[]) => Promise<void>
  /**
   * The messaging feature: a published review is told to the reviewed user in a system message
   * (from its author, about the job) stored in the transaction that publishes it, and pushed after.
   */
  messages: { insert(trx: import('kysely').Transaction<import('../../platform/db/index.js').Database>, messages: NewMessage[]): Promise<MessageRow[]>; publish(messages: MessageRow[]): Promise<void> }
  log: { warn(object: object, message: string): void }
}) {
  const store = createReviewsStore(deps.db)
  let stopHandling: StopHandling | undefined

  /** Tells each reviewed user of a review published now (hidden ones say nothing), in the transaction that publishes them. */
  const tellSubjects = async (trx: import('kysely').Transaction<import('../../platform/db/index.js').Database>, published: ReviewRow[], at: Date): Promise<MessageRow[]> => {
    const shown = published.filter((r) => r.hidden_at === null)
    if (shown.length === 0) return []
    const facts = await store.noteFacts(trx, shown)
    return deps.messages.insert(trx, shown.map((r) => ({
      from: r.author_id,
      to: r.subject_id,
      kind: 'system' as const,
      jobId: r.job_id,
      at,
      text: `${facts.authors.get(r.author_id) ?? 'Someone'} reviewed you for "${facts.titles.get(r.job_id) ?? 'a job'}": ${r.rating} out of 5${r.text ? `, "${r.text.length > 200 ? `${r.text.slice(0, 199)}…` : r.text}"` : ''}. It is public now on your profile; you may answer it once.`,
    })))
  }

  const pushNotes = async (messages: MessageRow[]) => {
    if (messages.length > 0) await deps.messages.publish(messages).catch((error: unknown) => deps.log.warn({ err: error }, 'could not push review notes'))
  }

  const afterPublication = async (published: ReviewRow[]) => {
    if (published.length === 0) return
    await deps.ratingsChanged([...new Set(published.map((r) => r.subject_id))]).catch((error: unknown) => deps.log.warn({ err: error }, 'could not show new ratings in search'))
  }

  /** Publishes a job's reviews if its window closed by `now`. */
  const publishIfDue = async (jobId: string, now: Date): Promise<ReviewRow[]> => {
    const { published, notes } = await deps.db.transaction().execute(async (trx) => {
      const job = await store.lockJob(trx, jobId)
      if (!job) return { published: [], notes: [] }
      const pending = (await store.ofJob(trx, jobId)).filter((r) => r.published_at === null)
      if (pending.length === 0 || pending.every((r) => r.publish_by.getTime() > now.getTime())) return { published: [], notes: [] }
      const published = await store.publish(trx, jobId, now)
      return { published, notes: await tellSubjects(trx, published, now) }
    })
    await pushNotes(notes)
    await afterPublication(published)
    return published
  }

  const toView = (row: ReviewRow & { first_name: string; last_name: string; picture_etag: string | null; deleted_at: Date | null }): ReviewView => ({
    id: row.id,
    job_id: row.job_id,
    author: deps.summary(row, row.author_id),
    subject_id: row.subject_id,
    rating: row.rating,
    text: row.text,
    published_at: row.published_at!.toISOString(),
    reply: row.reply_text !== null && row.reply_at !== null ? { text: row.reply_text, at: row.reply_at.toISOString() } : null,
  })

  return {
    async start() {
      stopHandling = await deps.queue.handle<{ job_id: string }>(PUBLISH_TASK, async (task) => {
        await publishIfDue(task.data.job_id, deps.clock.now())
      })
    },
    async close() {
      await stopHandling?.()
    },

    /**
     * A side of a PAID job reviews the other, once, within 14 days. Blind: published when the
     * other side wrote too (both at once, here), or when the window closes (the task added with
     * the first review, and the sweep, publishDue).
     */
    async write(authorId: string, jobId: string, input: ReviewInput) {
      const now = deps.clock.now()
      const { review, published, notes } = await deps.db.transaction().execute(async (trx) => {
        const job = await store.lockJob(trx, jobId)
        if (!job || (job.client_id !== authorId && job.worker_id !== authorId)) throw jobNotFound()
        if (job.status !== 'PAID' || !job.paid_at) throw new ConflictError('Reviews are written once the job is PAID', 'review_not_allowed')
        const publishBy = new Date(job.paid_at.getTime() + REVIEW_WINDOW_MS)
        if (now.getTime() >= publishBy.getTime()) throw new ConflictError('The 14 days to review this job are over', 'review_window_closed')
        const review: ReviewRow = {
          id: uuidv7(),
          job_id: jobId,
          author_id: authorId,
          // A PAID job has its worker (only an open request nobody took has none).
          subject_id: job.client_id === authorId ? job.worker_id! : job.client_id,
          rating: input.rating,
          text: input.text?.trim() ?? '',
          created_at: now,
          publish_by: publishBy,
          published_at: null,
          hidden_at: null,
          hidden_reason: null,
          reply_text: null,
          reply_at: null,
        }
        await store.insert(trx, review).catch((error: unknown) => {
          throw error instanceof ReviewExistsError ? new ConflictError('You reviewed this job already', 'review_exists') : error
        })
        const all = await store.ofJob(trx, jobId)
        if (all.length === 2) {
          const published = await store.publish(trx, jobId, now)
          return { review, published, notes: await tellSubjects(trx, published, now) }
        }
        // The first of the two: published at the window's end unless the other comes first.
        await deps.queue.add(trx, PUBLISH_TASK, { job_id: jobId }, { id: uuidv5(`${PUBLISH_TASK}:${jobId}`, TASK_IDS), runAt: publishBy })
        return { review, published: [] as ReviewRow[], notes: [] as MessageRow[] }
      })
      await pushNotes(notes)
      await afterPublication(published)
      return { id: review.id, job_id: jobId, status: published.length > 0 ? ('published' as const) : ('submitted' as const), created_at: review.created_at.toISOString() }
    },

    /** Publishes every review whose window closed by `now` (what the tasks do, for all at once). */
    async publishDue(now: Date = deps.clock.now()): Promise<number> {
      let count = 0
      for (;;) {
        const jobs = await store.dueJobs(now, DUE_BATCH)
        if (jobs.length === 0) return count
        for (const jobId of jobs) count += (await publishIfDue(jobId, now)).length
      }
    },

    async list(subjectId: string, query: { limit?: number; cursor?: string }) {
      const limit = query.limit ?? 20
      const after = decodeCursor(query.cursor, Position)
      const rows = await store.listOf(subjectId, after && { at: cursorTime(after.at), id: after.id }, limit)
      const page = pageOf(rows, limit, (last) => ({ at: last.published_at!.toISOString(), id: last.id }))
      return { items: page.items.map(toView), next_cursor: page.next_cursor }
    },

    /** The reviewed user answers a published review, once, publicly. */
    async reply(actorId: string, reviewId: string, text: string) {
      const now = deps.clock.now()
      await deps.db.transaction().execute(async (trx) => {
        const review = await store.lock(trx, reviewId)
        if (!review || review.published_at === null || review.hidden_at !== null) throw reviewNotFound()
        if (review.subject_id !== actorId) throw new ForbiddenError('Only the reviewed user answers a review', 'not_your_review')
        if (review.reply_text !== null) throw new ConflictError('The review was answered already', 'reply_exists')
        await store.reply(trx, reviewId, text.trim(), now)
      })
      const [row] = (await store.listOf((await store.byId(reviewId))!.subject_id, undefined, 100)).filter((r) => r.id === reviewId)
      return row ? toView(row) : undefined
    },

    /** A published, visible review (what may be reported): its author, or undefined. */
    async visible(reviewId: string): Promise<ReviewRow | undefined> {
      const review = await store.byId(reviewId)
      return review && review.published_at !== null && review.hidden_at === null ? review : undefined
    },

    /** Hides a review (an admin's act, audited in its transaction); a published one leaves the rating. */
    async hideIn(trx: import('kysely').Transaction<import('../../platform/db/index.js').Database>, context: AdminContext, reviewId: string, reason: string, extra: Record<string, unknown> = {}) {
      const now = deps.clock.now()
      const review = await store.lock(trx, reviewId)
      if (!review) throw new NotFoundError('No such review', 'review_not_found')
      if (review.hidden_at === null) await store.hide(trx, review, reason, now)
      await deps.audit.record(trx, context, { action: 'review.hide', targetType: 'review', targetId: reviewId, reason, details: { subject_id: review.subject_id, ...extra } }, now)
      return review
    },

    async hide(context: AdminContext, reviewId: string, reason: string): Promise<void> {
      const review = await deps.db.transaction().execute((trx) => this.hideIn(trx, context, reviewId, reason))
      await afterPublication([review])
    },

    afterHidden: (review: ReviewRow) => afterPublication([review]),
  }
}

export type ReviewsService = ReturnType<typeof createReviewsService>
