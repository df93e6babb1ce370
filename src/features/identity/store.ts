import { sql, type Transaction } from 'kysely'
import type { Database, DB } from '../../platform/db/index.js'

export type TokenPurpose = 'confirm_email' | 'reset_password' | 'undo_email_change'

declare module '../../platform/db/types.js' {
  interface Database {
    account_tokens: {
      /** SHA-256 of the token mailed: the token itself is never stored. */
      token_hash: string
      user_id: string
      purpose: TokenPurpose
      /** The address a confirmation is for, or the one an undo goes back to. */
      email: string | null
      created_at: Date
      expires_at: Date
      used_at: Date | null
    }
    user_devices: {
      user_id: string
      device_hash: string
      first_seen_at: Date
      last_seen_at: Date
    }
  }
}

export interface TokenRow {
  user_id: string
  purpose: TokenPurpose
  email: string | null
}

/** Tokens mailed to users and the devices they sign in from, in the caller's transaction or the database. */
export function createIdentityStore(db: DB) {
  return {
    async addToken(token: { token_hash: string; user_id: string; purpose: TokenPurpose; email: string | null; created_at: Date; expires_at: Date }): Promise<void> {
      await db.insertInto('account_tokens').values({ ...token, used_at: null }).execute()
    },

    /**
     * Uses a token once: answers it if it is of `purpose`, unused and unexpired at `now`, and marks
     * it used in the same statement (two uses racing: one wins). Else undefined, and nothing changes.
     */
    async useToken(tokenHash: string, purpose: TokenPurpose, now: Date): Promise<TokenRow | undefined> {
      return db
        .updateTable('account_tokens')
        .set({ used_at: now })
        .where('token_hash', '=', tokenHash)
        .where('purpose', '=', purpose)
        .where('used_at', 'is', null)
        .where('expires_at', '>', now)
        .returning(['user_id', 'purpose', 'email'])
        .executeTakeFirst()
    },

    /** Ends the user's unused tokens of `purpose` (a newer one, or what they were for, took their place). */
    async endTokens(userId: string, purpose: TokenPurpose, now: Date): Promise<void> {
      await db.updateTable('account_tokens').set({ used_at: now }).where('user_id', '=', userId).where('purpose', '=', purpose).where('used_at', 'is', null).execute()
    },

    /** Deletes tokens that expired before `before`. */
    async sweep(before: Date): Promise<void> {
      await db.deleteFrom('account_tokens').where('expires_at', '<', before).execute()
    },

    /**
     * Records a sign-in from a device: answers whether the device is new to the user, and whether
     * the user had signed in from any device before.
     */
    async seeDevice(trx: Transaction<Database>, userId: string, deviceHash: string, now: Date): Promise<{ isNew: boolean; knownBefore: boolean }> {
      const inserted = await trx
        .insertInto('user_devices')
        .values({ user_id: userId, device_hash: deviceHash, first_seen_at: now, last_seen_at: now })
        .onConflict((oc) => oc.columns(['user_id', 'device_hash']).doUpdateSet({ last_seen_at: now }))
        .returning(sql<boolean>`(xmax = 0)`.as('inserted'))
        .executeTakeFirstOrThrow()
      if (!inserted.inserted) return { isNew: false, knownBefore: true }
      const other = await trx.selectFrom('user_devices').select('device_hash').where('user_id', '=', userId).where('device_hash', '!=', deviceHash).limit(1).executeTakeFirst()
      return { isNew: true, knownBefore: other !== undefined }
    },

    async forgetUser(userId: string): Promise<void> {
      await db.deleteFrom('user_devices').where('user_id', '=', userId).execute()
      await db.deleteFrom('account_tokens').where('user_id', '=', userId).execute()
    },
  }
}

export type IdentityStore = ReturnType<typeof createIdentityStore>
