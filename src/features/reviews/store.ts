import { sql, type Kysely, type Transaction } from 'kysely'
import type { DB, Database } from '../../platform/db/index.js'

declare module '../../platform/db/types.js' {
  interface Database {
    reviews: ReviewRow
  }
}

export interface ReviewRow {
  id: string
  job_id: string
  author_id: string
  subject_id: string
  rating: number
  text: string
  created_at: Date
  publish_by: Date
  published_at: Date | null
  hidden_at: Date | null
  hidden_reason: string | null
  reply_text: string | null
  reply_at: Date | null
}

type Db = Kysely<Database> | Transaction<Database>

export class ReviewExistsError extends Error {}
const isUniqueViolation = (error: unknown) => (error as { code?: string } | null)?.code === '23505'

/** Adds (or, with -1, takes away) reviews' ratings from their subjects' sums, in a fixed order of users (no deadlocks between publications). */
async function addRatings(trx: Transaction<Database>, reviews: readonly Pick<ReviewRow, 'subject_id' | 'rating'>[], sign: 1 | -1, at: Date) {
  const sorted = [...reviews].sort((a, b) => (a.subject_id < b.subject_id ? -1 : a.subject_id > b.subject_id ? 1 : 0))
  for (const r of sorted) {
    if (sign < 0) {
      // The row exists (the review counted in it); an insert would be checked before its conflict.
      await trx
        .updateTable('user_ratings')
        .set({ rating_sum: sql<number>`rating_sum - ${r.rating}::integer`, rating_count: sql<number>`rating_count - 1`, updated_at: at })
        .where('user_id', '=', r.subject_id)
        .execute()
      continue
    }
    await trx
      .insertInto('user_ratings')
      .values({ user_id: r.subject_id, rating_sum: sign * r.rating, rating_count: sign, updated_at: at })
      .onConflict((oc) =>
        oc.column('user_id').doUpdateSet({
          rating_sum: sql<number>`user_ratings.rating_sum + ${sign * r.rating}::integer`,
          rating_count: sql<number>`user_ratings.rating_count + ${sign}::integer`,
          updated_at: at,
        }),
      )
      .execute()
  }
}

export function createReviewsStore(db: DB) {
  return {
    /** Holds the job until the transaction ends (its two reviews are written and published one at a time), with when it was PAID. */
    async lockJob(trx: Transaction<Database>, jobId: string) {
      const job = await trx.selectFrom('jobs').select(['id', 'client_id', 'worker_id', 'status']).where('id', '=', jobId).forUpdate().executeTakeFirst()
      if (!job) return undefined
      const paid = await trx.selectFrom('job_status_log').select(sql<Date>`max(at)`.as('at')).where('job_id', '=', jobId).where('status', '=', 'PAID').executeTakeFirst()
      return { ...job, paid_at: paid?.at ? new Date(paid.at) : null }
    },

    async insert(trx: Transaction<Database>, row: ReviewRow): Promise<void> {
      try {
        await trx.insertInto('reviews').values(row).execute()
      } catch (error) {
        if (isUniqueViolation(error)) throw new ReviewExistsError()
        throw error
      }
    },

    /** What the notes of published reviews name: their authors' names and their jobs' titles. */
    async noteFacts(trx: Db, reviews: ReviewRow[]): Promise<{ authors: Map<string, string>; titles: Map<string, string> }> {
      const users = await trx.selectFrom('users').select(['id', 'first_name', 'last_name']).where('id', 'in', reviews.map((r) => r.author_id)).execute()
      const jobs = await trx.selectFrom('jobs').select(['id', 'title']).where('id', 'in', reviews.map((r) => r.job_id)).execute()
      return { authors: new Map(users.map((u) => [u.id, `${u.first_name} ${u.last_name}`.trim()])), titles: new Map(jobs.map((j) => [j.id, j.title])) }
    },

    async ofJob(trx: Db, jobId: string): Promise<ReviewRow[]> {
      return trx.selectFrom('reviews').selectAll().where('job_id', '=', jobId).execute()
    },

    /**
     * Publishes the job's unpublished reviews, and adds the visible ones to their subjects'
     * ratings, in the caller's transaction: answers those published now.
     */
    async publish(trx: Transaction<Database>, jobId: string, at: Date): Promise<ReviewRow[]> {
      const published = await trx.updateTable('reviews').set({ published_at: at }).where('job_id', '=', jobId).where('published_at', 'is', null).returningAll().execute()
      await addRatings(trx, published.filter((r) => r.hidden_at === null), 1, at)
      return published
    },

    /** Jobs with a review whose window closed by `now` and which is not published yet. */
    async dueJobs(now: Date, limit: number): Promise<string[]> {
      const rows = await db.selectFrom('reviews').select('job_id').distinct().where('published_at', 'is', null).where('publish_by', '<=', now).limit(limit).execute()
      return rows.map((r) => r.job_id)
    },

    /** Published, visible reviews of a user, newest first, after `before`. */
    async listOf(subjectId: string, before: { at: Date; id: string } | undefined, limit: number) {
      let select = db
        .selectFrom('reviews as r')
        .innerJoin('users as a', 'a.id', 'r.author_id')
        .selectAll('r')
        .select(['a.first_name', 'a.last_name', 'a.picture_etag', 'a.deleted_at'])
        .where('r.subject_id', '=', subjectId)
        .where('r.published_at', 'is not', null)
        .where('r.hidden_at', 'is', null)
      if (before) select = select.where(sql<boolean>`(r.published_at, r.id) < (${before.at}::timestamptz, ${before.id}::uuid)`)
      return select.orderBy('r.published_at', 'desc').orderBy('r.id', 'desc').limit(limit + 1).execute()
    },

    async lock(trx: Transaction<Database>, id: string): Promise<ReviewRow | undefined> {
      return trx.selectFrom('reviews').selectAll().where('id', '=', id).forUpdate().executeTakeFirst()
    },

    async byId(id: string): Promise<ReviewRow | undefined> {
      return db.selectFrom('reviews').selectAll().where('id', '=', id).executeTakeFirst()
    },

    async reply(trx: Transaction<Database>, id: string, text: string, at: Date): Promise<ReviewRow> {
      return trx.updateTable('reviews').set({ reply_text: text, reply_at: at }).where('id', '=', id).returningAll().executeTakeFirstOrThrow()
    },

    /** Hides a review; a published one leaves its subject's rating in the same transaction. */
    async hide(trx: Transaction<Database>, review: ReviewRow, reason: string, at: Date): Promise<void> {
      await trx.updateTable('reviews').set({ hidden_at: at, hidden_reason: reason }).where('id', '=', review.id).execute()
      if (review.published_at !== null) await addRatings(trx, [review], -1, at)
    },
  }
}

export type ReviewsStore = ReturnType<typeof createReviewsStore>
