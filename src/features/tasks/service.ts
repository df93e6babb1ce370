import { Type } from 'typebox'
import { ForbiddenError, NotFoundError } from '../../errors.js'
import { cursorTime, decodeCursor, pageOf } from '../../http/cursor.js'
import type { Queue } from '../../platform/queue/index.js'
import type { Clock } from '../../platform/clock.js'
import type { DB } from '../../platform/db/index.js'
import type { AdminContext, AuditStore } from '../admin/index.js'
import type { FailedTaskQuery } from './schemas.js'

// Background tasks as an admin sees them: those that kept failing (the dead letters), and putting
// one back in line once what made it fail is mended.

export interface TasksDeps {
  db: DB
  audit: AuditStore
  clock: Clock
  queue: Queue
  /** Read from the database, not a cache: the dead letters hold users' data. */
  isAdmin: (userId: string) => Promise<boolean>
  /** A task's data as admins may see it (a mail's body holds tokens: only its recipient and subject show). */
  shownData?: (name: string, data: unknown) => unknown
}

const Position = Type.Object({ at: Type.String({ format: 'date-time' }), id: Type.String({ format: 'uuid' }) })

export function createTasksService(deps: TasksDeps) {
  const mustBeAdmin = async (actorId: string) => {
    if (!(await deps.isAdmin(actorId))) throw new ForbiddenError('Only admins see background tasks', 'not_an_admin')
  }
  return {
    async listFailed(actorId: string, query: FailedTaskQuery) {
      await mustBeAdmin(actorId)
      const limit = query.limit ?? 20
      const after = decodeCursor(query.cursor, Position)
      const rows = await deps.queue.failed({ limit: limit + 1, before: after && { at: cursorTime(after.at), id: after.id } })
      const page = pageOf(rows, limit, (last) => ({ at: (last.failed_at ?? last.created_at).toISOString(), id: last.id }))
      return {
        items: page.items.map((t) => ({ ...t, data: deps.shownData ? deps.shownData(t.name, t.data) : t.data, created_at: t.created_at.toISOString(), failed_at: t.failed_at?.toISOString() ?? null })),
        next_cursor: page.next_cursor,
      }
    },

    async retry(context: AdminContext, taskId: string) {
      await mustBeAdmin(context.actorId)
      // The retry and its audit entry commit together (the queue's tables are in the same database).
      await deps.db.transaction().execute(async (trx) => {
        if (!(await deps.queue.retry(taskId, trx))) throw new NotFoundError('No failed task with this id', 'task_not_found')
        await deps.audit.record(trx, context, { action: 'task.retry', targetType: 'task', targetId: taskId }, deps.clock.now())
      })
    },
  }
}

export type TasksService = ReturnType<typeof createTasksService>
