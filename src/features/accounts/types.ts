import type { Transaction } from 'kysely'
import type { Database } from '../../platform/db/index.js'
import type { UserRow } from './store.js'

// What the accounts feature takes and answers beside users: who acts, the hooks other features
// hang on sign-ups, changes and deletions, and what it needs of sessions and of the audit log.

export interface Actor {
  userId: string
  sessionId: string
  /** When the actor's session began. */
  signedInAt: Date
  /** Where the request came from, for the audit log of what an admin does here. */
  origin?: { address: string | null; requestId: string | null }
}

/**
 * Writes what an admin did to an account through the accounts' own routes (another user's change
 * or deletion, a change of roles) to the audit log, in the transaction of the act (given by the
 * admin feature).
 */
export type AdminActRecorder = (
  trx: Transaction<Database>,
  context: { actorId: string; address: string | null; requestId: string | null },
  entry: { action: string; targetType: 'user'; targetId: string; details: Record<string, unknown> },
  at: Date,
) => Promise<void>

/** What other features do when an account goes (sessions end, the location leaves the map...). */
export type AccountDeletedHook = (userId: string) => Promise<void>
/** What other features do when an account changes (the card shown on the map...); `before` when known. */
export type AccountChangedHook = (user: UserRow, before: UserRow | undefined) => Promise<void>
/** The fields of a user that its view is made of; `created_at` may be its ISO text already (from a card). */
export type ShownUser = Pick<UserRow, 'id' | 'email' | 'first_name' | 'last_name' | 'roles' | 'picture_etag'> & { created_at: Date | string }
/** What follows a sign-up in its transaction (the confirmation mail). */
export type SignedUpHook = (trx: Transaction<Database>, user: UserRow) => Promise<void>
/**
 * What an asked change of email does in the transaction of the request, instead of changing it
 * (a confirmation mailed to the new address, word to the old one).
 */
export type EmailChangeHook = (trx: Transaction<Database>, user: UserRow, newEmail: string) => Promise<void>
/** The fields of a user (deleted ones as tombstones) that its summary is made of. */
export type SummarizedUser = Pick<UserRow, 'id' | 'first_name' | 'last_name' | 'picture_etag'> & { deleted_at: Date | null }
/** What accounts need of sessions (given by the sessions feature): changes told in the change's own transaction. */
export interface AccountSessions {
  /** Ends every session of the user but `keep`, in the transaction, and tells every process at its commit. */
  revokeIn(trx: Transaction<Database>, userId: string, keep?: string): Promise<void>
  /** Tells every process at the transaction's commit that the user changed (what an authentication carries of it). */
  changedIn(trx: Transaction<Database>, userIds: readonly string[]): Promise<void>
  /** After the commit: this process forgets what it keeps of the users at once (the caller's next request sees the change). */
  forget(userIds: readonly string[]): void
}
