import { sql, type ColumnType } from 'kysely'
import type { DB } from '../../platform/db/index.js'

declare module '../../platform/db/types.js' {
  interface Database {
    user_totp: {
      user_id: string
      /** The secret, sealed (see secrets.ts). */
      secret: string
      enabled_at: Date | null
      /** The time step of the last code taken: a code of this step or an earlier one is refused. */
      last_step: ColumnType<string | null, number | null | undefined, number | null>
      created_at: Date
    }
    user_recovery_codes: { code_hash: string; user_id: string; used_at: Date | null }
    mfa_challenges: {
      token_hash: string
      user_id: string
      sessions_version: number
      user_agent: string | null
      attempts: ColumnType<number, number | undefined, number>
      expires_at: Date
    }
  }
}

export function createTwoFactorStore(db: DB) {
  return {
    async totp(userId: string) {
      const row = await db.selectFrom('user_totp').selectAll().where('user_id', '=', userId).executeTakeFirst()
      return row ? { ...row, last_step: row.last_step === null ? null : Number(row.last_step) } : undefined
    },

    /** A new secret waiting for its first code; refused (false) while one is on. */
    async setPending(userId: string, secret: string, at: Date): Promise<boolean> {
      const result = await db
        .insertInto('user_totp')
        .values({ user_id: userId, secret, enabled_at: null, last_step: null, created_at: at })
        .onConflict((oc) => oc.column('user_id').doUpdateSet({ secret, enabled_at: null, last_step: null, created_at: at }).where('user_totp.enabled_at', 'is', null))
        .executeTakeFirst()
      return (result.numInsertedOrUpdatedRows ?? 0n) > 0n
    },

    /**
     * Takes the code of time step `step`: only if no code of this step or a later one was taken
     * (one statement, so two requests with one code can't both pass). `enabled` says whether
     * two-factor must be on (a sign-in) or must not be yet (the confirmation).
     */
    async takeStep(userId: string, step: number, enabled: boolean): Promise<boolean> {
      let update = db
        .updateTable('user_totp')
        .set({ last_step: step })
        .where('user_id', '=', userId)
        .where((eb) => eb.or([eb('last_step', 'is', null), eb('last_step', '<', sql<string>`${step}`)]))
      update = enabled ? update.where('enabled_at', 'is not', null) : update.where('enabled_at', 'is', null)
      const result = await update.executeTakeFirst()
      return result.numUpdatedRows > 0n
    },

    async enable(userId: string, recoveryCodeHashes: string[], at: Date): Promise<void> {
      await db.transaction().execute(async (trx) => {
        await trx.updateTable('user_totp').set({ enabled_at: at }).where('user_id', '=', userId).execute()
        await trx.deleteFrom('user_recovery_codes').where('user_id', '=', userId).execute()
        await trx.insertInto('user_recovery_codes').values(recoveryCodeHashes.map((code_hash) => ({ code_hash, user_id: userId, used_at: null }))).execute()
      })
    },

    async disable(userId: string): Promise<void> {
      await db.transaction().execute(async (trx) => {
        await trx.deleteFrom('user_recovery_codes').where('user_id', '=', userId).execute()
        await trx.deleteFrom('mfa_challenges').where('user_id', '=', userId).execute()
        await trx.deleteFrom('user_totp').where('user_id', '=', userId).execute()
      })
    },

    /** Uses a recovery code of the user: true once, false ever after. */
    async useRecoveryCode(userId: string, codeHash: string, at: Date): Promise<boolean> {
      const result = await db
        .updateTable('user_recovery_codes')
        .set({ used_at: at })
        .where('code_hash', '=', codeHash)
        .where('user_id', '=', userId)
        .where('used_at', 'is', null)
        .executeTakeFirst()
      return result.numUpdatedRows > 0n
    },

    async recoveryCodesLeft(userId: string): Promise<number> {
      const row = await db.selectFrom('user_recovery_codes').select((eb) => eb.fn.countAll<string>().as('n')).where('user_id', '=', userId).where('used_at', 'is', null).executeTakeFirstOrThrow()
      return Number(row.n)
    },

    async addChallenge(challenge: { token_hash: string; user_id: string; sessions_version: number; user_agent: string | null; expires_at: Date }): Promise<void> {
      await db.insertInto('mfa_challenges').values(challenge).execute()
    },

    /** Counts an attempt on a challenge that stands and has attempts left; undefined otherwise. */
    async attempt(tokenHash: string, maxAttempts: number, now: Date) {
      return db
        .updateTable('mfa_challenges')
        .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
        .where('token_hash', '=', tokenHash)
        .where('expires_at', '>', now)
        .where('attempts', '<', maxAttempts)
        .returning(['user_id', 'sessions_version', 'user_agent'])
        .executeTakeFirst()
    },

    /** Ends a challenge; false when another request ended it first. */
    async endChallenge(tokenHash: string): Promise<boolean> {
      const result = await db.deleteFrom('mfa_challenges').where('token_hash', '=', tokenHash).executeTakeFirst()
      return result.numDeletedRows > 0n
    },

    async sweep(now: Date): Promise<void> {
      await db.deleteFrom('mfa_challenges').where('expires_at', '<=', now).execute()
    },
  }
}

export type TwoFactorStore = ReturnType<typeof createTwoFactorStore>
