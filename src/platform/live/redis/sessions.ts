import type { Redis, Result } from 'ioredis'
import type { SessionRecord, SessionStore } from '../types.js'

// Layout: `<p>sess:<token hash>` is a hash holding one session, expiring with it;
// `<p>usess:<user id>` maps the user's session ids to their token hashes. Each command touches
// one key, so the layout works unchanged on Redis Cluster.

// Reads a session and renews its idle expiry in one round trip.
const TOUCH = `
local v = redis.call('HMGET', KEYS[1], 'id', 'user', 'ua', 'created', 'max')
if not v[1] then return false end
local now = tonumber(ARGV[1])
local max = tonumber(v[5])
if now >= max then
  redis.call('DEL', KEYS[1])
  return false
end
local exp = math.min(now + tonumber(ARGV[2]), max)
redis.call('HSET', KEYS[1], 'used', now, 'exp', exp)
redis.call('PEXPIREAT', KEYS[1], exp)
return {v[1], v[2], v[3], v[4], v[5], tostring(exp)}
`

declare module 'ioredis' {
  interface RedisCommander<Context> {
    sessionTouch(key: string, now: number, idleMs: number): Result<string[] | null, Context>
  }
}

const FIELDS = ['id', 'user', 'ua', 'created', 'used', 'exp', 'max'] as const

export function createRedisSessionStore(redis: Redis, prefix: string): SessionStore {
  redis.defineCommand('sessionTouch', { numberOfKeys: 1, lua: TOUCH })
  const sessionKey = (tokenHash: string) => `${prefix}sess:${tokenHash}`
  const userKey = (userId: string) => `${prefix}usess:${userId}`

  const fromHash = (v: (string | null)[]): SessionRecord | null => {
    const [id, user, ua, created, used, exp, max] = v
    if (!id || !user) return null
    return {
      id,
      userId: user,
      userAgent: ua || null,
      createdAt: new Date(Number(created)),
      lastUsedAt: new Date(Number(used)),
      expiresAt: new Date(Number(exp)),
      maxExpiresAt: new Date(Number(max)),
    }
  }

  /** The user's sessions that still exist, oldest first, with their token hashes. */
  const live = async (userId: string) => {
    const byId = await redis.hgetall(userKey(userId))
    const ids = Object.keys(byId).sort() // UUIDv7: sorted by creation time
    const rows = await Promise.all(ids.map((id) => redis.hmget(sessionKey(byId[id]!), ...FIELDS)))
    const found: { tokenHash: string; session: SessionRecord }[] = []
    const gone: string[] = []
    ids.forEach((id, i) => {
      const session = fromHash(rows[i]!)
      if (session) found.push({ tokenHash: byId[id]!, session })
      else gone.push(id)
    })
    if (gone.length > 0) await redis.hdel(userKey(userId), ...gone)
    return found
  }

  const endMany = async (userId: string, entries: { tokenHash: string; session: SessionRecord }[]) => {
    if (entries.length === 0) return
    await Promise.all([
      redis.unlink(...entries.map((e) => sessionKey(e.tokenHash))),
      redis.hdel(userKey(userId), ...entries.map((e) => e.session.id)),
    ])
  }

  return {
    async create(tokenHash, s, maxPerUser) {
      const key = sessionKey(tokenHash)
      await redis
        .multi()
        .hset(key, {
          id: s.id,
          user: s.userId,
          ua: s.userAgent ?? '',
          created: s.createdAt.getTime(),
          used: s.lastUsedAt.getTime(),
          exp: s.expiresAt.getTime(),
          max: s.maxExpiresAt.getTime(),
        })
        .pexpireat(key, s.expiresAt.getTime())
        .exec()
      await redis.hset(userKey(s.userId), s.id, tokenHash)
      const sessions = await live(s.userId)
      if (sessions.length > maxPerUser) await endMany(s.userId, sessions.slice(0, sessions.length - maxPerUser))
    },

    async touch(tokenHash, now, idleTtlSeconds) {
      const v = await redis.sessionTouch(sessionKey(tokenHash), now.getTime(), idleTtlSeconds * 1000)
      if (!v) return null
      const [id, user, ua, created, max, exp] = v
      return {
        id: id!,
        userId: user!,
        userAgent: ua || null,
        createdAt: new Date(Number(created)),
        lastUsedAt: now,
        expiresAt: new Date(Number(exp)),
        maxExpiresAt: new Date(Number(max)),
      }
    },

    async list(userId) {
      return (await live(userId)).map((e) => e.session)
    },

    async end(tokenHash) {
      const key = sessionKey(tokenHash)
      const [[, values]] = (await redis.multi().hmget(key, ...FIELDS).unlink(key).exec()) as [[unknown, (string | null)[]]]
      const session = fromHash(values)
      if (session) await redis.hdel(userKey(session.userId), session.id)
      return session
    },

    async endById(userId, sessionId) {
      const entry = (await live(userId)).find((e) => e.session.id === sessionId)
      if (!entry) return false
      await endMany(userId, [entry])
      return true
    },

    async endAll(userId, exceptSessionId) {
      const ending = (await live(userId)).filter((e) => e.session.id !== exceptSessionId)
      await endMany(userId, ending)
      return ending.map((e) => e.session.id)
    },
  }
}
