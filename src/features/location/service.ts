import { computeDestinationPoint } from 'geolib'
import { randomInt } from 'node:crypto'
import { Type } from 'typebox'
import { ForbiddenError, UnauthenticatedError } from '../../errors.js'
import { decodeCursor, encodeCursor } from '../../http/cursor.js'
import { EARTH_RADIUS_M, haversineM } from '../../platform/live/geo.js'
import type { GeoPoint, LocationRole, LocationStore } from '../../platform/live/index.js'
import type { Clock } from '../../platform/clock.js'
import type { ShownUser, UserRow, UserView } from '../accounts/index.js'
import type { Auth } from '../sessions/index.js'
import type { PostLocationInput, SearchInput } from './schemas.js'

/**
 * How far from where a user is its public point is drawn: between these, uniformly over the
 * ring's area, in a random direction. Searches measure from that point only.
 */
const BLUR_MIN_M = 100
const BLUR_MAX_M = 200
/**
 * A post within this distance of a point the user was shown at lately is shown there again: a
 * user who stays (its GPS jitters by tens of meters) keeps its point however often it posts, so
 * answers gathered over many posts, from any number of places, average to that point, never to
 * the user's. The blur's 200 m and 100 m of jitter or of walking about.
 */
const ANCHOR_KEEP_M = 300
/**
 * The public points a user keeps (its anchors), most recently used first, for this long after
 * its last post however its location ends meanwhile: a user who goes and comes back (home and
 * work, a sign-out at night) gets its point for the place back, rather than a new draw around
 * the same spot each time, which would average out too.
 */
const ANCHORS_KEPT = 8
const ANCHOR_TTL_MS = 30 * 24 * 3600 * 1000

/** A uniform number in [0, 1) that an observer can't predict from earlier draws. */
const secureRandom = () => randomInt(2 ** 48 - 1) / 2 ** 48

/**
 * A new public point for a user at (lat, lon): between BLUR_MIN_M and BLUR_MAX_M away, in a
 * random direction. Where the user is stays unknown within that ring: the point is drawn once
 * for a place and kept (see ANCHOR_KEEP_M), so many answers tell no more than one.
 */
export function blurPosition(lat: number, lon: number, random: () => number = secureRandom): GeoPoint {
  const distance = Math.sqrt(BLUR_MIN_M ** 2 + random() * (BLUR_MAX_M ** 2 - BLUR_MIN_M ** 2))
  const to = computeDestinationPoint({ latitude: lat, longitude: lon }, distance, random() * 360, EARTH_RADIUS_M)
  return { lat: to.latitude, lon: to.longitude }
}

/**
 * Where a user posting from (lat, lon) is shown, and its anchors after the post: the most
 * recently used anchor within ANCHOR_KEEP_M, or else a new one drawn around the position (the
 * user moved for real).
 */
function anchorFor(anchors: readonly GeoPoint[], lat: number, lon: number): { shown: GeoPoint; anchors: GeoPoint[] } {
  const kept = anchors.find((a) => haversineM(a.lat, a.lon, lat, lon) <= ANCHOR_KEEP_M)
  const shown = kept ?? blurPosition(lat, lon)
  return { shown, anchors: [shown, ...anchors.filter((a) => a !== kept)].slice(0, ANCHORS_KEPT) }
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
  /**
   * Live job tracking: hears each exact position posted (for the jobs whose client the poster
   * shares it with, never the map) and when the poster goes off the map (its sharing ends).
   */
  tracking?: { position(userId: string, point: GeoPoint): Promise<void>; stopAllOf(userId: string): Promise<void> }
}) {
  const { store } = deps

  const userOf = async (userId: string) => {
    const user = (await deps.users([userId])).get(userId)
    if (!user) throw new UnauthenticatedError()
    return user
  }

  return {
    /**
     * Puts the user on the map until the ttl runs out, at its public point (see anchorFor);
     * posting again renews, and moves the user when it moved for real.
     */
    async post(auth: Auth, input: PostLocationInput): Promise<{ expiresAt: Date }> {
      const { userId } = auth
      // The roles go with the location, so that searches for a role read only its users; the
      // card, so that they show them without reading the accounts.
      const [user, anchors] = await Promise.all([userOf(userId), store.anchors(userId)])
      const now = deps.clock.now().getTime()
      const expiresAt = new Date(now + (input.ttl ?? deps.defaultTtl) * 1000)
      const { shown, anchors: points } = anchorFor(anchors, input.lat, input.lon)
      await store.set(userId, {
        ...shown,
        roles: user.roles as LocationRole[],
        expiresAt,
        card: cardOf(user),
        version: user.updated_at.getTime(),
        anchors: { points, expiresAt: new Date(now + ANCHOR_TTL_MS) },
      })
      // A sign-out or an account deletion takes the user off the map after ending the session:
      // one that did so while this post was under way must win, so the session is looked at
      // again (and the anchors go too, as the account may be gone).
      if (!(await deps.stillSignedIn(auth))) {
        await store.forget(userId)
        throw new UnauthenticatedError()
      }
      await deps.tracking?.position(userId, { lat: input.lat, lon: input.lon })
      return { expiresAt }
    },

    /** The user's account changed: a user on the map shows the change (and its new roles) at once. */
    async refresh(user: UserRow, before?: UserRow): Promise<void> {
      const card = cardOf(user)
      if (before && cardOf(before) === card) return // a new password or email: nothing shown changed
      await store.update(user.id, { roles: user.roles as LocationRole[], card, version: user.updated_at.getTime() })
    },

    /**
     * Takes the user off the map (also on sign-out). Its anchors stay: back at a place, it is
     * shown where it was shown before.
     */
    async remove(userId: string): Promise<void> {
      await store.remove(userId)
      await deps.tracking?.stopAllOf(userId)
    },

    /** The account is deleted: off the map, and its anchors go. */
    async forget(userId: string): Promise<void> {
      await store.forget(userId)
      await deps.tracking?.stopAllOf(userId)
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
