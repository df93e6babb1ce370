import type { Result } from 'ioredis'
import { renewalStepMs } from '../sessions.js'
import type { SessionRecord, SessionStore } from '../types.js'
import type { RedisClient } from './client.js'

// Layout: `<p>sess:<token hash>` is a hash holding one session, expiring with it;
// `<p>usess:<user id>` maps the user's session ids to their token hashes. Each command touches
// one key, so the layout works unchanged on Redis Cluster, where sessions spread by token.

// Renews a session's idle expiry, unless it ended meanwhile (a plain HSET would bring it back).
const RENEW = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'used', ARGV[1], 'exp', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
`

declare module 'ioredis' {
  interface RedisCommander<Context> {
    sessionRenew(key: string, now: number, expiresAt: number): Result<number, Context>
  }
}

const FIELDS = ['id', 'user', 'ua', 'created', 'used', 'exp', 'max'] as const

export function createRedisSessionStore(redis: RedisClient, prefix: string): SessionStore {
  redis.defineCommand('sessionRenew', { numberOfKeys: 1, lua: RENEW })
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
    // One UNLINK a session: on a cluster, two sessions' keys are in two slots, which one command
    // can't touch.
    await Promise.all([
      ...entries.map((e) => redis.unlink(sessionKey(e.tokenHash))),
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
      // A plain read; the renewal is written only when it moves the expiry by a step, so a burst
      // of requests on one token costs one cheap read each, not a script run each.
      const key = sessionKey(tokenHash)
      const session = fromHash(await redis.hmget(key, ...FIELDS))
      if (!session) return null
      const at = now.getTime()
      if (at >= session.maxExpiresAt.getTime()) {
        await redis.unlink(key)
        return null
      }
      const renewed = Math.min(at + idleTtlSeconds * 1000, session.maxExpiresAt.getTime())
      if (Math.abs(renewed - session.expiresAt.getTime()) < renewalStepMs(idleTtlSeconds)) return session
      if (!(await redis.sessionRenew(key, at, renewed))) return null
      return { ...session, lastUsedAt: now, expiresAt: new Date(renewed) }
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
