import { createHash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import ngeohash from 'ngeohash'
import type { Result } from 'ioredis'
import { circleBounds, haversineM, insideRadius, MAX_GEO_LAT } from '../geo.js'
import type { GeoPoint, LocationRole, LocationStore, NearbyHit } from '../types.js'
import type { RedisClient } from './client.js'

// Layout, for Redis Cluster as for one server: the world is cut into coarse geohash cells
// (precision 4, about 39 x 20 km at the equator). A cell's keys share the cell as hash tag, so
// one script touches one cell in one slot:
//   <p>loc:{<cell>}:w|c|a   GEO per role (WORKER, CLIENT, ADMIN); a member is a user's whole
//                           record: its packed id's length (1 byte), the packed id, its entry
//   <p>loc:{<cell>}:m       the earliest expiry in the cell (ms) as last known: the sweep skips a
//                           cell while it lies ahead
//   <p>loc:{pn}:d, {ps}:d   the polar caps beyond Redis GEO's ±85.05° (a few users): a hash of
//                           packed id -> entry
//   <p>loc:w:{<bucket>}     hash packed user id -> where its member was put (lat, lon as in an
//                           entry) and the cell, in 65,536 buckets by the id's last bytes (small
//                           hashes, which Redis keeps as listpacks)
//   <p>loc:anchors:<id>     the user's anchors (float64 pairs), expiring on their own
//   <p>loc:cells            every cell ever used, for the background sweep
// A packed user id is the 16 bytes of a UUID (any other id: its UTF-8 text, with a 0xff byte
// after it when that is 16 bytes long). An entry is a fixed header and the card:
//   expiry ms (uint48) | lat, lon (int32, 1e-7 degree) | role flags (1 byte) | version (uint48) |
//   number of categories (1 byte) | 8 bytes of SHA-256 of each category id | the card (UTF-8)
// A search is one plain GEOSEARCH per cell and role, and its members are the answer: each
// carries its expiry (GEO members can't expire one by one, so a search drops the expired ones it
// reads, and a sweep deletes them), its position (distances are measured here, on Redis GEO's
// sphere) and its card (so a search looks nothing else up). In categories, a script runs the
// GEOSEARCH and answers only the members in them, so a filtered search sends no more than it
// answers. A write finds a user's member from the position its bucket says it was put at (a
// GEOSEARCH of 2 m there). The keys of the layout before this one (W, C, A, e, u, h per cell) go
// with a cell's first sweep, and its loc:user:<id> keys expire on their own.
// Cost per live user (README, "What the live map costs in Redis"): the GEO member, with a
// 40-byte card and one category, ~180 bytes; its place in the buckets ~35 bytes.

export const CELL_PRECISION = 4
const ROLES: readonly LocationRole[] = ['WORKER', 'CLIENT', 'ADMIN']
const ROLE_BIT: Record<LocationRole, number> = { WORKER: 1, CLIENT: 2, ADMIN: 4 }
const SWEEP_INTERVAL_MS = 60_000
// A search's first radius is the hint's times this; a hint moves this far towards each new
// search's finding. On 1M workers in a metro area, 1.09 rounds a search (the last value with a
// 1.2 margin: 1.12) and 5-13% less Redis time; the k-th nearest's distance varies by ~11% from
// one point to the next, so a smaller margin takes more second rounds than it saves.
const HINT_MARGIN = 1.15
const HINT_WEIGHT = 0.3
const SWEEP_BATCH = 500
const WHERE_BUCKETS = 65_536

// Entry offsets (0-based in JavaScript; Lua's string.sub counts from 1).
const AT_LAT = 6
const AT_LON = 10
const AT_FLAGS = 14
const AT_CATS = 21
const HEADER = 22
const CAT_BYTES = 8

// A GEO member is a user's whole record: the length of its packed id (1 byte), the id, and its
// entry. A script finds a user's member from the position it was put at (a GEOSEARCH of 2 m
// there, the member whose id it is), which the bucket of where users are keeps beside the cell.
const FIND = `
local function find(id, lon, lat)
  local n = #id
  for i = 1, 3 do
    for _, m in ipairs(redis.call('GEOSEARCH', KEYS[i], 'FROMLONLAT', lon, lat, 'BYRADIUS', 2, 'm')) do
      if string.byte(m, 1) == n and string.sub(m, 2, n + 1) == id then return m end
    end
  end
end
local function lower_m(exp)
  local m = tonumber(redis.call('GET', KEYS[4]))
  if not m or exp < m then redis.call('SET', KEYS[4], string.format('%.0f', exp)) end
end
`

// Puts a user at a place until an expiry (KEYS: w, c, a, m). ARGV: id, entry, lon, lat, and
// where its member was in this cell (empty when elsewhere or nowhere). A member of a newer
// version keeps its roles, categories and card; the place and expiry are the new ones.
const SET = `${FIND}
local id, entry = ARGV[1], ARGV[2]
local old = ARGV[5] ~= '' and find(id, ARGV[5], ARGV[6])
if old then
  local o = #id + 1
  if struct.unpack('>I6', old, o + 16) > struct.unpack('>I6', entry, 16) then entry = string.sub(entry, 1, 14) .. string.sub(old, o + 15) end
  for i = 1, 3 do redis.call('ZREM', KEYS[i], old) end
end
local member = string.char(#id) .. id .. entry
local flags = string.byte(entry, 15)
for i = 1, 3 do
  if bit.band(flags, 2 ^ (i - 1)) ~= 0 then redis.call('GEOADD', KEYS[i], ARGV[3], ARGV[4], member) end
end
lower_m(struct.unpack('>I6', entry))
`

// New roles, categories and card, where the user is and until it expires; 0 when it is not
// there (anymore) or a newer version is. ARGV: id, the entry from its flags on, now, lon, lat.
const UPDATE = `${FIND}
local id, tail = ARGV[1], ARGV[2]
local old = find(id, ARGV[4], ARGV[5])
if not old then return 0 end
local o = #id + 1
if struct.unpack('>I6', old, o + 1) <= tonumber(ARGV[3]) or struct.unpack('>I6', old, o + 16) > struct.unpack('>I6', tail, 2) then return 0 end
for i = 1, 3 do redis.call('ZREM', KEYS[i], old) end
local member = string.sub(old, 1, o + 14) .. tail
local flags = string.byte(tail, 1)
for i = 1, 3 do
  if bit.band(flags, 2 ^ (i - 1)) ~= 0 then redis.call('GEOADD', KEYS[i], ARGV[4], ARGV[5], member) end
end
return 1
`

const REMOVE = `${FIND}
local old = find(ARGV[1], ARGV[2], ARGV[3])
if not old then return 0 end
for i = 1, 3 do redis.call('ZREM', KEYS[i], old) end
return 1
`

// One batch of the sweep of a role's GEO key (KEYS[1]): the members ZSCAN gives from the
// cursor, the expired ones deleted. ARGV: cursor, now, count, the earliest expiry kept so far
// ('' for none yet). Answers {cursor, the ids gone, earliest kept}.
const SWEEP = `
local now = tonumber(ARGV[2])
local res = redis.call('ZSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[3])
local kv = res[2]
local gone, ids = {}, {}
local min = tonumber(ARGV[4])
for i = 1, #kv, 2 do
  local m = kv[i]
  local o = string.byte(m, 1) + 1
  local exp = struct.unpack('>I6', m, o + 1)
  if exp <= now then
    gone[#gone + 1] = m
    ids[#ids + 1] = string.sub(m, 2, o)
  elseif not min or exp < min then min = exp end
end
if #gone > 0 then redis.call('ZREM', KEYS[1], unpack(gone)) end
return {res[1], ids, min and string.format('%.0f', min) or ''}
`

// The polar caps have no GEO: a hash of entries (KEYS: d, m) and the same rules.
const SET_POLAR = `
local id, entry = ARGV[1], ARGV[2]
local old = redis.call('HGET', KEYS[1], id)
if old and struct.unpack('>I6', old, 16) > struct.unpack('>I6', entry, 16) then entry = string.sub(entry, 1, 14) .. string.sub(old, 15) end
redis.call('HSET', KEYS[1], id, entry)
local exp = struct.unpack('>I6', entry)
local m = tonumber(redis.call('GET', KEYS[2]))
if not m or exp < m then redis.call('SET', KEYS[2], string.format('%.0f', exp)) end
`
const UPDATE_POLAR = `
local id, tail = ARGV[1], ARGV[2]
local old = redis.call('HGET', KEYS[1], id)
if not old or struct.unpack('>I6', old) <= tonumber(ARGV[3]) or struct.unpack('>I6', old, 16) > struct.unpack('>I6', tail, 2) then return 0 end
redis.call('HSET', KEYS[1], id, string.sub(old, 1, 14) .. tail)
return 1
`
const SWEEP_POLAR = `
local now = tonumber(ARGV[1])
local all = redis.call('HGETALL', KEYS[1])
local ids = {}
local min
for i = 1, #all, 2 do
  local exp = struct.unpack('>I6', all[i + 1])
  if exp <= now then ids[#ids + 1] = all[i] elseif not min or exp < min then min = exp end
end
if #ids > 0 then redis.call('HDEL', KEYS[1], unpack(ids)) end
return {'0', ids, min and string.format('%.0f', min) or ''}
`

// In categories (ARGV[6]: their 8-byte hashes one after the other): one cell and role, the
// nearest COUNT members within the radius, of which those in the categories are answered.
// Answers {how many GEOSEARCH found, the last one found, the members answered...}.
const SEARCH_IN = `
local found = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', ARGV[1], ARGV[2], 'BYRADIUS', ARGV[3], 'm', 'ASC', 'COUNT', ARGV[4])
local n = #found
if n == 0 then return {0} end
local now = tonumber(ARGV[5])
local want = {}
for i = 1, #ARGV[6], 8 do want[string.sub(ARGV[6], i, i + 7)] = true end
local out = {n, found[n]}
for i = 1, n do
  local m = found[i]
  local o = string.byte(m, 1) + 1
  if struct.unpack('>I6', m, o + 1) > now then
    local c = o + 23
    for j = 0, string.byte(m, o + 22) - 1 do
      if want[string.sub(m, c + 8 * j, c + 8 * j + 7)] then
        out[#out + 1] = m
        break
      end
    end
  end
end
return out
`

// Where users are (the position their member was put at, lat and lon as in an entry, then the
// cell): swap in a new place (answering the one before), take one out, and drop ids the sweep
// deleted from a cell unless they are somewhere else by now.
const WHERE_SET = `
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return old
`
const WHERE_TAKE = `
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then redis.call('HDEL', KEYS[1], ARGV[1]) end
return old
`
const WHERE_DROP = `
local n = 0
for i = 2, #ARGV do
  local at = redis.call('HGET', KEYS[1], ARGV[i])
  if at and string.sub(at, 9) == ARGV[1] then n = n + redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return n
`

type Arg = string | Buffer | number
declare module 'ioredis' {
  interface RedisCommander<Context> {
    locSet(w: string, c: string, a: string, m: string, id: Buffer, entry: Buffer, lon: Arg, lat: Arg, oldLon: Arg, oldLat: Arg): Result<null, Context>
    locUpdate(w: string, c: string, a: string, id: Buffer, tail: Buffer, now: number, lon: Arg, lat: Arg): Result<number, Context>
    locRemove(w: string, c: string, a: string, id: Buffer, lon: Arg, lat: Arg): Result<number, Context>
    locSweepBuffer(geo: string, cursor: Arg, now: number, count: number, kept: Arg): Result<[Buffer, Buffer[], Buffer], Context>
    locSetPolar(d: string, m: string, id: Buffer, entry: Buffer): Result<null, Context>
    locUpdatePolar(d: string, id: Buffer, tail: Buffer, now: number): Result<number, Context>
    locSweepPolarBuffer(d: string, now: number): Result<[Buffer, Buffer[], Buffer], Context>
    locSearchInBuffer(geo: string, lon: number, lat: number, radius: number, count: number, now: number, cats: Buffer): Result<unknown[], Context>
    locWhereSetBuffer(key: string, id: Buffer, where: Buffer): Result<Buffer | null, Context>
    locWhereTakeBuffer(key: string, id: Buffer): Result<Buffer | null, Context>
    locWhereDrop(key: string, cell: string, ...ids: Buffer[]): Result<number, Context>
  }
}

const isPolar = (cell: string) => cell === 'pn' || cell === 'ps'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** A user id as stored: a UUID's 16 bytes, or any other id's text (never 16 bytes long). */
export function packId(id: string): Buffer {
  if (UUID.test(id)) return Buffer.from(id.replaceAll('-', ''), 'hex')
  const text = Buffer.from(id, 'utf8')
  return text.length === 16 ? Buffer.concat([text, Buffer.from([0xff])]) : text
}

export function unpackId(packed: Buffer): string {
  if (packed.length === 16) {
    const h = packed.toString('hex')
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
  }
  return (packed.length === 17 && packed[16] === 0xff ? packed.subarray(0, 16) : packed).toString('utf8')
}

// Categories as 8 bytes of their id's SHA-256 (a category id is long; 2^64 leaves no collision).
const categoryHashes = new LRUCache<string, Buffer>({ max: 10_000 })
function categoryHash(id: string): Buffer {
  let hash = categoryHashes.get(id)
  if (!hash) categoryHashes.set(id, (hash = createHash('sha256').update(id).digest().subarray(0, CAT_BYTES)))
  return hash
}

const roleFlags = (roles: readonly LocationRole[]) => roles.reduce((flags, role) => flags | ROLE_BIT[role], 0)
const fixed = (degrees: number) => Math.round(degrees * 1e7)

/** An entry from its flags on: flags, version, categories, card. */
function entryTail(flags: number, version: number, categories: readonly string[] | undefined, card: string): Buffer {
  const cats = [...new Set(categories ?? [])].slice(0, 255)
  const head = Buffer.alloc(1 + 6 + 1 + CAT_BYTES * cats.length)
  head[0] = flags
  // Versions are times in ms (or small counts): whole, and within 48 bits.
  head.writeUIntBE(Math.min(2 ** 48 - 1, Math.max(0, Math.floor(version))), 1, 6)
  head[7] = cats.length
  cats.forEach((id, i) => categoryHash(id).copy(head, 8 + CAT_BYTES * i))
  return Buffer.concat([head, Buffer.from(card, 'utf8')])
}

function entryOf(lat: number, lon: number, expiresAt: number, tail: Buffer): Buffer {
  const head = Buffer.alloc(AT_FLAGS)
  head.writeUIntBE(expiresAt, 0, 6)
  // Rounded within what Redis GEO takes (and short of ±180°, where its geohash wraps): the
  // member goes at this position and is found there again.
  const band = Math.floor(MAX_GEO_LAT * 1e7)
  head.writeInt32BE(Math.abs(lat) <= MAX_GEO_LAT ? Math.max(-band, Math.min(band, fixed(lat))) : fixed(lat), AT_LAT)
  head.writeInt32BE(Math.max(-1_799_999_999, Math.min(1_799_999_999, fixed(lon))), AT_LON)
  return Buffer.concat([head, tail])
}

interface Entry {
  expiresAt: number
  lat: number
  lon: number
  flags: number
  categories: Buffer
  card: string
}
function readEntry(e: Buffer): Entry {
  const n = e[AT_CATS]!
  return {
    expiresAt: e.readUIntBE(0, 6),
    lat: e.readInt32BE(AT_LAT) / 1e7,
    lon: e.readInt32BE(AT_LON) / 1e7,
    flags: e[AT_FLAGS]!,
    categories: e.subarray(HEADER, HEADER + CAT_BYTES * n),
    card: e.toString('utf8', HEADER + CAT_BYTES * n),
  }
}

/** Whether an entry's categories (8-byte hashes) hold one of those wanted. */
function inCategories(categories: Buffer, wanted: Buffer): boolean {
  for (let i = 0; i < categories.length; i += CAT_BYTES) {
    for (let j = 0; j < wanted.length; j += CAT_BYTES) if (categories.compare(wanted, j, j + CAT_BYTES, i, i + CAT_BYTES) === 0) return true
  }
  return false
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
  /** Members GEOSEARCH read, and hits answered (for the share of a filter's matches). */
  read: number
  hits: NearbyHit[]
}

// Anchors as a 0x01 byte and a float64 latitude and longitude a point (exact, 16 bytes where the
// text of the layout before, still read, took about 36).
function encodeAnchors(points: readonly GeoPoint[]): Buffer {
  const out = Buffer.alloc(1 + 16 * points.length)
  out[0] = 1
  points.forEach((p, i) => {
    out.writeDoubleBE(p.lat, 1 + 16 * i)
    out.writeDoubleBE(p.lon, 9 + 16 * i)
  })
  return out
}
function decodeAnchors(stored: Buffer | null): GeoPoint[] {
  if (!stored || stored.length === 0) return []
  if (stored[0] === 1) {
    const points: GeoPoint[] = []
    for (let at = 1; at + 16 <= stored.length; at += 16) points.push({ lat: stored.readDoubleBE(at), lon: stored.readDoubleBE(at + 8) })
    return points
  }
  return stored
    .toString('utf8')
    .split(';')
    .map((pair) => {
      const [lat, lon] = pair.split(',').map(Number)
      return { lat: lat!, lon: lon! }
    })
}

export function createRedisLocationStore(redis: RedisClient, prefix: string): LocationStore & { stop(): void } {
  redis.defineCommand('locSet', { numberOfKeys: 4, lua: SET })
  redis.defineCommand('locUpdate', { numberOfKeys: 3, lua: UPDATE })
  redis.defineCommand('locRemove', { numberOfKeys: 3, lua: REMOVE })
  redis.defineCommand('locSweep', { numberOfKeys: 1, lua: SWEEP })
  redis.defineCommand('locSetPolar', { numberOfKeys: 2, lua: SET_POLAR })
  redis.defineCommand('locUpdatePolar', { numberOfKeys: 1, lua: UPDATE_POLAR })
  redis.defineCommand('locSweepPolar', { numberOfKeys: 1, lua: SWEEP_POLAR })
  redis.defineCommand('locSearchIn', { numberOfKeys: 1, lua: SEARCH_IN })
  redis.defineCommand('locWhereSet', { numberOfKeys: 1, lua: WHERE_SET })
  redis.defineCommand('locWhereTake', { numberOfKeys: 1, lua: WHERE_TAKE })
  redis.defineCommand('locWhereDrop', { numberOfKeys: 1, lua: WHERE_DROP })

  const cellKey = (cell: string, suffix: string) => `${prefix}loc:{${cell}}:${suffix}`
  const geoKeys = (cell: string) => [cellKey(cell, 'w'), cellKey(cell, 'c'), cellKey(cell, 'a')] as const
  const roleKey = (cell: string, role: LocationRole) => cellKey(cell, role === 'WORKER' ? 'w' : role === 'CLIENT' ? 'c' : 'a')
  // The bucket of a packed id: its last two bytes (a UUID's random ones).
  const whereKey = (id: Buffer) => `${prefix}loc:w:{${id.length >= 2 ? id.readUInt16BE(id.length - 2) % WHERE_BUCKETS : 0}}`
  const anchorsKey = (userId: string) => `${prefix}loc:anchors:${userId}`
  const cellsKey = `${prefix}loc:cells`
  const sweepLockKey = `${prefix}loc:sweeping`

  /** Where a user is, as its bucket keeps it: the position its member was put at, and the cell. */
  const whereOf = (stored: Buffer | null) =>
    stored && stored.length > 8 ? { cell: stored.toString('latin1', 8), lat: stored.readInt32BE(0) / 1e7, lon: stored.readInt32BE(4) / 1e7 } : undefined

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
  // A search in categories has hints of its own, and learns what share of what it reads matches.
  const hints = new LRUCache<string, number>({ max: 100_000 })
  const shares = new LRUCache<string, number>({ max: 10_000 })
  const HINT_PRECISIONS = [6, 5, 4]
  const hintKeys = (lat: number, lon: number, role: LocationRole | undefined, filter: string) => {
    const hash = ngeohash.encode(lat, lon, HINT_PRECISIONS[0])
    return HINT_PRECISIONS.map((p) => `${hash.slice(0, p)}:${role ?? '*'}:${filter}`)
  }

  const removeFrom = async (where: { cell: string; lat: number; lon: number }, id: Buffer) => {
    if (isPolar(where.cell)) await redis.hdel(cellKey(where.cell, 'd'), id as unknown as string)
    else await redis.locRemove(...geoKeys(where.cell), id, where.lon, where.lat)
  }

  const remove = async (userId: string) => {
    const id = packId(userId)
    const where = whereOf(await redis.locWhereTakeBuffer(whereKey(id), id))
    if (where) await removeFrom(where, id)
  }

  /** A GEO member read: its user id and entry. */
  const memberOf = (member: Buffer) => {
    const n = member[0]!
    return { id: member.subarray(1, 1 + n), entry: member.subarray(1 + n) }
  }
  const hitOf = (id: Buffer, entry: Entry, lat: number, lon: number): NearbyHit => ({ userId: unpackId(id), distanceM: haversineM(lat, lon, entry.lat, entry.lon), card: entry.card })

  // One cell, one role: the nearest `count` members within the radius, which are the answer
  // (one plain GEOSEARCH; in categories, a script that answers the members in them). From a
  // centre beyond Redis GEO's band (near a pole): everything in a circle around the nearest
  // point of the band that holds the real one (few people live there, so no COUNT).
  const searchCell = async (cell: string, role: LocationRole, lat: number, lon: number, radiusM: number, count: number, now: number, cats: Buffer | undefined): Promise<Reply> => {
    const key = roleKey(cell, role)
    const polarCentre = Math.abs(lat) > MAX_GEO_LAT
    const edge = Math.sign(lat) * MAX_GEO_LAT
    // Redis measures from its 52-bit geohash of the point, at most ~0.4 m away from the
    // entry's: the search reaches a meter further, and a cut-off COUNT makes certain only what
    // is 1 m nearer than its last.
    const [fromLat, reach, limit] = polarCentre ? [edge, radiusM + 0.5 + haversineM(lat, lon, edge, lon) + 1, 1_000_000] : [lat, radiusM + 1.5, count]
    let found: number
    let members: Buffer[]
    let last: Buffer | undefined
    if (cats) {
      const reply = await redis.locSearchInBuffer(key, lon, fromLat, reach, limit, now, cats)
      found = Number(reply[0])
      last = reply[1] as Buffer | undefined
      members = reply.slice(2) as Buffer[]
    } else {
      members = (await redis.callBuffer('GEOSEARCH', key, 'FROMLONLAT', lon, fromLat, 'BYRADIUS', reach, 'm', 'ASC', 'COUNT', limit)) as Buffer[]
      found = members.length
      last = members[found - 1]
    }
    const hits: NearbyHit[] = []
    for (const member of members) {
      const { id, entry } = memberOf(member)
      const e = readEntry(entry)
      if (e.expiresAt > now) hits.push(hitOf(id, e, lat, lon))
    }
    const truncated = !polarCentre && found === limit
    const lastDistance = truncated && last ? (({ entry }) => haversineM(lat, lon, entry.readInt32BE(AT_LAT) / 1e7, entry.readInt32BE(AT_LON) / 1e7))(memberOf(last)) - 1 : 0
    return { truncated, lastDistance, read: found, hits }
  }

  const searchPolar = async (cell: string, role: LocationRole, lat: number, lon: number, now: number, cats: Buffer | undefined): Promise<Reply> => {
    const all = (await redis.callBuffer('HGETALL', cellKey(cell, 'd'))) as Buffer[]
    const hits: NearbyHit[] = []
    for (let i = 0; i < all.length; i += 2) {
      const entry = readEntry(all[i + 1]!)
      if (entry.expiresAt <= now || !(entry.flags & ROLE_BIT[role]) || (cats && !inCategories(entry.categories, cats))) continue
      hits.push(hitOf(all[i]!, entry, lat, lon))
    }
    return { truncated: false, lastDistance: 0, read: all.length / 2, hits }
  }

  // The sweep of one cell: skipped while its earliest expiry lies ahead; else each role's GEO
  // key in batches (a polar cap's hash at once), the expired members deleted and the earliest
  // expiry kept written down (one written meanwhile by a post the scan did not see is swept
  // late, never answered). The users it deleted leave the buckets of where users are (unless
  // they are somewhere else by now). The older layouts' keys of the cell go first.
  const sweepCell = async (cell: string, now: number): Promise<number> => {
    const mKey = cellKey(cell, 'm')
    const [, earliest] = await Promise.all([
      redis.unlink(...['W', 'C', 'A', 'e', 'u', 'h'].map((suffix) => cellKey(cell, suffix))),
      redis.get(mKey),
    ])
    if (earliest !== null && Number(earliest) > now) return 0
    const gone = new Map<string, Buffer>()
    let kept = ''
    for (const key of isPolar(cell) ? [cellKey(cell, 'd')] : geoKeys(cell)) {
      let cursor = '0'
      do {
        const [next, ids, min] = isPolar(cell) ? await redis.locSweepPolarBuffer(key, now) : await redis.locSweepBuffer(key, cursor, now, SWEEP_BATCH, kept)
        cursor = next.toString()
        kept = min.toString()
        for (const id of ids) gone.set(id.toString('hex'), id)
      } while (cursor !== '0')
    }
    await (kept ? redis.set(mKey, kept) : redis.del(mKey))
    const byBucket = new Map<string, Buffer[]>()
    for (const id of gone.values()) {
      const key = whereKey(id)
      byBucket.set(key, [...(byBucket.get(key) ?? []), id])
    }
    await Promise.all([...byBucket].map(([key, ids]) => redis.locWhereDrop(key, cell, ...ids)))
    return gone.size
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

  // The background sweep: one process in an interval does it (the others find the lock taken).
  const timer = setInterval(() => {
    void (async () => {
      if ((await redis.set(sweepLockKey, '1', 'PX', SWEEP_INTERVAL_MS - 5_000, 'NX')) === 'OK') await sweep()
    })().catch(() => {})
  }, SWEEP_INTERVAL_MS + Math.floor(Math.random() * 10_000))
  timer.unref()

  return {
    async set(userId, record) {
      const cell = cellOf(record.lat, record.lon)
      const id = packId(userId)
      if (id.length > 255) throw new Error('user ids are at most 255 bytes')
      const exp = record.expiresAt.getTime()
      const entry = entryOf(record.lat, record.lon, exp, entryTail(roleFlags(record.roles), record.version, record.categories, record.card))
      // The position as stored (1e-7 degree): the member goes there, and is found there again.
      const [lat, lon] = [entry.readInt32BE(AT_LAT) / 1e7, entry.readInt32BE(AT_LON) / 1e7]
      const place = Buffer.concat([entry.subarray(AT_LAT, AT_FLAGS), Buffer.from(cell, 'latin1')])
      // Where the user was, swapped for where it is now (one round trip), then the cell, which
      // replaces the user's member there if it was there; else the cell it was in loses it. The
      // anchors beside it, when given.
      const [stored] = await Promise.all([
        redis.locWhereSetBuffer(whereKey(id), id, place),
        record.anchors && redis.set(anchorsKey(userId), encodeAnchors(record.anchors.points), 'PXAT', record.anchors.expiresAt.getTime()),
      ])
      const previous = whereOf(stored)
      const here = previous?.cell === cell ? previous : undefined
      await Promise.all([
        isPolar(cell)
          ? redis.locSetPolar(cellKey(cell, 'd'), cellKey(cell, 'm'), id, entry)
          : redis.locSet(...geoKeys(cell), cellKey(cell, 'm'), id, entry, lon, lat, here?.lon ?? '', here?.lat ?? ''),
        previous && !here && removeFrom(previous, id),
      ])
      indexCell(cell, Date.now())
    },

    async update(userId, change) {
      const id = packId(userId)
      const where = whereOf(await redis.hgetBuffer(whereKey(id), id as unknown as string))
      if (!where) return
      const tail = entryTail(roleFlags(change.roles), change.version, change.categories, change.card)
      if (isPolar(where.cell)) await redis.locUpdatePolar(cellKey(where.cell, 'd'), id, tail, Date.now())
      else await redis.locUpdate(...geoKeys(where.cell), id, tail, Date.now(), where.lon, where.lat)
    },

    remove,

    async anchors(userId) {
      return decodeAnchors(await redis.getBuffer(anchorsKey(userId)))
    },

    async forget(userId) {
      await Promise.all([remove(userId), redis.del(anchorsKey(userId))])
    },

    async nearby(q) {
      const k = q.limit
      if (k <= 0) return []
      if (q.categories && q.categories.size === 0) return []
      const now = Date.now()
      const roles = q.role ? [q.role] : ROLES
      const cats = q.categories && Buffer.concat([...q.categories].sort().map(categoryHash))
      const filter = cats ? createHash('sha1').update(cats).digest('base64').slice(0, 12) : ''
      const keys = hintKeys(q.lat, q.lon, q.role, filter)
      let hint: number | undefined
      for (const key of keys) if ((hint = hints.get(key)) !== undefined) break
      // Start a little past the circle that held k users here lately (or at 250 m), and grow it.
      let r = hint === undefined ? 250 : Math.max(30, hint * Math.sqrt(k) * HINT_MARGIN)
      if (q.after) r = Math.max(r, q.after.distanceM * 1.2 + r)
      r = Math.min(r, q.radiusM)
      // A few more than wanted: the caller's own member may be among them, and only what lies a
      // meter nearer than the last one read is certain (k + 2 took a second round 1 time in 4).
      // In categories, as many more as the share of matches read lately says.
      const share = cats ? (shares.get(filter) ?? 0.5) : 1
      let count = Math.ceil((k + 4) / Math.max(share, 0.02) * (cats ? 1.2 : 1))
      let read = 0
      let matched = 0
      for (;;) {
        const targets: Promise<Reply>[] = []
        for (const cell of cellsTouched(q.lat, q.lon, r)) {
          for (const role of roles) {
            targets.push(isPolar(cell) ? searchPolar(cell, role, q.lat, q.lon, now, cats) : searchCell(cell, role, q.lat, q.lon, r, count, now, cats))
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
          if (cats && read >= 20) {
            const seen = shares.get(filter)
            const found = matched / read
            shares.set(filter, seen === undefined ? found : seen + HINT_WEIGHT * (found - seen))
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
