import { LRUCache } from 'lru-cache'
import type { SessionsStore, StoredAuth } from './store.js'
import type { Auth } from './types.js'

// What each process keeps: authentications by token hash, each dropped when its user changes
// anywhere. Only sessions that stand are kept (an unknown token is never cached), so a flood of
// made-up tokens can't fill it; at most `cacheSize`, the least recently used go first. Uses of
// sessions renew their idle expiry here at once, and in the database by steps, in batches.

const RENEW_BATCH = 1_000
/**
 * An authentication is read again from the database at least this often, however the channel
 * fares: what a process keeps can't outlive a change by more than this, even in a case the
 * channel's checks would miss.
 */
const CACHED_FOR_MS = 60_000
/** Users whose last change this process remembers one by one (older ones count as changed at once). */
const CHANGES_KEPT = 100_000

/**
 * A session's last use is written again only when it moved by at least this (min(60 s, 0.1% of
 * the idle TTL)): a busy session costs a write a minute at most, and its idle expiry counts from
 * its last request to within that.
 */
export const renewalStepMs = (idleTtlSeconds: number) => Math.min(60_000, idleTtlSeconds)

interface Cached {
  auth: Auth
  maxExpiresAt: number
  /** The idle expiry as this process knows it: as read, or moved by a use here. */
  expiresAt: number
  /** The last use written, or on its way to be. */
  writtenUseAt: number
  /** When it was read, in the count of changes heard (see `changes`). */
  readAt: number
  epoch: number
}

/** How far the channel that tells of changes can be relied on (the sessions channel). */
export interface ChannelState {
  /** Moves whenever what was cached may have missed a change. */
  readonly epoch: number
  /** Whether what was cached in the current epoch can be relied on now. */
  trusted(): boolean
}

export function createAuthentications(deps: {
  store: SessionsStore
  idleTtlSeconds: number
  cacheSize: number
  /** The channel, once made (it is made after, as it tells this cache of changes). */
  channel: () => ChannelState
  log: { warn(object: object, message: string): void }
}) {
  const { store, log } = deps
  const idleMs = deps.idleTtlSeconds * 1000
  const stepMs = renewalStepMs(deps.idleTtlSeconds)

  const cache = new LRUCache<string, Cached>({ max: deps.cacheSize, ttl: CACHED_FOR_MS })
  // Every change heard moves `changes` on; a user's last change is remembered (`changedAt`), so
  // that an entry read before it is not relied on, and a read that overlapped it is not cached.
  // Users forgotten from `changedAt` count as changed at `forgottenUpTo`.
  let changes = 0
  let forgottenUpTo = 0
  const changedAt = new LRUCache<string, number>({
    max: CHANGES_KEPT,
    dispose: (at, _user, reason) => {
      if (reason === 'evict') forgottenUpTo = Math.max(forgottenUpTo, at)
    },
  })
  const lastChange = (userId: string) => changedAt.get(userId) ?? forgottenUpTo

  // Uses of sessions, written together (writeUses, every RENEW_EVERY_MS of the service).
  const uses = new Map<string, number>()
  let renewing: Promise<void> = Promise.resolve()
  const writeUses = () => {
    renewing = renewing.then(async () => {
      while (uses.size > 0) {
        const batch: [string, number][] = []
        for (const use of uses) {
          batch.push(use)
          if (batch.length === RENEW_BATCH) break
        }
        for (const [tokenHash] of batch) uses.delete(tokenHash)
        try {
          await store.renew(batch.map(([tokenHash, at]) => ({ tokenHash, usedAt: new Date(at) })), deps.idleTtlSeconds)
        } catch (error) {
          log.warn({ err: error }, 'could not write the renewals of sessions')
          // Back in line for the next round, unless a later use is there already.
          for (const [tokenHash, at] of batch) if (!uses.has(tokenHash)) uses.set(tokenHash, at)
          return
        }
      }
    })
    return renewing
  }

  /** A use of a session at `now`: its idle expiry moves here at once, and in the database by steps. */
  const used = (entry: Cached, now: number) => {
    entry.expiresAt = Math.min(now + idleMs, entry.maxExpiresAt)
    if (now - entry.writtenUseAt >= stepMs) {
      entry.writtenUseAt = now
      uses.set(entry.auth.tokenHash, now)
    }
  }

  /** The authentication of a stored session at `now`, or null if it lapsed. */
  const fromStored = (tokenHash: string, stored: StoredAuth, now: number, readAt: number): Cached | null => {
    const { session, user } = stored
    const maxExpiresAt = session.maxExpiresAt.getTime()
    // A use here not written yet counts too.
    const pending = uses.get(tokenHash)
    const expiresAt = Math.max(session.expiresAt.getTime(), pending === undefined ? 0 : Math.min(pending + idleMs, maxExpiresAt))
    if (now >= maxExpiresAt || now >= expiresAt) return null
    return {
      auth: { userId: session.userId, sessionId: session.id, tokenHash, signedInAt: session.createdAt, user },
      maxExpiresAt,
      expiresAt,
      writtenUseAt: Math.max(session.lastUsedAt.getTime(), pending ?? 0),
      readAt,
      epoch: deps.channel().epoch,
    }
  }

  /** Reads a session from the database, and keeps it unless a change may have overlapped the read. */
  const load = async (tokenHash: string, now: number): Promise<Auth | null> => {
    const readAt = changes
    const channel = deps.channel()
    const epoch = channel.epoch
    const stored = await store.authenticate(tokenHash)
    const entry = stored ? fromStored(tokenHash, stored, now, readAt) : null
    if (!entry) {
      cache.delete(tokenHash)
      return null
    }
    used(entry, now)
    if (channel.trusted() && channel.epoch === epoch && lastChange(entry.auth.userId) <= readAt) cache.set(tokenHash, entry)
    return entry.auth
  }

  /** Whether a cached entry can be relied on now (its user unchanged since, the channel sound). */
  const reliable = (entry: Cached) => entry.epoch === deps.channel().epoch && lastChange(entry.auth.userId) <= entry.readAt

  return {
    /** Drops what this process keeps of these users. */
    forget(userIds: readonly string[]) {
      changes++
      for (const userId of userIds) changedAt.set(userId, changes)
    },

    /** Changes may have gone unheard: nothing kept so far is relied on again. */
    lost() {
      changes++
      forgottenUpTo = changes
      changedAt.clear()
      cache.clear()
    },

    /**
     * The authentication of a token hash at `now`: from memory when this process holds it and can
     * rely on it, else read from the database (and kept). A use renews the idle expiry.
     */
    async authenticate(tokenHash: string, now: number): Promise<Auth | null> {
      if (deps.channel().trusted()) {
        const entry = cache.get(tokenHash)
        if (entry && reliable(entry) && now < entry.expiresAt && now < entry.maxExpiresAt) {
          used(entry, now)
          return entry.auth
        }
        // Not here, changed, or lapsed as far as this process knows (another may have used it since).
      }
      return load(tokenHash, now)
    },

    /** The authentication of a token hash, read from the database. */
    load,

    /**
     * Whether this process can tell from memory that the session of an earlier authentication
     * stands at `now`: it keeps the session, no change of its user was heard since it was read,
     * and the channel can be relied on. False says nothing either way: ask the database.
     */
    holds(auth: Auth, now: number): boolean {
      if (!deps.channel().trusted()) return false
      const entry = cache.peek(auth.tokenHash)
      return entry !== undefined && entry.auth.sessionId === auth.sessionId && reliable(entry) && now < entry.expiresAt && now < entry.maxExpiresAt
    },

    /** Whether the session of an earlier authentication still stands at `now`, read from the database. */
    async stillSignedIn(auth: Auth, now: number): Promise<boolean> {
      const stored = await store.authenticate(auth.tokenHash)
      return stored !== null && fromStored(auth.tokenHash, stored, now, changes) !== null
    },

    /** Writes the uses held (and waits for a write under way). */
    writeUses,

    clear() {
      cache.clear()
    },

    /** How many authentications this process keeps now. */
    size: () => cache.size,
  }
}
