import type { UserSummaryView, UserView } from './schemas.js'
import type { UserRow } from './store.js'
import type { ShownUser, SummarizedUser } from './types.js'

// Users as answered: to themselves and admins, to anyone else, and as the summary a message,
// thread or block shows of the other user.

export function createUserViews(publicUrl: string | undefined) {
  const isAdmin = (user: Pick<UserRow, 'roles'>) => user.roles.includes('ADMIN')

  /** Where the user's picture is served; its version in the query, so that caches renew on change. */
  const pictureUrl = (user: Pick<UserRow, 'id' | 'picture_etag'>): string | null =>
    user.picture_etag ? `${publicUrl ?? ''}/users/${user.id}/picture?v=${user.picture_etag}` : null

  /**
   * The user as others see it; the email, and the ADMIN role, only to the user and to admins
   * (who the admins are is not for everyone to learn).
   */
  const view = (user: ShownUser, viewer: Pick<UserRow, 'id' | 'roles'> | undefined): UserView => {
    const privileged = viewer !== undefined && (viewer.id === user.id || isAdmin(viewer))
    const shown: UserView = {
      id: user.id,
      first_name: user.first_name,
      last_name: user.last_name,
      roles: privileged ? user.roles : user.roles.filter((role) => role !== 'ADMIN'),
      picture_url: pictureUrl(user),
      created_at: typeof user.created_at === 'string' ? user.created_at : user.created_at.toISOString(),
    }
    if (privileged && user.email) {
      shown.email = user.email
      if ('email_confirmed_at' in user) shown.email_confirmed = user.email_confirmed_at !== null
    }
    return shown
  }

  /** Who a message, thread or block is with, as any user may see it; a deleted account shows as deleted. */
  const summary = (user: SummarizedUser | undefined, id: string): UserSummaryView => {
    if (!user || user.deleted_at) return { id, first_name: '', last_name: '', picture_url: null, deleted: true }
    return { id, first_name: user.first_name, last_name: user.last_name, picture_url: pictureUrl(user), deleted: false }
  }

  return { isAdmin, pictureUrl, view, summary }
}
