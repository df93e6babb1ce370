import type { Transaction } from 'kysely'
import type { Database } from '../../platform/db/index.js'
import type { UserRow } from '../accounts/index.js'

// What the sessions feature takes and answers: its settings, an authentication, a sign-in, and
// the hooks other features hang on sign-ins, sign-outs and changes.

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
