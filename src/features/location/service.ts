import { createHash } from 'node:crypto'
import { Type } from 'typebox'
import { ForbiddenError, UnauthenticatedError } from '../../errors.js'
import { decodeCursor, encodeCursor } from '../../http/cursor.js'
import { EARTH_RADIUS_M } from '../../platform/live/geo.js'
import type { LocationRole, LocationStore } from '../../platform/live/index.js'
import type { Clock } from '../../platform/clock.js'
import type { ShownUser, UserRow, UserView } from '../accounts/index.js'
import type { Auth } from '../sessions/index.js'
import type { PostLocationInput, SearchInput } from './schemas.js'

/** Side of the privacy grid: a location is stored only as the centre of its grid square. */
export const BLUR_GRID_M = 100

const METERS_PER_DEGREE = (EARTH_RADIUS_M * Math.PI) / 180
const LAT_STEP = BLUR_GRID_M / METERS_PER_DEGREE

/**
 * Where a user is shown: the centre of the ~100 m square of a grid holding the real position.
 * Each user's grid is shifted by an offset derived from the user id, so a user standing still
 * always gets the same point (searching from many centres reveals the square, nothing finer),
 * and users in one square of a city don't all collapse on one point.
 */
export function blurPosition(userId: string, lat: number, lon: number): { lat: number; lon: number } {
  const digest = createHash('sha256').update(userId).digest()
  const fy = digest.readUInt32BE(0) / 2 ** 32
  const fx = digest.readUInt32BE(4) / 2 ** 32
  const row = Math.floor(lat / LAT_STEP + fy)
  const blurredLat = Math.max(-90, Math.min(90, (row + 0.5 - fy) * LAT_STEP))
  // Columns as wide as the grid is tall, at this row's latitude (one column at a pole).
  const columns = Math.max(1, Math.floor((360 * Math.cos((blurredLat * Math.PI) / 180) * METERS_PER_DEGREE) / BLUR_GRID_M))
  const lonStep = 360 / columns
  const column = Math.floor((lon + 180) / lonStep + fx)
  let blurredLon = -180 + (column + 0.5 - fx) * lonStep
  if (blurredLon >= 180) blurredLon -= 360
  if (blurredLon < -180) blurredLon += 360
  return { lat: blurredLat, lon: blurredLon }
}

/**
 * What a search shows of a user, kept with its location so that a search answers from the live
 * store alone: the public fields of its view (never the email), as a compact JSON array, since
 * every live location holds one.
 */
export function cardOf(user: Pick<UserRow, 'first_name' | 'last_name' | 'roles' | 'picture_etag' | 'created_at'>): string {
  return JSON.stringify([user.first_name, user.last_name, user.roles, user.picture_etag, user.created_at.toISOString()])
}

function shownFrom(userId: string, card: string): ShownUser {
  const [first_name, last_name, roles, picture_etag, created_at] = JSON.parse(card) as [string, string, UserRow['roles'], string | null, string]
  return { id: userId, email: null, first_name, last_name, roles, picture_etag, created_at }
}

/** Reads of the store a page may take when deleted users leave it short; then it is answered short. */
const SEARCH_ROUNDS = 3

// The position after the last hit of a page: its distance as the store measured it, and its id.
const CursorPosition = Type.Object({ d: Type.Number({ minimum: 0 }), u: Type.String({ format: 'uuid' }) }, { additionalProperties: false })

export function createLocationService(deps: {
  store: LocationStore
  /** Users by id, deleted ones left out (the accounts feature's, cached in the process). */
  users: (ids: readonly string[]) => Promise<Map<string, UserRow>>
  /** The users to leave out of a viewer's results: blocks either way (the blocks feature's). */
  hiddenFrom: (viewerId: string) => Promise<ReadonlySet<string>>
  view: (user: ShownUser, viewer: Pick<UserRow, 'id' | 'roles'>) => UserView
  /** Whether the user is an admin now (read from the accounts, not a cache). */
  isAdmin: (userId: string) => Promise<boolean>
  /** Whether a session still stands (signing out or deleting the account ends it). */
  stillSignedIn: (auth: Auth) => Promise<boolean>
  defaultTtl: number
  clock: Clock
}) {
  const { store } = deps

  const userOf = async (userId: string) => {
    const user = (await deps.users([userId])).get(userId)
    if (!user) throw new UnauthenticatedError()
    return user
  }

  return {
    /** Puts the user on the map (blurred) until the ttl runs out; posting again moves and renews. */
    async post(auth: Auth, input: PostLocationInput): Promise<{ expiresAt: Date }> {
      const { userId } = auth
      // The roles go with the location, so that searches for a role read only its users; the
      // card, so that they show them without reading the accounts.
      const user = await userOf(userId)
      const expiresAt = new Date(deps.clock.now().getTime() + (input.ttl ?? deps.defaultTtl) * 1000)
      const { lat, lon } = blurPosition(userId, input.lat, input.lon)
      await store.set(userId, { lat, lon, roles: user.roles as LocationRole[], expiresAt, card: cardOf(user), version: user.updated_at.getTime() })
      // A sign-out or an account deletion takes the user off the map after ending the session:
      // one that did so while this post was under way must win, so the session is looked at again.
      if (!(await deps.stillSignedIn(auth))) {
        await store.remove(userId)
        throw new UnauthenticatedError()
      }
      return { expiresAt }
    },

    /** The user's account changed: a user on the map shows the change (and its new roles) at once. */
    async refresh(user: UserRow, before?: UserRow): Promise<void> {
      const card = cardOf(user)
      if (before && cardOf(before) === card) return // a new password or email: nothing shown changed
      await store.update(user.id, { roles: user.roles as LocationRole[], card, version: user.updated_at.getTime() })
    },

    /** Takes the user off the map (also on sign-out and account deletion). */
    async remove(userId: string): Promise<void> {
      await store.remove(userId)
    },

    /**
     * Users within the radius, nearest first; never the caller, never someone hidden from the
     * caller. Hits come from the store a page at a time; a hit whose user was deleted meanwhile
     * or lost the role is left out, and the next hits fill the page.
     */
    async search(viewerId: string, query: SearchInput) {
      const limit = query.limit ?? 20
      const after = decodeCursor(query.cursor, CursorPosition)
      // Who asks (from the cache), and whom it must not find: those are left out by the store
      // itself, so that a hidden user is on no page and in no cursor. An admin sees emails: that
      // is confirmed from the accounts, never taken from a cache, and so is seeing the ADMIN role.
      const [viewer, hidden] = await Promise.all([userOf(viewerId), deps.hiddenFrom(viewerId)])
      const isAdmin = viewer.roles.includes('ADMIN') && (await deps.isAdmin(viewerId))
      if (query.role === 'ADMIN' && !isAdmin) throw new ForbiddenError('Only admins may search for the users with the ADMIN role', 'not_an_admin')
      // Unless confirmed an admin, the viewer is shown users as anyone is: no email, no ADMIN role.
      const shownTo = isAdmin ? viewer : { id: viewer.id, roles: [] }
      const exclude = new Set(hidden).add(viewerId)
      let position = after && { distanceM: after.d, userId: after.u }
      const items = []
      let more = true
      for (let round = 0; more && items.length < limit && round < SEARCH_ROUNDS; round++) {
        const wanted = limit - items.length
        const hits = await store.nearby({ lat: query.lat, lon: query.lon, radiusM: query.radius, limit: wanted + 1, role: query.role, after: position, exclude })
        more = hits.length > wanted
        const taken = hits.slice(0, wanted)
        // Hits show their cards; the accounts are read only for hits stored without one, and
        // for an admin.
        const users = await deps.users(taken.filter((h) => isAdmin || h.card === null).map((h) => h.userId))
        for (const hit of taken) {
          position = hit
          const user = isAdmin || hit.card === null ? users.get(hit.userId) : shownFrom(hit.userId, hit.card)
          // Deleted meanwhile, or no longer holding the role: left out, the cursor moves on.
          if (!user || (query.role && !user.roles.includes(query.role))) continue
          items.push({ user: deps.view(user, shownTo), distance_m: Math.round(hit.distanceM) })
        }
      }
      return { items, next_cursor: more && position ? encodeCursor({ d: position.distanceM, u: position.userId }) : null }
    },
  }
}

export type LocationService = ReturnType<typeof createLocationService>
