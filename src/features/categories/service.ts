import { createHash } from 'node:crypto'
import { v7 as uuidv7 } from 'uuid'
import { ConflictError, InvalidInputError, NotFoundError } from '../../errors.js'
import type { Clock } from '../../platform/clock.js'
import type { Database, DB } from '../../platform/db/index.js'
import type { Kysely, Transaction } from 'kysely'
import type { EventBus } from '../../platform/live/index.js'
import { createSharedCache } from '../../platform/live/shared-cache.js'
import type { AdminContext, AuditStore } from '../admin/index.js'
import type { CategoryView, CreateCategoryInput, UpdateCategoryInput } from './schemas.js'
import { CategoryNameTakenError, createCategoriesStore, type CategoryRow } from './store.js'

type Db = Kysely<Database> | Transaction<Database>

/** The tree as GET /categories answers it, with its ETag. */
interface Published {
  rows: CategoryRow[]
  byId: Map<string, CategoryRow>
  body: { items: { id: string; name: string; position: number; children: { id: string; name: string; position: number }[] }[] }
  etag: string
}

const TREE_KEY = 'tree'
/** Every change drops the tree in every process at once; this bounds it should an event be lost. */
const TREE_TTL_MS = 60_000

const nameTaken = () => new ConflictError('Another offered category under the same parent has this name', 'category_name_taken')
const notFound = () => new NotFoundError('No such category', 'category_not_found')

export function toCategoryView(row: CategoryRow): CategoryView {
  return {
    id: row.id,
    parent_id: row.parent_id,
    name: row.name,
    position: row.position,
    retired_at: row.retired_at?.toISOString() ?? null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  }
}

function publish(rows: CategoryRow[]): Published {
  const offered = rows.filter((r) => r.retired_at === null)
  const order = (a: CategoryRow, b: CategoryRow) => a.position - b.position || a.name.localeCompare(b.name) || (a.id < b.id ? -1 : 1)
  const tops = offered.filter((r) => r.parent_id === null).sort(order)
  const body = {
    items: tops.map((top) => ({
      id: top.id,
      name: top.name,
      position: top.position,
      children: offered.filter((r) => r.parent_id === top.id).sort(order).map((c) => ({ id: c.id, name: c.name, position: c.position })),
    })),
  }
  const etag = `"${createHash('sha256').update(JSON.stringify(body)).digest('base64url').slice(0, 22)}"`
  return { rows, byId: new Map(rows.map((r) => [r.id, r])), body, etag }
}

export function createCategoriesService(deps: { db: DB; events: EventBus; audit: AuditStore; clock: Clock }) {
  const store = createCategoriesStore(deps.db)
  const cache = createSharedCache<Published>({ events: deps.events, name: 'categories', max: 1, ttlMs: TREE_TTL_MS })
  const current = async (): Promise<Published> => (await cache.get(TREE_KEY, async () => publish(await store.all())))!

  /** A parent must be an offered top-level category (read in `trx` when given: one connection may be all there is). */
  const checkParent = async (parentId: string | null, child?: CategoryRow, trx: Db = deps.db) => {
    if (parentId === null) return
    const [parent] = await store.byIds(trx, [parentId])
    if (!parent) throw new InvalidInputError('No such parent category', [{ field: 'body/parent_id', message: 'is not a category' }], 'category_not_found')
    if (parent.retired_at) throw new ConflictError('The parent category is retired', 'category_retired')
    if (parent.parent_id !== null || parent.id === child?.id) throw new ConflictError('A parent must be a top-level category', 'category_depth')
  }

  const changed = () => cache.changed([TREE_KEY])

  return {
    async start() {
      await cache.start()
    },
    async close() {
      await cache.close()
    },

    /** The offered tree and its ETag (from this process's cache). */
    tree: async () => {
      const { body, etag } = await current()
      return { body, etag }
    },

    async all(): Promise<CategoryView[]> {
      return (await store.all()).map(toCategoryView)
    },

    /** The category and its subcategories' ids (what a search for it takes in); unknown ids answer none. */
    async withDescendants(id: string): Promise<Set<string>> {
      const { rows } = await current()
      return new Set(rows.filter((r) => r.id === id || r.parent_id === id).map((r) => r.id))
    },

    /** A category, its subcategories and its parent: what a job in it reaches among alerts, which take in their subcategories. */
    async withRelatives(id: string): Promise<Set<string>> {
      const { rows } = await current()
      const parentId = rows.find((r) => r.id === id)?.parent_id ?? null
      return new Set(rows.filter((r) => r.id === id || r.parent_id === id || r.id === parentId).map((r) => r.id))
    },

    /**
     * Checks categories a new job or profile names: each exists (400 otherwise) and is offered
     * (409 `category_retired`), except those in `kept` (what the profile holds already).
     */
    async checkOffered(ids: readonly string[], field: string, kept: ReadonlySet<string> = new Set(), trx: Db = deps.db): Promise<void> {
      const rows = await store.byIds(trx, [...new Set(ids)])
      const found = new Map(rows.map((r) => [r.id, r]))
      for (const id of ids) {
        const row = found.get(id)
        if (!row) throw new InvalidInputError('No such category', [{ field, message: `${id} is not a category` }], 'category_not_found')
        if (row.retired_at && !kept.has(id)) throw new ConflictError(`The category "${row.name}" is retired and takes no new jobs or profiles`, 'category_retired')
      }
    },

    /** Categories by id, retired ones too, as stored (for showing them on jobs and profiles). */
    async byIds(ids: readonly string[]): Promise<Map<string, CategoryRow>> {
      const { byId } = await current()
      const missing = ids.filter((id) => !byId.has(id))
      const found = new Map(ids.flatMap((id) => (byId.has(id) ? [[id, byId.get(id)!] as const] : [])))
      if (missing.length > 0) for (const row of await store.byIds(deps.db, missing)) found.set(row.id, row)
      return found
    },

    async create(context: AdminContext, input: CreateCategoryInput): Promise<CategoryView> {
      const parentId = input.parent_id ?? null
      await checkParent(parentId)
      const now = deps.clock.now()
      const row = await deps.db.transaction().execute(async (trx) => {
        const created = await store.insert(trx, {
          id: uuidv7(),
          parent_id: parentId,
          name: input.name.trim(),
          position: input.position ?? (await store.nextPosition(trx, parentId)),
          retired_at: null,
          created_at: now,
          updated_at: now,
        }).catch((error: unknown) => {
          throw error instanceof CategoryNameTakenError ? nameTaken() : error
        })
        await deps.audit.record(trx, context, { action: 'category.create', targetType: 'category', targetId: created.id, details: { name: created.name, parent_id: parentId } }, now)
        return created
      })
      await changed()
      return toCategoryView(row)
    },

    /** Renames, moves or reorders a category. */
    async update(context: AdminContext, id: string, input: UpdateCategoryInput): Promise<CategoryView> {
      const now = deps.clock.now()
      const row = await deps.db.transaction().execute(async (trx) => {
        const category = await store.lock(trx, id)
        if (!category) throw notFound()
        if (category.retired_at) throw new ConflictError('A retired category does not change', 'category_retired')
        const changes: Partial<Pick<CategoryRow, 'name' | 'parent_id' | 'position'>> = {}
        if (input.name !== undefined) changes.name = input.name.trim()
        if (input.position !== undefined) changes.position = input.position
        if (input.parent_id !== undefined && input.parent_id !== category.parent_id) {
          await checkParent(input.parent_id, category, trx)
          if (input.parent_id !== null && (await store.hasChildren(trx, id))) throw new ConflictError('A category with subcategories stays top-level', 'category_depth')
          changes.parent_id = input.parent_id
        }
        const updated = await store.update(trx, id, changes, now).catch((error: unknown) => {
          throw error instanceof CategoryNameTakenError ? nameTaken() : error
        })
        await deps.audit.record(trx, context, {
          action: 'category.update',
          targetType: 'category',
          targetId: id,
          reason: input.reason ?? null,
          details: { before: { name: category.name, parent_id: category.parent_id, position: category.position }, after: changes },
        }, now)
        return updated
      })
      await changed()
      return toCategoryView(row)
    },

    /** Retires a category and its subcategories: no longer offered, kept where used. */
    async retire(context: AdminContext, id: string, reason: string | undefined): Promise<CategoryView> {
      const now = deps.clock.now()
      const row = await deps.db.transaction().execute(async (trx) => {
        const category = await store.lock(trx, id)
        if (!category) throw notFound()
        if (category.retired_at) return category
        const retired = await store.retire(trx, id, now)
        await deps.audit.record(trx, context, { action: 'category.retire', targetType: 'category', targetId: id, reason: reason ?? null, details: { retired: retired.map((r) => r.id) } }, now)
        return retired.find((r) => r.id === id)!
      })
      await changed()
      return toCategoryView(row)
    },
  }
}

export type CategoriesService = ReturnType<typeof createCategoriesService>
