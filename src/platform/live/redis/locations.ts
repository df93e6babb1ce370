import type { LocationRole, LocationStore } from '../types.js'
import type { RedisClient } from './client.js'
import { decodeAnchors, encodeAnchors, entryOf, entryTail, isPolar, packId, roleFlags, whereOf, AT_FLAGS, AT_LAT, AT_LON, cellOf } from './location-codec.js'
import { defineLocationCommands } from './location-scripts.js'
import { createLocationSearch } from './location-search.js'

export { cellOf, cellsTouched, CELL_PRECISION, packId, unpackId } from './location-codec.js'

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
// sphere), its categories (a search in some drops the others unread) and its card (so a search
// looks nothing else up). A write finds a user's member from the position its bucket says it was
// put at (a GEOSEARCH of 2 m there). The keys of the layout before this one (W, C, A, e, u, h per
// cell) go with a cell's first sweep, and its loc:user:<id> keys expire on their own.
// Cost per live user (README, "What the live map costs in Redis"): the GEO member, with a
// 40-byte card and one category, ~180 bytes; its place in the buckets ~35 bytes.

// The entry and member codec: location-codec.ts; the scripts: location-scripts.ts; the search:
// location-search.ts.

const SWEEP_INTERVAL_MS = 60_000
const SWEEP_BATCH = 500
const WHERE_BUCKETS = 65_536

export function createRedisLocationStore(redis: RedisClient, prefix: string): LocationStore & { stop(): void } {
  defineLocationCommands(redis)

  const cellKey = (cell: string, suffix: string) => `${prefix}loc:{${cell}}:${suffix}`
  const geoKeys = (cell: string) => [cellKey(cell, 'w'), cellKey(cell, 'c'), cellKey(cell, 'a')] as const
  const roleKey = (cell: string, role: LocationRole) => cellKey(cell, role === 'WORKER' ? 'w' : role === 'CLIENT' ? 'c' : 'a')
  // The bucket of a packed id: its last two bytes (a UUID's random ones).
  const whereKey = (id: Buffer) => `${prefix}loc:w:{${id.length >= 2 ? id.readUInt16BE(id.length - 2) % WHERE_BUCKETS : 0}}`
  const anchorsKey = (userId: string) => `${prefix}loc:anchors:${userId}`
  const cellsKey = `${prefix}loc:cells`
  const sweepLockKey = `${prefix}loc:sweeping`

  // Cells this process has put in the sweep index lately (a set add per write would be waste).
  const indexed = new Map<string, number>()
  const indexCell = (cell: string, now: number) => {
    const at = indexed.get(cell)
    if (at !== undefined && now - at < 600_000) return
    if (indexed.size > 100_000) indexed.clear()
    indexed.set(cell, now)
    void redis.sadd(cellsKey, cell).catch(() => indexed.delete(cell))
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

  const nearby = createLocationSearch(redis, { roleKey, polarKey: (cell) => cellKey(cell, 'd') })

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

    nearby,

    sweep,

    stop() {
      clearInterval(timer)
    },
  }
}
