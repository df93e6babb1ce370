import { createHash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import ngeohash from 'ngeohash'
import { haversineM, insideRadius, MAX_GEO_LAT } from '../geo.js'
import type { LocationRole, NearbyHit, NearbyQuery } from '../types.js'
import type { RedisClient } from './client.js'
import { AT_CATS, AT_LAT, AT_LON, CAT_BYTES, categoryHash, cellsTouched, HEADER, isPolar, memberOf, readEntry, ROLE_BIT, ROLES, unpackId, type Entry } from './location-codec.js'

// The search of the Redis live map (its layout: locations.ts). A search is one plain GEOSEARCH
// per cell and role, and its members are the answer: each carries its expiry (GEO members can't
// expire one by one, so a search drops the expired ones it reads), its position (distances are
// measured here, on Redis GEO's sphere) and its card (so a search looks nothing else up). In
// categories too: the members' category hashes are read here, at fixed places of each member,
// and those in none of the categories are dropped before anything else of them is decoded.
// (A script that answered only the members in the categories cost Redis 135 µs a search where
// the same GEOSEARCH alone costs 87: Redis turns each member into a Lua string and back; 1M
// workers in a metro area, half of them in the category.)

// A search's first radius is the hint's times this; a hint moves this far towards each new
// search's finding. On 1M workers in a metro area, 1.09 rounds a search (the last value with a
// 1.2 margin: 1.12) and 5-13% less Redis time; the k-th nearest's distance varies by ~11% from
// one point to the next, so a smaller margin takes more second rounds than it saves.
const HINT_MARGIN = 1.15
const HINT_WEIGHT = 0.3

interface Reply {
  truncated: boolean
  lastDistance: number
  /** Members GEOSEARCH read, and hits answered (for the share of a filter's matches). */
  read: number
  hits: NearbyHit[]
}

const hitOf = (id: Buffer, entry: Entry, lat: number, lon: number): NearbyHit => ({ userId: unpackId(id), distanceM: haversineM(lat, lon, entry.lat, entry.lon), card: entry.card })

/** Categories searched in: their 8-byte hashes as pairs of 32-bit words, and a key for hints. */
interface Filter {
  words: Uint32Array
  key: string
}
// Worked out once per set of categories (a search names the same few again and again).
const filters = new LRUCache<string, Filter>({ max: 1_000 })
function filterOf(categories: ReadonlySet<string>): Filter {
  const ids = [...categories].sort().join(' ')
  let filter = filters.get(ids)
  if (!filter) {
    const hashes = Buffer.concat([...categories].sort().map(categoryHash))
    const words = new Uint32Array(hashes.length / 4)
    for (let i = 0; i < words.length; i++) words[i] = hashes.readUInt32BE(4 * i)
    filters.set(ids, (filter = { words, key: createHash('sha1').update(hashes).digest('base64').slice(0, 12) }))
  }
  return filter
}

/** Whether the entry at `at` in `b` holds one of the categories (as words, two a category). */
function holdsOne(b: Buffer, at: number, words: Uint32Array): boolean {
  const first = at + HEADER
  const end = first + CAT_BYTES * b[at + AT_CATS]!
  for (let i = first; i < end; i += CAT_BYTES) {
    const high = b.readUInt32BE(i)
    for (let j = 0; j < words.length; j += 2) if (words[j] === high && words[j + 1] === b.readUInt32BE(i + 4)) return true
  }
  return false
}

/** The nearest-first search over the cells, with the keys of the layout. */
export function createLocationSearch(redis: RedisClient, keys: { roleKey: (cell: string, role: LocationRole) => string; polarKey: (cell: string) => string }) {
  // How far, per square root of a hit, the nearest users were around a place lately: the first
  // radius to try there. Kept for ~1 km, ~5 km and ~40 km squares, as a moving average (the
  // distance of the k-th nearest varies from one point to the next); a search takes the finest
  // one known. The least recently used go first: searches all over a country touch more fine
  // squares than are kept, and must not push out the coarse ones they fall back on (1M workers
  // over France: 2.0-2.3 GEOSEARCH a search when the whole map was cleared at a bound, 1.7 now).
  // A search in categories has hints of its own, and learns what share of what it reads matches.
  const hints = new LRUCache<string, number>({ max: 100_000 })
  const shares = new LRUCache<string, number>({ max: 10_000 })
  const HINT_PRECISIONS = [6, 5, 4]
  const hintKeys = (lat: number, lon: number, role: LocationRole | undefined, filter: string) => {
    const hash = ngeohash.encode(lat, lon, HINT_PRECISIONS[0])
    return HINT_PRECISIONS.map((p) => `${hash.slice(0, p)}:${role ?? '*'}:${filter}`)
  }

  // One cell, one role: the nearest `count` members within the radius, those unexpired (and in
  // the categories) the answer. From a centre beyond Redis GEO's band (near a pole): everything
  // in a circle around the nearest point of the band that holds the real one (few people live
  // there, so no COUNT).
  const searchCell = async (cell: string, role: LocationRole, lat: number, lon: number, radiusM: number, count: number, now: number, filter: Filter | undefined): Promise<Reply> => {
    const polarCentre = Math.abs(lat) > MAX_GEO_LAT
    const edge = Math.sign(lat) * MAX_GEO_LAT
    // Redis measures from its 52-bit geohash of the point, at most ~0.4 m away from the
    // entry's: the search reaches a meter further, and a cut-off COUNT makes certain only what
    // is 1 m nearer than its last.
    const [fromLat, reach, limit] = polarCentre ? [edge, radiusM + 0.5 + haversineM(lat, lon, edge, lon) + 1, 1_000_000] : [lat, radiusM + 1.5, count]
    const members = (await redis.callBuffer('GEOSEARCH', keys.roleKey(cell, role), 'FROMLONLAT', lon, fromLat, 'BYRADIUS', reach, 'm', 'ASC', 'COUNT', limit)) as Buffer[]
    const hits: NearbyHit[] = []
    for (const member of members) {
      // Expiry and categories first, at their fixed places: nothing else of a member is
      // decoded unless it is answered.
      const at = 1 + member[0]!
      if (member.readUIntBE(at, 6) <= now || (filter && !holdsOne(member, at, filter.words))) continue
      const card = member.toString('utf8', at + HEADER + CAT_BYTES * member[at + AT_CATS]!)
      const distanceM = haversineM(lat, lon, member.readInt32BE(at + AT_LAT) / 1e7, member.readInt32BE(at + AT_LON) / 1e7)
      hits.push({ userId: unpackId(member.subarray(1, at)), distanceM, card })
    }
    const found = members.length
    const last = members[found - 1]
    const truncated = !polarCentre && found === limit
    const lastDistance = truncated && last ? (({ entry }) => haversineM(lat, lon, entry.readInt32BE(AT_LAT) / 1e7, entry.readInt32BE(AT_LON) / 1e7))(memberOf(last)) - 1 : 0
    return { truncated, lastDistance, read: found, hits }
  }

  const searchPolar = async (cell: string, role: LocationRole, lat: number, lon: number, now: number, filter: Filter | undefined): Promise<Reply> => {
    const all = (await redis.callBuffer('HGETALL', keys.polarKey(cell))) as Buffer[]
    const hits: NearbyHit[] = []
    for (let i = 0; i < all.length; i += 2) {
      const entry = readEntry(all[i + 1]!)
      if (entry.expiresAt <= now || !(entry.flags & ROLE_BIT[role]) || (filter && !holdsOne(all[i + 1]!, 0, filter.words))) continue
      hits.push(hitOf(all[i]!, entry, lat, lon))
    }
    return { truncated: false, lastDistance: 0, read: all.length / 2, hits }
  }

  return async function nearby(q: NearbyQuery): Promise<NearbyHit[]> {
    const k = q.limit
    if (k <= 0) return []
    if (q.categories && q.categories.size === 0) return []
    const now = Date.now()
    const roles = q.role ? [q.role] : ROLES
    const filter = q.categories && filterOf(q.categories)
    const filterKey = filter?.key ?? ''
    const keys = hintKeys(q.lat, q.lon, q.role, filterKey)
    const share = filter ? (shares.get(filterKey) ?? 0.5) : 1
    // In categories, where no search in them was made lately, an unfiltered one's hint spread
    // by the share of matches: the filter's own hints begin at once with a fine square.
    const plainKeys = filter ? hintKeys(q.lat, q.lon, q.role, '') : []
    let hint: number | undefined
    for (let i = 0; i < keys.length && hint === undefined; i++) {
      hint = hints.get(keys[i]!)
      const plain = filter && hint === undefined ? hints.get(plainKeys[i]!) : undefined
      if (plain !== undefined) hint = plain / Math.sqrt(Math.max(share, 0.02))
    }
    // Start a little past the circle that held k users here lately (or at 250 m), and grow it.
    let r = hint === undefined ? 250 : Math.max(30, hint * Math.sqrt(k) * HINT_MARGIN)
    if (q.after) r = Math.max(r, q.after.distanceM * 1.2 + r)
    r = Math.min(r, q.radiusM)
    // A few more than wanted: the caller's own member may be among them, and only what lies a
    // meter nearer than the last one read is certain (k + 2 took a second round 1 time in 4).
    // In categories, as many more as the share of matches read lately says.
    let count = Math.ceil((k + 4) / Math.max(share, 0.02) * (filter ? 1.2 : 1))
    let read = 0
    let matched = 0
    for (;;) {
      const targets: Promise<Reply>[] = []
      for (const cell of cellsTouched(q.lat, q.lon, r)) {
        for (const role of roles) {
          targets.push(isPolar(cell) ? searchPolar(cell, role, q.lat, q.lon, now, filter) : searchCell(cell, role, q.lat, q.lon, r, count, now, filter))
        }
      }
      const replies = await Promise.all(targets)
      // Certain: every unexpired user nearer than `bound` has been seen.
      let bound = r + 0.5
      let truncated = false
      const best = new Map<string, NearbyHit>()
      for (const reply of replies) {
        read += reply.read
        matched += reply.hits.length
        if (reply.truncated) {
          truncated = true
          bound = Math.min(bound, reply.lastDistance)
        }
        for (const hit of reply.hits) {
          if (!insideRadius(hit.distanceM, q.radiusM) || q.exclude?.has(hit.userId)) continue
          if (q.after && (hit.distanceM < q.after.distanceM || (hit.distanceM === q.after.distanceM && hit.userId <= q.after.userId))) continue
          const seen = best.get(hit.userId)
          if (seen === undefined || hit.distanceM < seen.distanceM) best.set(hit.userId, hit)
        }
      }
      const certain: NearbyHit[] = []
      for (const hit of best.values()) if (hit.distanceM < bound) certain.push(hit)
      certain.sort((a, b) => a.distanceM - b.distanceM || (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0))
      const complete = r >= q.radiusM && !truncated
      if (certain.length >= k || complete) {
        if (!q.after) {
          const perHit = certain.length >= k ? Math.max(certain[k - 1]!.distanceM, 10) / Math.sqrt(k) : q.radiusM / Math.sqrt(Math.max(certain.length, 1))
          for (const key of keys) {
            const seen = hints.get(key)
            hints.set(key, seen === undefined ? perHit : seen + HINT_WEIGHT * (perHit - seen))
          }
        }
        if (filter && read >= 20) {
          const seen = shares.get(filterKey)
          const found = matched / read
          shares.set(filterKey, seen === undefined ? found : seen + HINT_WEIGHT * (found - seen))
        }
        return certain.slice(0, k)
      }
      if (truncated) count *= 4
      // Short of k: grow by what the density seen so far says is missing, and a little more.
      else r = Math.min(q.radiusM, r * Math.min(4, Math.max(1.3, Math.sqrt(k / Math.max(certain.length, 1)) * 1.2)))
    }
  }
}
