import { createHash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import ngeohash from 'ngeohash'
import { circleBounds, MAX_GEO_LAT } from '../geo.js'
import type { GeoPoint, LocationRole } from '../types.js'

// How the Redis live map writes what it keeps (the layout itself: locations.ts): packed user ids,
// entries, GEO members, cells and anchors.

export const CELL_PRECISION = 4
export const ROLES: readonly LocationRole[] = ['WORKER', 'CLIENT', 'ADMIN']
export const ROLE_BIT: Record<LocationRole, number> = { WORKER: 1, CLIENT: 2, ADMIN: 4 }

// Entry offsets (0-based in JavaScript; Lua's string.sub counts from 1).
export const AT_LAT = 6
export const AT_LON = 10
export const AT_FLAGS = 14
export const AT_CATS = 21
export const HEADER = 22
export const CAT_BYTES = 8

export const isPolar = (cell: string) => cell === 'pn' || cell === 'ps'

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
export function categoryHash(id: string): Buffer {
  let hash = categoryHashes.get(id)
  if (!hash) categoryHashes.set(id, (hash = createHash('sha256').update(id).digest().subarray(0, CAT_BYTES)))
  return hash
}

export const roleFlags = (roles: readonly LocationRole[]) => roles.reduce((flags, role) => flags | ROLE_BIT[role], 0)
const fixed = (degrees: number) => Math.round(degrees * 1e7)

/** An entry from its flags on: flags, version, categories, card. */
export function entryTail(flags: number, version: number, categories: readonly string[] | undefined, card: string): Buffer {
  const cats = [...new Set(categories ?? [])].slice(0, 255)
  const head = Buffer.alloc(1 + 6 + 1 + CAT_BYTES * cats.length)
  head[0] = flags
  // Versions are times in ms (or small counts): whole, and within 48 bits.
  head.writeUIntBE(Math.min(2 ** 48 - 1, Math.max(0, Math.floor(version))), 1, 6)
  head[7] = cats.length
  cats.forEach((id, i) => categoryHash(id).copy(head, 8 + CAT_BYTES * i))
  return Buffer.concat([head, Buffer.from(card, 'utf8')])
}

export function entryOf(lat: number, lon: number, expiresAt: number, tail: Buffer): Buffer {
  const head = Buffer.alloc(AT_FLAGS)
  head.writeUIntBE(expiresAt, 0, 6)
  // Rounded within what Redis GEO takes (and short of ±180°, where its geohash wraps): the
  // member goes at this position and is found there again.
  const band = Math.floor(MAX_GEO_LAT * 1e7)
  head.writeInt32BE(Math.abs(lat) <= MAX_GEO_LAT ? Math.max(-band, Math.min(band, fixed(lat))) : fixed(lat), AT_LAT)
  head.writeInt32BE(Math.max(-1_799_999_999, Math.min(1_799_999_999, fixed(lon))), AT_LON)
  return Buffer.concat([head, tail])
}

export interface Entry {
  expiresAt: number
  lat: number
  lon: number
  flags: number
  categories: Buffer
  card: string
}
export function readEntry(e: Buffer): Entry {
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

/** A GEO member read: its user id and entry. */
export const memberOf = (member: Buffer) => {
  const n = member[0]!
  return { id: member.subarray(1, 1 + n), entry: member.subarray(1 + n) }
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

/** Where a user is, as its bucket keeps it: the position its member was put at, and the cell. */
export const whereOf = (stored: Buffer | null) =>
  stored && stored.length > 8 ? { cell: stored.toString('latin1', 8), lat: stored.readInt32BE(0) / 1e7, lon: stored.readInt32BE(4) / 1e7 } : undefined

// Anchors as a 0x01 byte and a float64 latitude and longitude a point (exact, 16 bytes where the
// text of the layout before, still read, took about 36).
export function encodeAnchors(points: readonly GeoPoint[]): Buffer {
  const out = Buffer.alloc(1 + 16 * points.length)
  out[0] = 1
  points.forEach((p, i) => {
    out.writeDoubleBE(p.lat, 1 + 16 * i)
    out.writeDoubleBE(p.lon, 9 + 16 * i)
  })
  return out
}
export function decodeAnchors(stored: Buffer | null): GeoPoint[] {
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
