import { LRUCache } from 'lru-cache'
import ngeohash from 'ngeohash'
import type { Result } from 'ioredis'
import { circleBounds, haversineM, insideRadius, MAX_GEO_LAT } from '../geo.js'
import type { GeoPoint, LocationRole, LocationStore, NearbyHit } from '../types.js'
import type { RedisClient } from './client.js'

// Layout, for Redis Cluster as for one server: the world is cut into coarse geohash cells (precision 4, about
// 39 x 20 km at the equator). Each cell has one GEO key per role, a sorted set of expiries and a
// hash of its users' entries, all with the cell as hash tag, so one script touches one cell in
// one slot:
//   <p>loc:{<cell>}:W|C|A   GEO members "<user id>:<expiry ms>:<lon>,<lat>:<card>", one per user and role
//   <p>loc:{<cell>}:e       zset user id -> expiry (ms)
//   <p>loc:{<cell>}:u       hash user id -> "<role flags>,<version>,<member>" (read by writes only)
//   <p>loc:{pn}:h, {ps}:h   hashes for the polar caps beyond Redis GEO's ±85.05° (a few users):
//                           user id -> "<lat>,<lon>,<expiry ms>,<role flags>,<version>,<card>"
//   <p>loc:user:<id>        the cell the user is in, expiring with the location
//   <p>loc:anchors:<id>     the user's anchors "<lat>,<lon>;<lat>,<lon>...", expiring on their own
//   <p>loc:cells            every cell ever used, for the background sweep
// A search is one plain GEOSEARCH per cell, and its members are the answer: each carries its
// expiry (GEO members can't expire one by one, so a search drops the expired ones it reads and a
// sweep deletes them now and then, the expiry zset says which), its position (so distances are
// measured here, on Redis GEO's sphere, rather than sent as text for every member) and its user's
// card (so a search looks nothing else up: in a city-sized hash, each lookup is a cache miss of
// its own). User ids hold no ':'. Members of the older layout (the bare user id) are never
// answered and go with the sweep.

export const CELL_PRECISION = 4
const ROLES: readonly LocationRole[] = ['WORKER', 'CLIENT', 'ADMIN']
const ROLE_SUFFIX: Record<LocationRole, string> = { WORKER: 'W', CLIENT: 'C', ADMIN: 'A' }
const SWEEP_INTERVAL_MS = 60_000
// A search's first radius is the hint's times this; a hint moves this far towards each new
// search's finding. On 1M workers in a metro area, 1.09 rounds a search (the last value with a
// 1.2 margin: 1.12) and 5-13% less Redis time; the k-th nearest's distance varies by ~11% from
// one point to the next, so a smaller margin takes more second rounds than it saves.
const HINT_MARGIN = 1.15
const HINT_WEIGHT = 0.3
const SWEEP_BATCH = 500

// A user's entry in its cell, "<role flags>,<version>,<member>", holds its GEO member as stored,
// so that writes remove exactly that (and the older layout's bare user id). The version is the
// account's last change: a card and roles never give way to an older version's.
const ENTRY = `
local function read_entry(entry)
  if not entry then return nil end
  local flags, version, member = string.match(entry, '^([^,]*),([^,]*),(.*)$')
  if not member then return nil end
  return { flags = flags, version = tonumber(version), member = member }
end
local function members_of(user, entry)
  if entry then return {user, entry.member} end
  return {user}
end
`

// Puts a user at a place until an expiry. A card and roles older than those stored are not
// taken: the stored ones stay, at the new place.
const SET = `${ENTRY}
local lon, lat, user, exp, flags, card, version = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local entry = read_entry(redis.call('HGET', KEYS[5], user))
if entry and entry.version > version then
  flags, version, card = entry.flags, entry.version, string.match(entry.member, '^[^:]*:[^:]*:[^:]*:(.*)$')
end
local member = user .. ':' .. exp .. ':' .. lon .. ',' .. lat .. ':' .. card
local old = members_of(user, entry)
for i = 1, 3 do
  redis.call('ZREM', KEYS[i], unpack(old))
  if string.sub(flags, i, i) == '1' then redis.call('GEOADD', KEYS[i], lon, lat, member) end
end
redis.call('ZADD', KEYS[4], exp, user)
redis.call('HSET', KEYS[5], user, flags .. ',' .. string.format('%.0f', version) .. ',' .. member)
`

// New roles and card for a user on the map, where it is and until it expires; 0 when it is not
// there (anymore), so a change never brings back a location that ended, or when a newer
// version is there already.
const UPDATE = `${ENTRY}
local user, flags, card, version = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local entry = read_entry(redis.call('HGET', KEYS[5], user))
local exp = redis.call('ZSCORE', KEYS[4], user)
if not entry or not exp or tonumber(exp) <= tonumber(ARGV[5]) or entry.version > version then return 0 end
local lon, lat = string.match(entry.member, '^[^:]*:[^:]*:([^,]*),([^:]*):')
local member = string.match(entry.member, '^([^:]*:[^:]*:[^:]*:)') .. card
for i = 1, 3 do
  redis.call('ZREM', KEYS[i], unpack(members_of(user, entry)))
  if string.sub(flags, i, i) == '1' then redis.call('GEOADD', KEYS[i], lon, lat, member) end
end
redis.call('HSET', KEYS[5], user, flags .. ',' .. string.format('%.0f', version) .. ',' .. member)
return 1
`

const REMOVE = `${ENTRY}
local old = members_of(ARGV[1], read_entry(redis.call('HGET', KEYS[5], ARGV[1])))
for i = 1, 3 do redis.call('ZREM', KEYS[i], unpack(old)) end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
`

const SWEEP = `${ENTRY}
local gone = redis.call('ZRANGE', KEYS[4], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
if #gone == 0 then return 0 end
local entries = redis.call('HMGET', KEYS[5], unpack(gone))
local members = {}
for i, user in ipairs(gone) do
  for _, m in ipairs(members_of(user, read_entry(entries[i] or nil))) do members[#members + 1] = m end
end
for i = 1, 3 do redis.call('ZREM', KEYS[i], unpack(members)) end
redis.call('ZREM', KEYS[4], unpack(gone))
redis.call('HDEL', KEYS[5], unpack(gone))
return #gone
`

// The polar caps: one hash, user -> "<lat>,<lon>,<expiry ms>,<role flags>,<version>,<card>".
const POLAR = `
local function read_polar(entry)
  if not entry then return nil end
  local lat, lon, exp, flags, version, card = string.match(entry, '^([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),(.*)$')
  if not card then return nil end
  return { lat = lat, lon = lon, exp = tonumber(exp), flags = flags, version = tonumber(version), card = card }
end
local function write_polar(key, user, lat, lon, exp, flags, version, card)
  redis.call('HSET', key, user, lat .. ',' .. lon .. ',' .. exp .. ',' .. flags .. ',' .. string.format('%.0f', version) .. ',' .. card)
end
`

const SET_POLAR = `${POLAR}
local user, lat, lon, exp, flags, card, version = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local entry = read_polar(redis.call('HGET', KEYS[1], user))
if entry and entry.version > version then flags, version, card = entry.flags, entry.version, entry.card end
write_polar(KEYS[1], user, lat, lon, exp, flags, version, card)
`

const UPDATE_POLAR = `${POLAR}
local user, flags, card, version = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local entry = read_polar(redis.call('HGET', KEYS[1], user))
if not entry or entry.exp <= tonumber(ARGV[5]) or entry.version > version then return 0 end
write_polar(KEYS[1], user, entry.lat, entry.lon, string.format('%.0f', entry.exp), flags, version, card)
return 1
`

const SWEEP_POLAR = `
local all = redis.call('HGETALL', KEYS[1])
local now = tonumber(ARGV[1])
local n = 0
for i = 1, #all, 2 do
  local exp = tonumber(string.match(all[i + 1], '^[^,]*,[^,]*,([^,]*),'))
  if exp <= now then
    redis.call('HDEL', KEYS[1], all[i])
    n = n + 1
  end
end
return n
`

declare module 'ioredis' {
  interface RedisCommander<Context> {
    locSet(w: string, c: string, a: string, e: string, u: string, lon: number, lat: number, user: string, exp: number, flags: string, card: string, version: number): Result<null, Context>
    locSetPolar(h: string, user: string, lat: number, lon: number, exp: number, flags: string, card: string, version: number): Result<null, Context>
    locUpdate(w: string, c: string, a: string, e: string, u: string, user: string, flags: string, card: string, version: number, now: number): Result<number, Context>
    locUpdatePolar(h: string, user: string, flags: string, card: string, version: number, now: number): Result<number, Context>
    locRemove(w: string, c: string, a: string, e: string, u: string, user: string): Result<null, Context>
    locSweep(w: string, c: string, a: string, e: string, u: string, now: number, batch: number): Result<number, Context>
    locSweepPolar(h: string, now: number): Result<number, Context>
  }
}

const isPolar = (cell: string) => cell === 'pn' || cell === 'ps'

/** A GEO member "<user id>:<expiry ms>:<lon>,<lat>:<card>" read; undefined for the older bare form. */
function memberOf(member: string) {
  const a = member.indexOf(':')
  const b = member.indexOf(':', a + 1)
  const c = member.indexOf(',', b + 1)
  const d = member.indexOf(':', c + 1)
  if (a < 0 || b < 0 || c < 0 || d < 0) return undefined
  return {
    userId: member.slice(0, a),
    expiresAt: Number(member.slice(a + 1, b)),
    lon: Number(member.slice(b + 1, c)),
    lat: Number(member.slice(c + 1, d)),
    card: member.slice(d + 1),
  }
}

/** The card of a polar entry "<lat>,<lon>,<expiry>,<flags>,<version>,<card>". */
function polarCard(entry: string): string | null {
  let at = -1
  for (let i = 0; i < 5; i++) if ((at = entry.indexOf(',', at + 1)) < 0) return null
  return entry.slice(at + 1)
}

/** The cell a position belongs to. */
export function cellOf(lat: number, lon: number): string {
  if (lat > MAX_GEO_LAT) return 'pn'
  if (lat < -MAX_GEO_LAT) return 'ps'
  return ngeohash.encode(lat, lon, CELL_PRECISION)
}

/** Every cell a circle touches: the geohash cells of its bounding box, and the polar caps it reaches. */
export function cellsTouched(lat: number, lon: number, radiusM: number): string[] {
  const { minLat, maxLat, lonRanges } = circleBounds(lat, lon, radiusM)
  const cells: string[] = []
  const south = Math.max(minLat, -MAX_GEO_LAT)
  const north = Math.min(maxLat, MAX_GEO_LAT)
  if (south <= north) {
    for (const [west, east] of lonRanges) cells.push(...ngeohash.bboxes(south, west, north, east, CELL_PRECISION))
  }
  if (maxLat > MAX_GEO_LAT) cells.push('pn')
  if (minLat < -MAX_GEO_LAT) cells.push('ps')
  return [...new Set(cells)]
}

interface Reply {
  truncated: boolean
  lastDistance: number
  hits: NearbyHit[]
}

const encodeAnchors = (points: readonly GeoPoint[]) => points.map((p) => `${p.lat},${p.lon}`).join(';')
const decodeAnchors = (text: string | null): GeoPoint[] =>
  text
    ? text.split(';').map((pair) => {
        const [lat, lon] = pair.split(',').map(Number)
        return { lat: lat!, lon: lon! }
      })
    : []

const ROLE_FLAGS = (roles: readonly LocationRole[]) => ROLES.map((r) => (roles.includes(r) ? '1' : '0')).join('')

export function createRedisLocationStore(redis: RedisClient, prefix: string): LocationStore & { stop(): void } {
  redis.defineCommand('locSet', { numberOfKeys: 5, lua: SET })
  redis.defineCommand('locUpdate', { numberOfKeys: 5, lua: UPDATE })
  redis.defineCommand('locSetPolar', { numberOfKeys: 1, lua: SET_POLAR })
  redis.defineCommand('locUpdatePolar', { numberOfKeys: 1, lua: UPDATE_POLAR })
  redis.defineCommand('locRemove', { numberOfKeys: 5, lua: REMOVE })
  redis.defineCommand('locSweep', { numberOfKeys: 5, lua: SWEEP })
  redis.defineCommand('locSweepPolar', { numberOfKeys: 1, lua: SWEEP_POLAR })

  const cellKey = (cell: string, suffix: string) => `${prefix}loc:{${cell}}:${suffix}`
  const cellKeys = (cell: string) => [cellKey(cell, 'W'), cellKey(cell, 'C'), cellKey(cell, 'A'), cellKey(cell, 'e'), cellKey(cell, 'u')] as const
  const userKey = (userId: string) => `${prefix}loc:user:${userId}`
  const anchorsKey = (userId: string) => `${prefix}loc:anchors:${userId}`
  const cellsKey = `${prefix}loc:cells`

  // Cells this process has put in the sweep index lately (a set add per write would be waste).
  const indexed = new Map<string, number>()
  const indexCell = (cell: string, now: number) => {
    const at = indexed.get(cell)
    if (at !== undefined && now - at < 600_000) return
    if (indexed.size > 100_000) indexed.clear()
    indexed.set(cell, now)
    void redis.sadd(cellsKey, cell).catch(() => indexed.delete(cell))
  }

  // How far, per square root of a hit, the nearest users were around a place lately: the first
  // radius to try there. Kept for ~1 km, ~5 km and ~40 km squares, as a moving average (the
  // distance of the k-th nearest varies from one point to the next); a search takes the finest
  // one known. The least recently used go first: searches all over a country touch more fine
  // squares than are kept, and must not push out the coarse ones they fall back on (1M workers
  // over France: 2.0-2.3 GEOSEARCH a search when the whole map was cleared at a bound, 1.7 now).
  const hints = new LRUCache<string, number>({ max: 100_000 })
  const HINT_PRECISIONS = [6, 5, 4]
  const hintKeys = (lat: number, lon: number, role: LocationRole | undefined) => {
    const hash = ngeohash.encode(lat, lon, HINT_PRECISIONS[0])
    return HINT_PRECISIONS.map((p) => `${hash.slice(0, p)}:${role ?? '*'}`)
  }

  const removeFrom = async (cell: string, userId: string) => {
    if (isPolar(cell)) await redis.hdel(cellKey(cell, 'h'), userId)
    else await redis.locRemove(...cellKeys(cell), userId)
  }

  const remove = async (userId: string) => {
    const cell = await redis.getdel(userKey(userId))
    if (cell) await removeFrom(cell, userId)
  }

  // One cell, one role, one plain GEOSEARCH: the nearest `count` members within the radius, of
  // which the unexpired ones are answered. From a centre beyond Redis GEO's band (near a pole):
  // everything in a circle around the nearest point of the band that holds the real one, with
  // coordinates, measured here (few people live there, so no COUNT).
  const searchCell = async (cell: string, role: LocationRole, lat: number, lon: number, radiusM: number, count: number, now: number): Promise<Reply> => {
    const key = cellKey(cell, ROLE_SUFFIX[role])
    const hits: NearbyHit[] = []
    if (Math.abs(lat) > MAX_GEO_LAT) {
      const edge = Math.sign(lat) * MAX_GEO_LAT
      const reach = radiusM + 0.5 + haversineM(lat, lon, edge, lon) + 1
      const found = (await redis.geosearch(key, 'FROMLONLAT', lon, edge, 'BYRADIUS', reach, 'm')) as string[]
      for (const text of found) {
        const member = memberOf(text)
        if (member && member.expiresAt > now) hits.push({ userId: member.userId, distanceM: haversineM(lat, lon, member.lat, member.lon), card: member.card })
      }
      return { truncated: false, lastDistance: 0, hits }
    }
    // Distances are measured here from the members' positions, on Redis GEO's sphere. Redis
    // measures from its 52-bit geohash of the point, at most ~0.4 m away: the search reaches a
    // meter further, and a cut-off COUNT makes certain only what is 1 m nearer than its last.
    const found = (await redis.geosearch(key, 'FROMLONLAT', lon, lat, 'BYRADIUS', radiusM + 1.5, 'm', 'ASC', 'COUNT', count)) as string[]
    let lastDistance = 0
    for (const text of found) {
      const member = memberOf(text)
      if (!member) continue
      const distanceM = haversineM(lat, lon, member.lat, member.lon)
      lastDistance = distanceM
      if (member.expiresAt > now) hits.push({ userId: member.userId, distanceM, card: member.card })
    }
    const truncated = found.length === count
    return { truncated, lastDistance: truncated ? lastDistance - 1 : 0, hits }
  }

  const searchPolar = async (cell: string, role: LocationRole, lat: number, lon: number, now: number): Promise<Reply> => {
    const all = await redis.hgetall(cellKey(cell, 'h'))
    const hits: NearbyHit[] = []
    const flag = ROLES.indexOf(role)
    for (const [userId, value] of Object.entries(all)) {
      const [plat, plon, exp, flags] = value.split(',', 4)
      if (Number(exp) <= now || flags?.[flag] !== '1') continue
      hits.push({ userId, distanceM: haversineM(lat, lon, Number(plat), Number(plon)), card: polarCard(value) })
    }
    return { truncated: false, lastDistance: 0, hits }
  }

  const sweepCell = async (cell: string, now: number): Promise<number> => {
    if (isPolar(cell)) return redis.locSweepPolar(cellKey(cell, 'h'), now)
    let total = 0
    for (;;) {
      const n = await redis.locSweep(...cellKeys(cell), now, SWEEP_BATCH)
      total += n
      if (n < SWEEP_BATCH) return total
    }
  }

  const sweep = async () => {
    const now = Date.now()
    let total = 0
    let cursor = '0'
    do {
      const [next, cells] = await redis.sscan(cellsKey, cursor, 'COUNT', 200)
      cursor = next
      for (const n of await Promise.all(cells.map((cell) => sweepCell(cell, now)))) total += n
    } while (cursor !== '0')
    return total
  }

  const timer = setInterval(() => void sweep().catch(() => {}), SWEEP_INTERVAL_MS + Math.floor(Math.random() * 10_000))
  timer.unref()

  return {
    async set(userId, record) {
      const cell = cellOf(record.lat, record.lon)
      const exp = record.expiresAt.getTime()
      const now = Date.now()
      const flags = ROLE_FLAGS(record.roles)
      // All in one round trip: where the user was (swapped for where it is now), the new entry,
      // and the anchors when given.
      const [previous] = await Promise.all([
        redis.set(userKey(userId), cell, 'PXAT', exp, 'GET'),
        isPolar(cell)
          ? redis.locSetPolar(cellKey(cell, 'h'), userId, record.lat, record.lon, exp, flags, record.card, record.version)
          : redis.locSet(...cellKeys(cell), record.lon, record.lat, userId, exp, flags, record.card, record.version),
        record.anchors && redis.set(anchorsKey(userId), encodeAnchors(record.anchors.points), 'PXAT', record.anchors.expiresAt.getTime()),
      ])
      indexCell(cell, now)
      if (previous && previous !== cell) await removeFrom(previous, userId)
    },

    async update(userId, change) {
      const cell = await redis.get(userKey(userId))
      if (!cell) return
      const flags = ROLE_FLAGS(change.roles)
      if (isPolar(cell)) await redis.locUpdatePolar(cellKey(cell, 'h'), userId, flags, change.card, change.version, Date.now())
      else await redis.locUpdate(...cellKeys(cell), userId, flags, change.card, change.version, Date.now())
    },

    remove,

    async anchors(userId) {
      return decodeAnchors(await redis.get(anchorsKey(userId)))
    },

    async forget(userId) {
      await Promise.all([remove(userId), redis.del(anchorsKey(userId))])
    },

    async nearby(q) {
      const k = q.limit
      if (k <= 0) return []
      const now = Date.now()
      const roles = q.role ? [q.role] : ROLES
      const keys = hintKeys(q.lat, q.lon, q.role)
      let hint: number | undefined
      for (const key of keys) if ((hint = hints.get(key)) !== undefined) break
      // Start a little past the circle that held k users here lately (or at 250 m), and grow it.
      let r = hint === undefined ? 250 : Math.max(30, hint * Math.sqrt(k) * HINT_MARGIN)
      if (q.after) r = Math.max(r, q.after.distanceM * 1.2 + r)
      r = Math.min(r, q.radiusM)
      // A few more than wanted: the caller's own member may be among them, and only what lies a
      // meter nearer than the last one read is certain (k + 2 took a second round 1 time in 4).
      let count = k + 4
      for (;;) {
        const targets: Promise<Reply>[] = []
        for (const cell of cellsTouched(q.lat, q.lon, r)) {
          for (const role of roles) {
            targets.push(isPolar(cell) ? searchPolar(cell, role, q.lat, q.lon, now) : searchCell(cell, role, q.lat, q.lon, r, count, now))
          }
        }
        const replies = await Promise.all(targets)
        // Certain: every unexpired user nearer than `bound` has been seen.
        let bound = r + 0.5
        let truncated = false
        const best = new Map<string, NearbyHit>()
        for (const reply of replies) {
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
          return certain.slice(0, k)
        }
        if (truncated) count *= 4
        // Short of k: grow by what the density seen so far says is missing, and a little more.
        else r = Math.min(q.radiusM, r * Math.min(4, Math.max(1.3, Math.sqrt(k / Math.max(certain.length, 1)) * 1.2)))
      }
    },

    sweep,

    stop() {
      clearInterval(timer)
    },
  }
}
