import { sql, type Kysely, type Transaction } from 'kysely'
import type { DB, Database } from '../../platform/db/index.js'

declare module '../../platform/db/types.js' {
  interface Database {
    categories: CategoryRow
  }
}

export interface CategoryRow {
  id: string
  parent_id: string | null
  name: string
  position: number
  retired_at: Date | null
  created_at: Date
  updated_at: Date
}

export class CategoryNameTakenError extends Error {}
const isUniqueViolation = (error: unknown) => (error as { code?: string } | null)?.code === '23505'

type Db = Kysely<Database> | Transaction<Database>

export function createCategoriesStore(db: DB) {
  return {
    async all(): Promise<CategoryRow[]> {
      return db.selectFrom('categories').selectAll().orderBy(sql`parent_id NULLS FIRST`).orderBy('position').orderBy('name').execute()
    },

    async byIds(trx: Db, ids: readonly string[]): Promise<CategoryRow[]> {
      if (ids.length === 0) return []
      return trx.selectFrom('categories').selectAll().where('id', 'in', ids).execute()
    },

    /** Holds the row until the transaction ends: moves and renames of one category queue up. */
    async lock(trx: Db, id: string): Promise<CategoryRow | undefined> {
      return trx.selectFrom('categories').selectAll().where('id', '=', id).forUpdate().executeTakeFirst()
    },

    async hasChildren(trx: Db, id: string): Promise<boolean> {
      return (await trx.selectFrom('categories').select('id').where('parent_id', '=', id).where('retired_at', 'is', null).limit(1).executeTakeFirst()) !== undefined
    },

    async nextPosition(trx: Db, parentId: string | null): Promise<number> {
      const row = await trx
        .selectFrom('categories')
        .select(sql<number>`coalesce(max(position) + 1, 0)`.as('next'))
        .where(parentId === null ? sql<boolean>`parent_id IS NULL` : sql<boolean>`parent_id = ${parentId}::uuid`)
        .executeTakeFirstOrThrow()
      return Number(row.next)
    },

    async insert(trx: Db, row: CategoryRow): Promise<CategoryRow> {
      try {
        return await trx.insertInto('categories').values(row).returningAll().executeTakeFirstOrThrow()
      } catch (error) {
        if (isUniqueViolation(error)) throw new CategoryNameTakenError()
        throw error
      }
    },

    async update(trx: Db, id: string, changes: Partial<Pick<CategoryRow, 'name' | 'parent_id' | 'position'>>, at: Date): Promise<CategoryRow> {
      try {
        return await trx.updateTable('categories').set({ ...changes, updated_at: at }).where('id', '=', id).returningAll().executeTakeFirstOrThrow()
      } catch (error) {
        if (isUniqueViolation(error)) throw new CategoryNameTakenError()
        throw error
      }
    },

    /** Retires the category and its subcategories (those offered still). */
    async retire(trx: Db, id: string, at: Date): Promise<CategoryRow[]> {
      return trx
        .updateTable('categories')
        .set({ retired_at: at, updated_at: at })
        .where((eb) => eb.or([eb('id', '=', id), eb('parent_id', '=', id)]))
        .where('retired_at', 'is', null)
        .returningAll()
        .execute()
    },
  }
}

export type CategoriesStore = ReturnType<typeof createCategoriesStore>
