import type { Expression, ExpressionBuilder, SqlBool } from 'kysely'
import type { DB, Database } from '../../platform/db/index.js'
import type { UserRow } from '../accounts/store.js'

const COLUMNS = ['id', 'email', 'first_name', 'last_name', 'roles', 'picture_etag', 'created_at', 'updated_at'] as const

/** A condition on `users` for the users a viewer may find (blocks are messaging's to say). */
export type VisibleTo = (viewerId: string) => (eb: ExpressionBuilder<Database, 'users'>) => Expression<SqlBool>

/**
 * The users a search found, as the viewer may see them, with the viewer's own row: one query.
 * Deleted users and those `visibleTo` hides are left out.
 */
export function createLocationUsers(db: DB, visibleTo?: VisibleTo) {
  return {
    async seenBy(viewerId: string, ids: string[]): Promise<{ viewer: UserRow | undefined; users: Map<string, UserRow> }> {
      const rows = await db
        .selectFrom('users')
        .select(COLUMNS)
        .where('id', 'in', [viewerId, ...ids])
        .where('deleted_at', 'is', null)
        .$if(visibleTo !== undefined, (q) => q.where((eb) => eb.or([eb('id', '=', viewerId), visibleTo!(viewerId)(eb)])))
        .execute()
      const users = new Map(rows.map((row) => [row.id, row]))
      const viewer = users.get(viewerId)
      users.delete(viewerId)
      return { viewer, users }
    },
  }
}

export type LocationUsers = ReturnType<typeof createLocationUsers>
