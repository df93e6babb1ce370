import { createHash, randomBytes } from 'node:crypto'
import { v7 as uuidv7 } from 'uuid'
import { NotFoundError, TooManyRequestsError, UnauthenticatedError } from '../../errors.js'
import type { LiveStore } from '../../platform/live/index.js'
import type { PasswordHasher } from '../../platform/passwords.js'
import type { Clock } from '../../platform/clock.js'
import type { AccountsStore, UserRow } from '../accounts/index.js'

export interface SessionsConfig {
  sessionIdleTtl: number
  sessionMaxAge: number
  sessionsPerUser: number
  loginFailuresPerHour: number
}

export interface Auth {
  userId: string
  sessionId: string
  /** The stored hash of the session's token (never the token). */
  tokenHash: string
  /** When the session began: when the user last proved who it is. */
  signedInAt: Date
}

/** What other features do when a user signs out (the location leaves the map...). */
export type SignedOutHook = (userId: string) => Promise<void>

const HOUR_MS = 3_600_000

/** Tokens are 256 random bits; only their SHA-256 is ever stored. */
export const hashToken = (token: string) => createHash('sha256').update(token).digest('base64url')

export function createSessionsService(deps: { live: LiveStore; accounts: AccountsStore; hasher: PasswordHasher; config: SessionsConfig; clock: Clock }) {
  const { live, config } = deps
  const signedOutHooks: SignedOutHook[] = []
  const failureKey = (email: string) => `login-failures:${email.trim().toLowerCase()}`

  /** Tells every process that these sessions ended, so their open sockets close. */
  const announceEnded = async (userId: string, sessionIds: string[]) => {
    if (sessionIds.length > 0) await live.events.publish({ to: [userId], type: 'session.ended', data: { session_ids: sessionIds } })
  }

  return {
    onSignedOut(hook: SignedOutHook) {
      signedOutHooks.push(hook)
    },

    /** Checks email and password; answers a new token and the user. The same 401 for an unknown email and a wrong password. */
    async signIn(email: string, password: string, userAgent: string | undefined): Promise<{ token: string; expiresIn: number; user: UserRow }> {
      const failures = await live.counters.peek(failureKey(email))
      if (failures.count >= config.loginFailuresPerHour) {
        throw new TooManyRequestsError('Too many failed sign-ins for this account; try again later', Math.ceil(failures.resetMs / 1000), 'account_locked')
      }
      const found = await deps.accounts.findForLogin(email.trim())
      const ok = await deps.hasher.verify(password, found?.password_hash ?? null)
      if (!found || !ok) {
        await live.counters.hit(failureKey(email), HOUR_MS)
        throw new UnauthenticatedError('Wrong email or password', 'invalid_credentials')
      }
      if (failures.count > 0) await live.counters.reset(failureKey(email))
      const { password_hash: _hash, ...user } = found
      const token = randomBytes(32).toString('base64url')
      const now = deps.clock.now()
      const expiresIn = Math.min(config.sessionIdleTtl, config.sessionMaxAge)
      await live.sessions.create(
        hashToken(token),
        {
          id: uuidv7(),
          userId: user.id,
          userAgent: userAgent?.slice(0, 300) ?? null,
          createdAt: now,
          lastUsedAt: now,
          expiresAt: new Date(now.getTime() + expiresIn * 1000),
          maxExpiresAt: new Date(now.getTime() + config.sessionMaxAge * 1000),
        },
        config.sessionsPerUser,
      )
      return { token, expiresIn, user }
    },

    /** The session of a token, its idle expiry renewed; null when the token is unknown or dead. */
    async authenticate(token: string): Promise<Auth | null> {
      const tokenHash = hashToken(token)
      const session = await live.sessions.touch(tokenHash, deps.clock.now(), config.sessionIdleTtl)
      return session ? { userId: session.userId, sessionId: session.id, tokenHash, signedInAt: session.createdAt } : null
    },

    /** Whether the session of an earlier authentication still stands (it is read again). */
    async stillSignedIn(auth: Auth): Promise<boolean> {
      return (await live.sessions.touch(auth.tokenHash, deps.clock.now(), config.sessionIdleTtl)) !== null
    },

    async signOut(token: string): Promise<void> {
      const session = await live.sessions.end(hashToken(token))
      if (!session) return
      await announceEnded(session.userId, [session.id])
      for (const hook of signedOutHooks) await hook(session.userId)
    },

    async list(auth: Auth) {
      return live.sessions.list(auth.userId)
    },

    async end(auth: Auth, sessionId: string): Promise<void> {
      if (!(await live.sessions.endById(auth.userId, sessionId))) throw new NotFoundError('You have no such session', 'session_not_found')
      await announceEnded(auth.userId, [sessionId])
    },

    /** Ends all the user's sessions but one (a password change keeps the device that made it). */
    async endAll(userId: string, exceptSessionId?: string): Promise<void> {
      await announceEnded(userId, await live.sessions.endAll(userId, exceptSessionId))
    },
  }
}

export type SessionsService = ReturnType<typeof createSessionsService>
