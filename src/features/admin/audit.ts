import { sql, type Kysely, type Transaction } from 'kysely'
import { v7 as uuidv7 } from 'uuid'
import type { DB, Database } from '../../platform/db/index.js'

// The audit log: what each admin did, to what, when, from where and why. Appended in the
// transaction of the action itself (so an action and its entry commit together or not at all),
// read by admins, never changed: the table refuses UPDATE and DELETE (migration 0023).

declare module '../../platform/db/types.js' {
  interface Database {
    audit_log: {
      id: string
      actor_id: string
      action: string
      target_type: string
      target_id: string | null
      at: Date
      address: string | null
      request_id: string | null
      reason: string | null
      details: unknown
    }
  }
}

/** Who acts and from where: taken from the request by the routes, handed to the services. */
export interface AdminContext {
  actorId: string
  address: string | null
  requestId: string | null
}

export interface AuditEntry {
  action: string
  targetType: 'user' | 'category' | 'report' | 'review' | 'job' | 'task'
  targetId: string | null
  reason?: string | null
  details?: Record<string, unknown>
}

export interface AuditQuery {
  actorId?: string
  action?: string
  targetId?: string
  from?: Date
  to?: Date
  before?: { at: Date; id: string }
  limit: number
}

export function createAuditStore(db: DB) {
  return {
    /** Appends an entry, in the transaction of the action it records. */
    async record(trx: Transaction<Database> | Kysely<Database>, context: AdminContext, entry: AuditEntry, at: Date): Promise<void> {
      await trx
        .insertInto('audit_log')
        .values({
          id: uuidv7(),
          actor_id: context.actorId,
          action: entry.action,
          target_type: entry.targetType,
          target_id: entry.targetId,
          at,
          address: context.address,
          request_id: context.requestId,
          reason: entry.reason ?? null,
          details: JSON.stringify(entry.details ?? {}),
        })
        .execute()
    },

    /** Entries newest first, filtered, from `before` on. */
    async list(query: AuditQuery) {
      let select = db.selectFrom('audit_log').selectAll()
      if (query.actorId) select = select.where('actor_id', '=', query.actorId)
      if (query.action) select = select.where('action', '=', query.action)
      if (query.targetId) select = select.where('target_id', '=', query.targetId)
      if (query.from) select = select.where('at', '>=', query.from)
      if (query.to) select = select.where('at', '<', query.to)
      if (query.before) {
        const { at, id } = query.before
        select = select.where(sql<boolean>`(at, id) < (${at}::timestamptz, ${id}::uuid)`)
      }
      return select.orderBy('at', 'desc').orderBy('id', 'desc').limit(query.limit + 1).execute()
    },
  }
}

export type AuditStore = ReturnType<typeof createAuditStore>
