import type { DB } from '../../platform/db/index.js'
import type { UserRow } from '../accounts/store.js'

const COLUMNS = ['id', 'email', 'first_name', 'last_name', 'roles', 'picture_etag', 'created_at', 'updated_at'] as const

/** The users a search found, in one query; deleted users are left out. */
export function createLocationUsers(db: DB) {
  return {
    async byIds(ids: string[]): Promise<Map<string, UserRow>> {
      if (ids.length === 0) return new Map()
      const rows = await db.selectFrom('users').select(COLUMNS).where('id', 'in', ids).where('deleted_at', 'is', null).execute()
      return new Map(rows.map((row) => [row.id, row]))
    },
  }
}

export type LocationUsers = ReturnType<typeof createLocationUsers>
