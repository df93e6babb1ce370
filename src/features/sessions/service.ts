import { createHash, hash, randomBytes } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import { LRUCache } from 'lru-cache'
import { v7 as uuidv7 } from 'uuid'
import { ForbiddenError, MfaRequiredError, NotFoundError, TooManyRequestsError, UnauthenticatedError } from '../../errors.js'
import type { Database, DB, Listen } from '../../platform/db/index.js'
import type { CounterStore } from '../../platform/live/index.js'
import type { PasswordHasher } from '../../platform/passwords.js'
import type { Clock } from '../../platform/clock.js'
import type { AccountsStore, UserRow } from '../accounts/index.js'
import { createSessionsChannel } from './channel.js'
import { createSessionsStore, revokeSessions, type SessionRecord, type StoredAuth } from './store.js'

export interface SessionsConfig {
  sessionIdleTtl: number
  sessionMaxAge: number
  sessionsPerUser: number
  /** Sign-in attempts an hour that fail from one address on one account. */
  loginFailuresPerHour: number
  /** Sign-in attempts an hour that fail from one address, on any accounts. */
  loginFailuresPerAddressPerHour: number
  /** Authentications each process keeps. */
  sessionCacheSize: number
}

export interface Auth {
  userId: string
  sessionId: string
  /** The stored hash of the session's token (never the token). */
  tokenHash: string
  /** When the session began: when the user last proved who it is. */
  signedInAt: Date
  /** The user as it is (a change to it is heard by every process within a second). */
  user: UserRow
}

export interface SignInContext {
  userAgent?: string
  /** The app's own name for the device (X-Device-Id), when it sends one. */
  deviceId?: string
  address: string
}

export interface SignedIn {
  token: string
  expiresIn: number
  user: UserRow
}

/**
 * Asked at every sign-in whose first factor passed: a challenge (its token and seconds to live)
 * when the account has a second factor, null when the sign-in may go on.
 */
export type SecondFactorGate = (user: UserRow, version: number, context: SignInContext) => Promise<{ token: string; expiresIn: number } | null>

/** What other features do in a sign-in's own transaction (a device recorded, a mail about it). */
export type SignedInHook = (trx: Transaction<Database>, user: UserRow, context: SignInContext) => Promise<void>

/** What other features do when a user signs out (the location leaves the map...). */
export type SignedOutHook = (userId: string) => Promise<void>
/**
 * Told when sessions may have ended: those of these users, or with `undefined`, anyone's (this
 * process may have missed a change). Open sockets are checked again.
 */
export type SessionsChangedListener = (userIds: readonly string[] | undefined) => void

const HOUR_MS = 3_600_000
/** How often the renewals of sessions used in this process are written, together. */
const RENEW_EVERY_MS = 1_000
const RENEW_BATCH = 1_000
/**
 * An authentication is read again from the database at least this often, however the channel
 * fares: what a process keeps can't outlive a change by more than this, even in a case the
 * channel's checks would miss.
 */
const CACHED_FOR_MS = 60_000
/**
 * Sessions that lapsed longer ago than this are deleted. Some process may hold the last minute of
 * a session's renewals a little before writing them (see RENEW_EVERY_MS and renewalStepMs).
 */
const SWEEP_GRACE_MS = 10 * 60_000
const SWEEP_EVERY_MS = 10 * 60_000
/** How often open sockets are checked against the database while the channel can't be relied on. */
const DOWN_CHECK_MS = 500
/** Users whose last change this process remembers one by one (older ones count as changed at once). */
const CHANGES_KEPT = 100_000

/** Tokens are 256 random bits; only their SHA-256 is ever stored. */
/** A token's SHA-256, as stored (one-shot hashing: no Hash object a request). */
export const hashToken = (token: string) => hash('sha256', token, 'base64url')

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

export function createSessionsService(deps: {
  db: DB
  /** LISTEN on the database: how every process hears of changes to sessions. */
  listen: Listen
  /** The database runs in this process (PGlite): what it notifies can't be lost. */
  inProcess: boolean
  /** Failed sign-ins are counted there, exactly, across processes. */
  counters: CounterStore
  accounts: AccountsStore
  hasher: PasswordHasher
  config: SessionsConfig
  clock: Clock
  log: { warn(object: object, message: string): void }
}) {
  const { config, clock, log } = deps
  const store = createSessionsStore(deps.db)
  const idleMs = config.sessionIdleTtl * 1000
  const stepMs = renewalStepMs(config.sessionIdleTtl)
  const signedOutHooks: SignedOutHook[] = []
  const signedInHooks: SignedInHook[] = []
  const changedListeners: SessionsChangedListener[] = []

  // -------------------------------------------------------------------------------------------
  // What this process keeps: authentications by token hash, each dropped when its user changes
  // anywhere. Only sessions that stand are kept (an unknown token is never cached), so a flood of
  // made-up tokens can't fill it; at most `sessionCacheSize`, the least recently used go first.

  const cache = new LRUCache<string, Cached>({ max: config.sessionCacheSize, ttl: CACHED_FOR_MS })
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

  const tell = (userIds: readonly string[] | undefined) => {
    for (const listener of changedListeners) {
      try {
        listener(userIds)
      } catch (error) {
        log.warn({ err: error }, 'a listener of session changes failed')
      }
    }
  }

  /** Drops what this process keeps of these users. */
  const forget = (userIds: readonly string[]) => {
    changes++
    for (const userId of userIds) changedAt.set(userId, changes)
  }

  const channel = createSessionsChannel({
    db: deps.db,
    listen: deps.listen,
    inProcess: deps.inProcess,
    onChanged: (userIds) => {
      forget(userIds)
      tell(userIds)
    },
    onLost: () => {
      changes++
      forgottenUpTo = changes
      changedAt.clear()
      cache.clear()
      tell(undefined)
    },
    // While the channel can't be relied on, changes may go unheard: open sockets are checked
    // against the database at once, and every DOWN_CHECK_MS until it can again.
    onDown: () => {
      tell(undefined)
      clearInterval(downTimer)
      downTimer = setInterval(() => {
        if (channel.trusted()) clearInterval(downTimer)
        else tell(undefined)
      }, DOWN_CHECK_MS)
      downTimer.unref()
    },
    onError: (error) => {
      // Once in a while, not at every probe of an outage.
      if (performance.now() - channelWarnedAt < 10_000) return
      channelWarnedAt = performance.now()
      log.warn({ err: error }, 'the sessions channel: could not send a probe or LISTEN again')
    },
  })
  let downTimer: NodeJS.Timeout | undefined
  let channelWarnedAt = -Infinity

  // Uses of sessions, written together every RENEW_EVERY_MS.
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
          await store.renew(batch.map(([tokenHash, at]) => ({ tokenHash, usedAt: new Date(at) })), config.sessionIdleTtl)
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
  let renewTimer: NodeJS.Timeout | undefined
  let sweepTimer: NodeJS.Timeout | undefined

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
      epoch: channel.epoch,
    }
  }

  /** Reads a session from the database, and keeps it unless a change may have overlapped the read. */
  const load = async (tokenHash: string, now: number): Promise<Auth | null> => {
    const readAt = changes
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
  const reliable = (entry: Cached) => entry.epoch === channel.epoch && lastChange(entry.auth.userId) <= entry.readAt

  /** A change to sessions and the message that tells every process of it, in one transaction. */
  const inTransaction = <T>(work: (trx: Transaction<Database>) => Promise<T>) => deps.db.transaction().execute(work)

  /**
   * In the caller's transaction: tells every process, when it commits, that these users'
   * sessions or what their authentications carry changed. This process forgets them at once.
   */
  const changedIn = async (trx: Transaction<Database> | Kysely<Database>, userIds: readonly string[]) => {
    if (userIds.length === 0) return
    forget(userIds)
    await channel.changed(trx, userIds)
  }

  /** In the caller's transaction: ends every session of the user but `keep`, with one write to the user. */
  const revokeIn = async (trx: Transaction<Database> | Kysely<Database>, userId: string, keep?: string) => {
    await revokeSessions(trx, userId, keep)
    await changedIn(trx, [userId])
  }

  // -------------------------------------------------------------------------------------------
  // Failed sign-ins: counted per account and address, and per address, before the password is
  // checked (so guesses sent together are each counted before any is answered). Past either
  // limit the address waits: the account stays open to its owner from anywhere else.

  const digest = (text: string) => createHash('sha256').update(text).digest('base64url')
  const pairKey = (email: string, address: string) => `login-failures:${digest(`${email.trim().toLowerCase()} ${address}`)}`
  const addressKey = (address: string) => `login-failures-from:${digest(address)}`

  const throttle = async (email: string, address: string) => {
    const [pair, from] = await Promise.all([deps.counters.hit(pairKey(email, address), HOUR_MS), deps.counters.hit(addressKey(address), HOUR_MS)])
    const over = [pair.count > config.loginFailuresPerHour ? pair : null, from.count > config.loginFailuresPerAddressPerHour ? from : null].filter((hit) => hit !== null)
    if (over.length > 0) {
      const resetMs = Math.max(...over.map((hit) => hit.resetMs))
      throw new TooManyRequestsError('Too many failed sign-ins from this address; try again later', Math.max(1, Math.ceil(resetMs / 1000)), 'too_many_failed_sign_ins')
    }
  }

  /** A sign-in that succeeded was no failure: it leaves the counts as they were before it. */
  const succeeded = async (email: string, address: string) => {
    await Promise.all([deps.counters.reset(pairKey(email, address)), deps.counters.hit(addressKey(address), HOUR_MS, -1)])
  }

  let secondFactor: SecondFactorGate | undefined
  const askSecondFactor = async (user: UserRow, version: number, context: SignInContext) => {
    const challenge = await secondFactor?.(user, version, context)
    if (challenge) throw new MfaRequiredError(challenge.token, challenge.expiresIn)
  }

  /** Makes a session; only if the account did not change since `version` was read. */
  const open = async (user: UserRow, version: number, context: SignInContext): Promise<SignedIn> => {
    const token = randomBytes(32).toString('base64url')
    const tokenHash = hashToken(token)
    const now = clock.now()
    const expiresIn = Math.min(config.sessionIdleTtl, config.sessionMaxAge)
    const session: SessionRecord = {
      id: uuidv7(),
      userId: user.id,
      userAgent: context.userAgent?.slice(0, 300) ?? null,
      createdAt: now,
      lastUsedAt: now,
      expiresAt: new Date(now.getTime() + expiresIn * 1000),
      maxExpiresAt: new Date(now.getTime() + config.sessionMaxAge * 1000),
    }
    // Made only if the account did not change since it was read: a new password, a deletion or a
    // sign-out everywhere that committed while the sign-in was being checked wins over it.
    const created = await inTransaction(async (trx) => {
      const result = await createSessionsStore(trx).create(tokenHash, session, version, config.sessionsPerUser, now)
      if (result.ended.length > 0) await changedIn(trx, [user.id])
      if (result.created) for (const hook of signedInHooks) await hook(trx, user, context)
      return result.created
    })
    if (!created) throw new UnauthenticatedError('Wrong email or password', 'invalid_credentials')
    return { token, expiresIn, user }
  }

  return {
    onSignedOut(hook: SignedOutHook) {
      signedOutHooks.push(hook)
    },

    /** Runs `hook` in every sign-in's transaction, once its session is stored. */
    onSignedIn(hook: SignedInHook) {
      signedInHooks.push(hook)
    },

    /** Listens for sessions that may have ended (open sockets are checked again). */
    onChanged(listener: SessionsChangedListener) {
      changedListeners.push(listener)
    },

    async start() {
      await channel.start()
      renewTimer = setInterval(() => void writeUses(), RENEW_EVERY_MS)
      renewTimer.unref()
      const sweep = () => store.sweep(new Date(clock.now().getTime() - SWEEP_GRACE_MS)).catch((error: unknown) => log.warn({ err: error }, 'could not delete lapsed sessions'))
      sweepTimer = setInterval(() => void sweep(), SWEEP_EVERY_MS)
      sweepTimer.unref()
    },

    async close() {
      clearInterval(renewTimer)
      clearInterval(sweepTimer)
      clearInterval(downTimer)
      await writeUses()
      await channel.close()
      cache.clear()
    },

    /**
     * Checks email and password; answers a new token and the user. The same 401 for an unknown
     * email and a wrong password; 429 from an address past its failures. An account with a second
     * factor answers 401 `mfa_required` instead (MfaRequiredError), with no session yet.
     */
    async signIn(email: string, password: string, context: SignInContext): Promise<SignedIn> {
      await throttle(email, context.address)
      const found = await deps.accounts.findForLogin(email.trim())
      const ok = await deps.hasher.verify(password, found?.password_hash ?? null)
      if (!found || !ok) throw new UnauthenticatedError('Wrong email or password', 'invalid_credentials')
      await succeeded(email, context.address)
      // Told only to whoever knows the password: a suspension is no one else's business.
      if (found.suspended_at) throw new ForbiddenError('This account is suspended by an admin', 'account_suspended')
      const { password_hash: _hash, sessions_version: version, suspended_at: _suspended, ...user } = found
      await askSecondFactor(user, version, context)
      return open(user, version, context)
    },

    /**
     * Signs in a user who proved who it is otherwise (a provider vouched for it): a new token, or
     * 401 `mfa_required` for an account with a second factor.
     */
    async signInAs(userId: string, context: SignInContext): Promise<SignedIn> {
      const found = await deps.accounts.findForSignIn(userId)
      if (!found) throw new UnauthenticatedError('This account is gone', 'invalid_credentials')
      const { sessions_version: version, ...user } = found
      await askSecondFactor(user, version, context)
      return open(user, version, context)
    },

    /** A session for a user whose every factor was checked, as of `version` (its sessions_version then). */
    open,

    /** Who decides whether a sign-in needs a second factor, and asks for it (the two-factor feature). */
    setSecondFactor(gate: SecondFactorGate) {
      secondFactor = gate
    },

    /**
     * The session of a token and its user; null when the token is unknown or its session ended.
     * From this process's memory when it holds the session and can rely on it; a use renews the
     * idle expiry, written to the database by steps and in batches.
     */
    async authenticate(token: string): Promise<Auth | null> {
      const tokenHash = hashToken(token)
      const now = clock.now().getTime()
      if (channel.trusted()) {
        const entry = cache.get(tokenHash)
        if (entry && reliable(entry) && now < entry.expiresAt && now < entry.maxExpiresAt) {
          used(entry, now)
          return entry.auth
        }
        // Not here, changed, or lapsed as far as this process knows (another may have used it since).
      }
      return load(tokenHash, now)
    },

    /** The authentication of a token hash, read from the database (a WebSocket ticket holds the hash). */
    async authenticateHash(tokenHash: string): Promise<Auth | null> {
      return load(tokenHash, clock.now().getTime())
    },

    /** Whether the session of an earlier authentication still stands, read from the database. */
    async stillSignedIn(auth: Auth): Promise<boolean> {
      const stored = await store.authenticate(auth.tokenHash)
      return stored !== null && fromStored(auth.tokenHash, stored, clock.now().getTime(), changes) !== null
    },

    /** Of these session ids, those that stand now (read from the database). */
    async standing(sessionIds: readonly string[]): Promise<Set<string>> {
      return store.standingIds(sessionIds, clock.now())
    },

    async signOut(auth: Auth): Promise<void> {
      const ended = await inTransaction(async (trx) => {
        const sessions = createSessionsStore(trx)
        const session = await sessions.end(auth.tokenHash)
        if (!session) return undefined
        await changedIn(trx, [session.userId])
        return { ...session, last: (await sessions.list(session.userId, clock.now())).length === 0 }
      })
      if (!ended) return
      forget([ended.userId])
      // Signing out one device leaves the user signed in on others (and a worker on the map):
      // what follows a sign-out follows the last one.
      if (ended.last) for (const hook of signedOutHooks) await hook(ended.userId)
    },

    /** Ends every session of the caller, this one too. */
    async signOutEverywhere(auth: Auth): Promise<void> {
      await inTransaction((trx) => revokeIn(trx, auth.userId))
      forget([auth.userId])
      for (const hook of signedOutHooks) await hook(auth.userId)
    },

    async list(auth: Auth) {
      // The uses this process holds go first, so that "last used" shows them.
      await writeUses()
      return store.list(auth.userId, clock.now())
    },

    async end(auth: Auth, sessionId: string): Promise<void> {
      const ended = await inTransaction(async (trx) => {
        const found = await createSessionsStore(trx).endById(auth.userId, sessionId, clock.now())
        if (found) await changedIn(trx, [auth.userId])
        return found
      })
      forget([auth.userId])
      if (!ended) throw new NotFoundError('You have no such session', 'session_not_found')
    },

    revokeIn,
    changedIn,

    /** After a change committed elsewhere (the accounts' own transaction): this process forgets these users at once. */
    forget,

    /** How many authentications this process keeps now. */
    cached(): number {
      return cache.size
    },
  }
}

export type SessionsService = ReturnType<typeof createSessionsService>
