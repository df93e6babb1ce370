import { computeDestinationPoint } from 'geolib'
import { randomInt } from 'node:crypto'
import { Type } from 'typebox'
import { ForbiddenError, InvalidInputError, UnauthenticatedError } from '../../errors.js'
import { decodeCursor, encodeCursor } from '../../http/cursor.js'
import { EARTH_RADIUS_M, haversineM } from '../../platform/live/geo.js'
import type { GeoPoint, LocationRole, LocationStore, NearbyHit } from '../../platform/live/index.js'
import type { Facets } from '../profiles/index.js'
import type { Clock } from '../../platform/clock.js'
import type { ShownUser, UserRow, UserView } from '../accounts/index.js'
import { CHANGES_HEARD_WITHIN_MS, type Auth } from '../sessions/index.js'
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

const ROLE_LETTER: Record<string, string> = { WORKER: 'W', CLIENT: 'C', ADMIN: 'A' }
const LETTER_ROLE: Record<string, UserRow['roles'][number]> = { W: 'WORKER', C: 'CLIENT', A: 'ADMIN' }

/**
 * What a search shows of a user, kept with its location so that a search answers from the live
 * store alone: the public fields of its view (never the email), compact, since every live
 * location holds one (a million live workers hold a million). Fields are joined by U+001F (the
 * unit separator): roles as letters (never "[", so this is told from a JSON card), names,
 * picture etag, creation time (ms, base 36), then what searches filter on after the store
 * (rating × 100, hourly rate in minor units, its currency), trailing empty fields left off. A name
 * holding U+001F makes a JSON array instead. The categories go with the location beside the card,
 * for the store to filter on.
 */
export function cardOf(user: Pick<UserRow, 'first_name' | 'last_name' | 'roles' | 'picture_etag' | 'created_at'>, facets?: Omit<Facets, 'version' | 'categories'>): string {
  const fields: (string | number | null)[] = [user.roles.map((r) => ROLE_LETTER[r] ?? '').join(''), user.first_name, user.last_name, user.picture_etag, user.created_at.getTime()]
  if (facets) fields.push(facets.rating, facets.rate?.amount ?? null, facets.rate?.currency ?? null)
  while (fields.length > 5 && fields.at(-1) === null) fields.pop()
  if (`${user.first_name}${user.last_name}${user.picture_etag ?? ''}`.includes(SEP)) return JSON.stringify(fields)
  return fields
    .map((f, i) => (f === null ? '' : i === 4 ? (f as number).toString(36) : i === 5 ? String(Math.round((f as number) * 100)) : String(f)))
    .join(SEP)
}
const SEP = '\u001f'

/** A card read: this layout, its JSON form, or the layout before (a JSON array with roles as names). */
function readCard(card: string) {
  if (card.startsWith('[')) {
    const a = JSON.parse(card) as unknown[]
    if (Array.isArray(a[2])) {
      const [first_name, last_name, roles, picture_etag, created_at, , rating, rateAmount, rateCurrency] = a as [string, string, UserRow['roles'], string | null, string, unknown, number?, number?, string?]
      return { first_name, last_name, roles, picture_etag, created_at, rating: rating ?? null, rateAmount: rateAmount ?? null, rateCurrency: rateCurrency ?? null }
    }
    const [letters, first_name, last_name, picture_etag, created, rating, rateAmount, rateCurrency] = a as [string, string, string, string | null, number, number?, number?, string?]
    return { first_name, last_name, roles: rolesOf(letters), picture_etag: picture_etag ?? null, created_at: new Date(created).toISOString(), rating: rating ?? null, rateAmount: rateAmount ?? null, rateCurrency: rateCurrency ?? null }
  }
  const [letters = '', first_name = '', last_name = '', etag, created = '0', rating, rateAmount, rateCurrency] = card.split(SEP)
  return {
    first_name,
    last_name,
    roles: rolesOf(letters),
    picture_etag: etag || null,
    created_at: new Date(parseInt(created, 36)).toISOString(),
    rating: rating ? Number(rating) / 100 : null,
    rateAmount: rateAmount ? Number(rateAmount) : null,
    rateCurrency: rateCurrency || null,
  }
}
const rolesOf = (letters: string) => [...letters].flatMap((l) => (LETTER_ROLE[l] ? [LETTER_ROLE[l]] : []))

/** What a search filters on after the store, read back from a card (none for a card stored without them). */
interface CardFacets {
  rating: number | null
  rateAmount: number | null
  rateCurrency: string | null
}
function facetsFrom(card: string | null): CardFacets {
  if (card === null) return { rating: null, rateAmount: null, rateCurrency: null }
  const { rating, rateAmount, rateCurrency } = readCard(card)
  return { rating, rateAmount, rateCurrency }
}

/**
 * The filters of a search beyond place, role and categories (which the store applies), as one
 * test of a hit's card.
 */
interface Filter {
  minRating?: number
  maxRate?: { amount: number; currency: string }
}
function matches(filter: Filter, facets: CardFacets): boolean {
  if (filter.minRating !== undefined && (facets.rating === null || facets.rating < filter.minRating)) return false
  if (filter.maxRate && (facets.rateAmount === null || facets.rateCurrency !== filter.maxRate.currency || facets.rateAmount > filter.maxRate.amount)) return false
  return true
}
/** Hits read from the store at most, for a filtered search's page or a search sorted by rating. */
const FILTERED_READ_MAX = 2000

function shownFrom(userId: string, card: string): ShownUser {
  const { first_name, last_name, roles, picture_etag, created_at } = readCard(card)
  return { id: userId, email: null, first_name, last_name, roles, picture_etag, created_at }
}

/** Reads of the store a page may take when deleted users leave it short; then it is answered short. */
const SEARCH_ROUNDS = 3

// The position after the last hit of a page: its distance as the store measured it, and its id.
const CursorPosition = Type.Object({ d: Type.Number({ minimum: 0 }), u: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
// Sorted by rating: the rating (-1 for none), then distance and id, of the last hit.
const RatingPosition = Type.Object({ r: Type.Number(), d: Type.Number({ minimum: 0 }), u: Type.String({ format: 'uuid' }) }, { additionalProperties: false })

export function createLocationService(deps: {
  store: LocationStore
  /** Users by id, deleted ones left out (the accounts feature's, cached in the process). */
  users: (ids: readonly string[]) => Promise<Map<string, UserRow>>
  /** The users to leave out of a viewer's results: blocks either way (the blocks feature's). */
  hiddenFrom: (viewerId: string) => Promise<ReadonlySet<string>>
  view: (user: ShownUser, viewer: Pick<UserRow, 'id' | 'roles'>) => UserView
  /** Whether the user is an admin now (read from the accounts, not a cache). */
  isAdmin: (userId: string) => Promise<boolean>
  /** The sessions feature's: whether a session still stands (signing out or deleting the account ends it). */
  sessions: {
    /** From the database. */
    stillSignedIn(auth: Auth): Promise<boolean>
    /** From this process's memory: false when it can't tell (see the sessions service). */
    standsInMemory(auth: Auth): boolean
    /** Of these users, those deleted, and those signed in somewhere (from the database). */
    signedInUsers(userIds: readonly string[]): Promise<{ signedIn: Set<string>; gone: Set<string> }>
    /** Whether changes to sessions are heard now. */
    changesHeard(): boolean
  }
  defaultTtl: number
  clock: Clock
  /**
   * Live job tracking: hears each exact position posted (for the jobs whose client the poster
   * shares it with, never the map) and when the poster goes off the map (its sharing ends).
   */
  tracking?: { position(userId: string, point: GeoPoint): Promise<void>; stopAllOf(userId: string): Promise<void> }
  /** What searches filter on, per user (the profiles feature's, read fresh). */
  facets?: (userIds: readonly string[]) => Promise<Map<string, Facets>>
  /** A category and its subcategories' ids (the categories feature's). */
  categoryScope?: (categoryId: string) => Promise<Set<string>>
}) {
  const { store } = deps

  /** The card of a user with its facets, its categories, and the version they are stored at. */
  const cardWithFacets = async (user: UserRow) => {
    const facets = (await deps.facets?.([user.id]))?.get(user.id)
    return { card: cardOf(user, facets), categories: facets?.categories ?? [], version: Math.max(user.updated_at.getTime(), facets?.version ?? 0) }
  }

  // Posts whose session stood as far as this process knew, stored while a sign-out committed
  // elsewhere may not have been heard yet: each is checked in the database again if a change of
  // its user is heard (or the channel fails) within CHANGES_HEARD_WITHIN_MS of its storing. By
  // user, oldest first (a post again moves its user to the end).
  const unconfirmed = new Map<string, { auth: Auth; at: number }>()
  /**
   * Drops the posts past the window while the channel stands: a change committed before them has
   * been heard by now. (Asking whether it stands may find it down, which re-checks them all.)
   */
  const pruneUnconfirmed = (now: number) => {
    if (!deps.sessions.changesHeard()) return
    for (const [userId, post] of unconfirmed) {
      if (now - post.at <= CHANGES_HEARD_WITHIN_MS) break
      unconfirmed.delete(userId)
    }
  }
  /** Takes the user off the map if the post's session ended (the anchors go too: the account may be gone). */
  const confirm = async (auth: Auth) => {
    if (await deps.sessions.stillSignedIn(auth)) return true
    await store.forget(auth.userId)
    return false
  }
  /**
   * The same for posts found out later, with one look at the database for all. A user leaves the
   * map only when none of its sessions stands (the post's own, or another device's: a sign-out of
   * one device leaves the others, as a sign-out does), its anchors only with the account, and a
   * user who posted again since not at all (that post is checked on its own).
   */
  const confirmLater = async (posts: { auth: Auth }[]) => {
    const { signedIn, gone } = await deps.sessions.signedInUsers(posts.map((p) => p.auth.userId))
    for (const { auth } of posts) {
      if (unconfirmed.has(auth.userId)) continue
      if (gone.has(auth.userId)) await store.forget(auth.userId)
      else if (!signedIn.has(auth.userId)) await store.remove(auth.userId)
    }
  }

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
      const { card, categories, version } = await cardWithFacets(user)
      const now = deps.clock.now().getTime()
      const expiresAt = new Date(now + (input.ttl ?? deps.defaultTtl) * 1000)
      const { shown, anchors: points } = anchorFor(anchors, input.lat, input.lon)
      await store.set(userId, {
        ...shown,
        roles: user.roles as LocationRole[],
        expiresAt,
        card,
        categories,
        version,
        anchors: { points, expiresAt: new Date(now + ANCHOR_TTL_MS) },
      })
      // A sign-out or an account deletion takes the user off the map after ending the session:
      // one that did so while this post was under way must win. When this process heard no
      // change of the user since the post's authentication, the session stood until now, and a
      // change committed elsewhere but not heard yet is checked when it is (sessionsChanged).
      // Else the database says, now.
      if (deps.sessions.standsInMemory(auth)) {
        const now = performance.now()
        unconfirmed.delete(userId)
        unconfirmed.set(userId, { auth, at: now })
        pruneUnconfirmed(now)
      } else if (!(await confirm(auth))) {
        throw new UnauthenticatedError()
      }
      await deps.tracking?.position(userId, { lat: input.lat, lon: input.lon })
      return { expiresAt }
    },

    /** The user's account changed: a user on the map shows the change (and its new roles) at once. */
    async refresh(user: UserRow, before?: UserRow): Promise<void> {
      if (before && cardOf(before) === cardOf(user)) return // a new password or email: nothing shown changed
      const { card, categories, version } = await cardWithFacets(user)
      await store.update(user.id, { roles: user.roles as LocationRole[], card, categories, version })
    },

    /** What searches filter on changed (a profile, a rating): users on the map show it at once. */
    async refreshFacets(userIds: readonly string[]): Promise<void> {
      const users = await deps.users(userIds)
      for (const user of users.values()) {
        const { card, categories, version } = await cardWithFacets(user)
        await store.update(user.id, { roles: user.roles as LocationRole[], card, categories, version })
      }
    },

    /**
     * Takes the user off the map (also on sign-out). Its anchors stay: back at a place, it is
     * shown where it was shown before.
     */
    async remove(userId: string): Promise<void> {
      // A sign-out here: this removal comes after its commit, so after every post it raced.
      unconfirmed.delete(userId)
      await store.remove(userId)
      await deps.tracking?.stopAllOf(userId)
    },

    /**
     * Sessions of these users changed (undefined: of anyone, as far as this process can tell):
     * the posts stored while such a change may have been on its way are checked again.
     */
    async sessionsChanged(userIds: readonly string[] | undefined): Promise<void> {
      if (userIds !== undefined) pruneUnconfirmed(performance.now())
      const posts = userIds === undefined ? [...unconfirmed.values()] : userIds.flatMap((id) => unconfirmed.get(id) ?? [])
      if (posts.length === 0) return
      for (const post of posts) unconfirmed.delete(post.auth.userId)
      try {
        await confirmLater(posts)
      } catch (error) {
        // Not checked: back in line (with a new window) for the next news, unless posted again since.
        const now = performance.now()
        for (const post of posts) if (!unconfirmed.has(post.auth.userId)) unconfirmed.set(post.auth.userId, { auth: post.auth, at: now })
        throw error
      }
    },

    /** The account is deleted: off the map, and its anchors go. */
    async forget(userId: string): Promise<void> {
      unconfirmed.delete(userId)
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
      if (query.max_rate !== undefined && query.currency === undefined) {
        throw new InvalidInputError('max_rate needs the currency it is in', [{ field: 'querystring/currency', message: 'is required with max_rate' }])
      }
      // A category is filtered in the store, which answers only users in it (or a subcategory):
      // a search in a category reads what it answers, as an unfiltered one does.
      const categories = query.category ? ((await deps.categoryScope?.(query.category)) ?? new Set<string>()) : undefined
      const filter: Filter = {
        ...(query.min_rating !== undefined ? { minRating: query.min_rating } : {}),
        ...(query.max_rate !== undefined ? { maxRate: { amount: query.max_rate, currency: query.currency! } } : {}),
      }
      const filtered = Object.keys(filter).length > 0
      const sortByRating = query.sort === 'rating'
      const after = sortByRating ? undefined : decodeCursor(query.cursor, CursorPosition)
      const afterRating = sortByRating ? decodeCursor(query.cursor, RatingPosition) : undefined
      // Who asks (from the cache), and whom it must not find: those are left out by the store
      // itself, so that a hidden user is on no page and in no cursor. An admin sees emails: that
      // is confirmed from the accounts, never taken from a cache, and so is seeing the ADMIN role.
      const [viewer, hidden] = await Promise.all([userOf(viewerId), deps.hiddenFrom(viewerId)])
      const isAdmin = viewer.roles.includes('ADMIN') && (await deps.isAdmin(viewerId))
      if (query.role === 'ADMIN' && !isAdmin) throw new ForbiddenError('Only admins may search for the users with the ADMIN role', 'not_an_admin')
      // Unless confirmed an admin, the viewer is shown users as anyone is: no email, no ADMIN role.
      const shownTo = isAdmin ? viewer : { id: viewer.id, roles: [] }
      const exclude = new Set(hidden).add(viewerId)
      const shownOf = async (hits: NearbyHit[]) => {
        const users = await deps.users(hits.filter((h) => isAdmin || h.card === null).map((h) => h.userId))
        return (hit: NearbyHit) => {
          const user = isAdmin || hit.card === null ? users.get(hit.userId) : shownFrom(hit.userId, hit.card)
          return user && (!query.role || user.roles.includes(query.role)) ? user : undefined
        }
      }

      if (sortByRating) {
        // Every match in the circle (up to FILTERED_READ_MAX, nearest first), best rated first.
        const hits = await store.nearby({ lat: query.lat, lon: query.lon, radiusM: query.radius, limit: FILTERED_READ_MAX, role: query.role, exclude, ...(categories ? { categories } : {}) })
        const rated = hits.filter((h) => matches(filter, facetsFrom(h.card))).map((h) => ({ hit: h, r: facetsFrom(h.card).rating ?? -1 }))
        const order = (a: { r: number; hit: NearbyHit }, b: { r: number; hit: NearbyHit }) =>
          b.r - a.r || a.hit.distanceM - b.hit.distanceM || (a.hit.userId < b.hit.userId ? -1 : a.hit.userId > b.hit.userId ? 1 : 0)
        rated.sort(order)
        const start = afterRating ? rated.findIndex((x) => order(x, { r: afterRating.r, hit: { userId: afterRating.u, distanceM: afterRating.d, card: null } }) > 0) : 0
        const rest = start < 0 ? [] : rated.slice(start)
        const shown = await shownOf(rest.slice(0, limit).map((x) => x.hit))
        const page = rest.slice(0, limit)
        const items = page.flatMap(({ hit }) => {
          const user = shown(hit)
          return user ? [{ user: deps.view(user, shownTo), distance_m: Math.round(hit.distanceM) }] : []
        })
        const last = page.at(-1)
        return { items, next_cursor: rest.length > limit && last ? encodeCursor({ r: last.r, d: last.hit.distanceM, u: last.hit.userId }) : null }
      }

      let position = after && { distanceM: after.d, userId: after.u }
      const items: { user: UserView; distance_m: number }[] = []
      let more = true
      let read = 0
      const rounds = filtered ? Number.POSITIVE_INFINITY : SEARCH_ROUNDS
      for (let round = 0; more && items.length < limit && round < rounds && read < FILTERED_READ_MAX; round++) {
        const wanted: number = limit - items.length
        // A filtered search reads ahead, more each round: most hits may not match.
        const batch: number = filtered ? Math.min(FILTERED_READ_MAX, Math.max(wanted, 25) * 4 ** Math.min(round + 1, 4)) : wanted
        const hits: NearbyHit[] = await store.nearby({ lat: query.lat, lon: query.lon, radiusM: query.radius, limit: batch + 1, role: query.role, after: position, exclude, ...(categories ? { categories } : {}) })
        read += hits.length
        more = hits.length > batch
        const candidates: NearbyHit[] = filtered ? hits.slice(0, batch).filter((h) => matches(filter, facetsFrom(h.card))) : hits.slice(0, batch)
        if (filtered) {
          // The page ends at its last hit: further matches of this batch come with the next page.
          const taken = candidates.slice(0, wanted)
          if (candidates.length > wanted) more = true
          position = (candidates.length > wanted ? taken.at(-1) : hits.slice(0, batch).at(-1)) ?? position
          const shown = await shownOf(taken)
          for (const hit of taken) {
            const user = shown(hit)
            if (user) items.push({ user: deps.view(user, shownTo), distance_m: Math.round(hit.distanceM) })
          }
          continue
        }
        const taken = candidates
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
