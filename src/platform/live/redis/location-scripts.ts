import type { Result } from 'ioredis'
import type { RedisClient } from './client.js'

// The Lua scripts of the Redis live map (its layout: locations.ts), and their commands.

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
    locWhereSetBuffer(key: string, id: Buffer, where: Buffer): Result<Buffer | null, Context>
    locWhereTakeBuffer(key: string, id: Buffer): Result<Buffer | null, Context>
    locWhereDrop(key: string, cell: string, ...ids: Buffer[]): Result<number, Context>
  }
}

/** Defines the live map's commands on a client (each script is sent once, then run by its hash). */
export function defineLocationCommands(redis: RedisClient) {
  redis.defineCommand('locSet', { numberOfKeys: 4, lua: SET })
  redis.defineCommand('locUpdate', { numberOfKeys: 3, lua: UPDATE })
  redis.defineCommand('locRemove', { numberOfKeys: 3, lua: REMOVE })
  redis.defineCommand('locSweep', { numberOfKeys: 1, lua: SWEEP })
  redis.defineCommand('locSetPolar', { numberOfKeys: 2, lua: SET_POLAR })
  redis.defineCommand('locUpdatePolar', { numberOfKeys: 1, lua: UPDATE_POLAR })
  redis.defineCommand('locSweepPolar', { numberOfKeys: 1, lua: SWEEP_POLAR })
  redis.defineCommand('locWhereSet', { numberOfKeys: 1, lua: WHERE_SET })
  redis.defineCommand('locWhereTake', { numberOfKeys: 1, lua: WHERE_TAKE })
  redis.defineCommand('locWhereDrop', { numberOfKeys: 1, lua: WHERE_DROP })
}
