import { sql, type Kysely, type Transaction } from 'kysely'
import type { DB, Database } from '../../platform/db/index.js'

declare module '../../platform/db/types.js' {
  interface Database {
    profiles: ProfileRow
    profile_categories: { user_id: string; category_id: string }
    user_ratings: { user_id: string; rating_sum: number; rating_count: number; updated_at: Date }
  }
}

export interface ProfileRow {
  user_id: string
  bio: string
  hourly_rate_amount: number | null
  hourly_rate_currency: string | null
  service_radius_m: number | null
  languages: string[]
  updated_at: Date
}

type Db = Kysely<Database> | Transaction<Database>

/** What a search filters on, kept with a worker's live location. */
export interface Facets {
  categories: string[]
  rating: number | null
  rate: { amount: number; currency: string } | null
  /** When any of it last changed (ms): a card never gives way to an older one. */
  version: number
}

export const averageOf = (sum: number, count: number) => (count > 0 ? Math.round((sum / count) * 100) / 100 : null)

export function createProfilesStore(db: DB) {
  return {
    async get(trx: Db, userId: string): Promise<(ProfileRow & { category_ids: string[] }) | undefined> {
      const row = await trx.selectFrom('profiles').selectAll().where('user_id', '=', userId).executeTakeFirst()
      if (!row) return undefined
      const categories = await trx.selectFrom('profile_categories').select('category_id').where('user_id', '=', userId).orderBy('category_id').execute()
      return { ...row, category_ids: categories.map((c) => c.category_id) }
    },

    /** Holds the user's profile (made empty if it has none) until the transaction ends. */
    async lock(trx: Transaction<Database>, userId: string, at: Date): Promise<void> {
      await trx.insertInto('profiles').values({ user_id: userId, bio: '', languages: [], updated_at: at }).onConflict((oc) => oc.column('user_id').doNothing()).execute()
      await trx.selectFrom('profiles').select('user_id').where('user_id', '=', userId).forUpdate().execute()
    },

    async update(trx: Transaction<Database>, userId: string, changes: Partial<Omit<ProfileRow, 'user_id' | 'updated_at'>>, at: Date): Promise<void> {
      await trx.updateTable('profiles').set({ ...changes, updated_at: at }).where('user_id', '=', userId).execute()
    },

    async setCategories(trx: Transaction<Database>, userId: string, ids: readonly string[]): Promise<void> {
      await trx.deleteFrom('profile_categories').where('user_id', '=', userId).execute()
      if (ids.length > 0) await trx.insertInto('profile_categories').values(ids.map((id) => ({ user_id: userId, category_id: id }))).execute()
    },

    async rating(userId: string): Promise<{ average: number | null; count: number }> {
      const row = await db.selectFrom('user_ratings').select(['rating_sum', 'rating_count']).where('user_id', '=', userId).executeTakeFirst()
      return { average: averageOf(row?.rating_sum ?? 0, row?.rating_count ?? 0), count: row?.rating_count ?? 0 }
    },

    async jobsDone(userId: string): Promise<number> {
      const row = await db.selectFrom('jobs').select(sql<string>`count(*)`.as('n')).where('worker_id', '=', userId).where('status', '=', 'PAID').executeTakeFirstOrThrow()
      return Number(row.n)
    },

    /** The facets of these users (those with no profile and no rating have empty ones). */
    async facets(userIds: readonly string[]): Promise<Map<string, Facets>> {
      if (userIds.length === 0) return new Map()
      const rows = await db
        .selectFrom('users as u')
        .leftJoin('profiles as p', 'p.user_id', 'u.id')
        .leftJoin('user_ratings as r', 'r.user_id', 'u.id')
        .select([
          'u.id',
          'p.hourly_rate_amount',
          'p.hourly_rate_currency',
          'r.rating_sum',
          'r.rating_count',
          sql<string[]>`coalesce((SELECT array_agg(category_id::text) FROM profile_categories pc WHERE pc.user_id = u.id), '{}')`.as('categories'),
          sql<Date>`greatest(p.updated_at, r.updated_at, 'epoch'::timestamptz)`.as('version'),
        ])
        .where('u.id', 'in', userIds)
        .execute()
      return new Map(
        rows.map((r) => [
          r.id,
          {
            categories: r.categories,
            rating: averageOf(r.rating_sum ?? 0, r.rating_count ?? 0),
            rate: r.hourly_rate_amount !== null && r.hourly_rate_currency !== null ? { amount: r.hourly_rate_amount, currency: r.hourly_rate_currency } : null,
            version: new Date(r.version).getTime(),
          },
        ]),
      )
    },
  }
}

export type ProfilesStore = ReturnType<typeof createProfilesStore>

/** A user others may see: not deleted, not suspended. */
export async function visibleUser(db: Db, id: string) {
  return db
    .selectFrom('users')
    .select(['id', 'email', 'first_name', 'last_name', 'roles', 'picture_etag', 'created_at', 'updated_at'])
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .where(sql<boolean>`suspended_at IS NULL`)
    .executeTakeFirst()
}
