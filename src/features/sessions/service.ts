import { createHash, hash, randomBytes } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import { v7 as uuidv7 } from 'uuid'
import { ForbiddenError, MfaRequiredError, NotFoundError, UnauthenticatedError } from '../../errors.js'
import type { Database, DB, Listen } from '../../platform/db/index.js'
import type { CounterStore } from '../../platform/live/index.js'
import type { PasswordHasher } from '../../platform/passwords.js'
import type { Clock } from '../../platform/clock.js'
import type { AccountsStore, UserRow } from '../accounts/index.js'
import { createAuthentications } from './authentications.js'
import { createSessionsChannel } from './channel.js'
import { createSessionsStore, revokeSessions, type SessionRecord } from './store.js'
import { createSignInThrottle } from './throttle.js'
import type { Auth, SecondFactorGate, SessionsChangedListener, SessionsConfig, SignedIn, SignedInHook, SignedOutHook, SignInContext } from './types.js'

export type { Auth, SecondFactorGate, SessionsChangedListener, SessionsConfig, SignedIn, SignedInHook, SignedOutHook, SignInContext } from './types.js'
export { renewalStepMs } from './authentications.js'

/** How often the renewals of sessions used in this process are written, together. */
const RENEW_EVERY_MS = 1_000
/**
 * Sessions that lapsed longer ago than this are deleted. Some process may hold the last minute of
 * a session's renewals a little before writing them (see RENEW_EVERY_MS and renewalStepMs).
 */
const SWEEP_GRACE_MS = 10 * 60_000
const SWEEP_EVERY_MS = 10 * 60_000
/** How often open sockets are checked against the database while the channel can't be relied on. */
const DOWN_CHECK_MS = 500

/** Tokens are 256 random bits; only their SHA-256 is ever stored. */
/** A token's SHA-256, as stored (one-shot hashing: no Hash object a request). */
export const hashToken = (token: string) => hash('sha256', token, 'base64url')

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
  const signedOutHooks: SignedOutHook[] = []
  const signedInHooks: SignedInHook[] = []
  const changedListeners: SessionsChangedListener[] = []

  // What this process keeps of authentications, dropped when the channel tells of a change.
  const authentications = createAuthentications({ store, idleTtlSeconds: config.sessionIdleTtl, cacheSize: config.sessionCacheSize, channel: () => channel, log })

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
  const forget = (userIds: readonly string[]) => authentications.forget(userIds)

  const channel = createSessionsChannel({
    db: deps.db,
    listen: deps.listen,
    inProcess: deps.inProcess,
    onChanged: (userIds) => {
      forget(userIds)
      tell(userIds)
    },
    onLost: () => {
      authentications.lost()
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

  let renewTimer: NodeJS.Timeout | undefined
  let sweepTimer: NodeJS.Timeout | undefined

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

  const { throttle, succeeded } = createSignInThrottle(deps.counters, config)

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
      renewTimer = setInterval(() => void authentications.writeUses(), RENEW_EVERY_MS)
      renewTimer.unref()
      const sweep = () => store.sweep(new Date(clock.now().getTime() - SWEEP_GRACE_MS)).catch((error: unknown) => log.warn({ err: error }, 'could not delete lapsed sessions'))
      sweepTimer = setInterval(() => void sweep(), SWEEP_EVERY_MS)
      sweepTimer.unref()
    },

    async close() {
      clearInterval(renewTimer)
      clearInterval(sweepTimer)
      clearInterval(downTimer)
      await authentications.writeUses()
      await channel.close()
      authentications.clear()
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
      return authentications.authenticate(hashToken(token), clock.now().getTime())
    },

    /** The authentication of a token hash, read from the database (a WebSocket ticket holds the hash). */
    async authenticateHash(tokenHash: string): Promise<Auth | null> {
      return authentications.load(tokenHash, clock.now().getTime())
    },

    /**
     * Whether this process can tell from memory that an earlier authentication's session stands
     * now (no change of its user heard since it was read, the channel sound). False means: ask
     * the database (stillSignedIn). A change committed elsewhere and not heard yet is heard, or
     * the channel stops being trusted (onChanged tells of both), within CHANGES_HEARD_WITHIN_MS.
     */
    standsInMemory(auth: Auth): boolean {
      return authentications.holds(auth, clock.now().getTime())
    },

    /** Whether changes to sessions are heard now (see the channel); while not, onChanged tells of it. */
    changesHeard(): boolean {
      return channel.trusted()
    },

    /** Whether the session of an earlier authentication still stands, read from the database. */
    async stillSignedIn(auth: Auth): Promise<boolean> {
      return authentications.stillSignedIn(auth, clock.now().getTime())
    },

    /** Of these session ids, those that stand now (read from the database). */
    async standing(sessionIds: readonly string[]): Promise<Set<string>> {
      return store.standingIds(sessionIds, clock.now())
    },

    /** Of these users, those deleted, and those signed in somewhere now (read from the database). */
    async signedInUsers(userIds: readonly string[]): Promise<{ signedIn: Set<string>; gone: Set<string> }> {
      return store.signedInUsers(userIds, clock.now())
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
      await authentications.writeUses()
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
      return authentications.size()
    },
  }
}

export type SessionsService = ReturnType<typeof createSessionsService>
