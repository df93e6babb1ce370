import { sql, type Transaction } from 'kysely'
import type { Database, DB } from '../../platform/db/index.js'
import type { Role } from '../accounts/index.js'

declare module '../../platform/db/types.js' {
  interface Database {
    user_identities: {
      id: string
      user_id: string
      provider: string
      issuer: string
      subject: string
      email: string | null
      created_at: Date
      last_used_at: Date
    }
    oidc_flows: {
      state_hash: string
      provider: string
      nonce: string
      code_verifier: string
      app_redirect: string | null
      roles: Role[] | null
      link_user_id: string | null
      expires_at: Date
    }
    oidc_exchange_codes: { code_hash: string; user_id: string; user_agent: string | null; expires_at: Date }
  }
}

export type Flow = Database['oidc_flows']
export type Identity = Database['user_identities']

const isUniqueViolation = (error: unknown) => (error as { code?: string } | null)?.code === '23505'
export class IdentityTakenError extends Error {}
export class EmailTakenError extends Error {}

export function createOidcStore(db: DB) {
  return {
    async addFlow(flow: Flow): Promise<void> {
      await db.insertInto('oidc_flows').values(flow).execute()
    },

    /** Takes a flow by its state's hash, once: a second call finds nothing. Lapsed ones are not taken. */
    async takeFlow(stateHash: string, provider: string, now: Date): Promise<Flow | undefined> {
      return db.deleteFrom('oidc_flows').where('state_hash', '=', stateHash).where('provider', '=', provider).where('expires_at', '>', now).returningAll().executeTakeFirst()
    },

    async addExchangeCode(code: { code_hash: string; user_id: string; user_agent: string | null; expires_at: Date }): Promise<void> {
      await db.insertInto('oidc_exchange_codes').values(code).execute()
    },

    async takeExchangeCode(codeHash: string, now: Date) {
      return db.deleteFrom('oidc_exchange_codes').where('code_hash', '=', codeHash).where('expires_at', '>', now).returning(['user_id', 'user_agent']).executeTakeFirst()
    },

    async findIdentity(issuer: string, subject: string): Promise<Identity | undefined> {
      return db.selectFrom('user_identities').selectAll().where('issuer', '=', issuer).where('subject', '=', subject).executeTakeFirst()
    },

    async touchIdentity(id: string, email: string | null, at: Date): Promise<void> {
      await db.updateTable('user_identities').set({ last_used_at: at, email }).where('id', '=', id).execute()
    },

    /** The live account with this email (any case), with whether its email is confirmed. */
    async accountByEmail(email: string) {
      return db
        .selectFrom('users')
        .select(['id', 'email_confirmed_at'])
        .where(sql`lower(email)`, '=', email.toLowerCase())
        .where('deleted_at', 'is', null)
        .executeTakeFirst()
    },

    async addIdentity(identity: Identity, trx: DB | Transaction<Database> = db): Promise<void> {
      try {
        await trx.insertInto('user_identities').values(identity).execute()
      } catch (error) {
        if (isUniqueViolation(error)) throw new IdentityTakenError()
        throw error
      }
    },

    /** A new account without a password, signed in with this identity, in one transaction. */
    async createAccount(user: { id: string; email: string | null; first_name: string; last_name: string; roles: Role[]; email_confirmed_at: Date | null }, identity: Identity, at: Date): Promise<void> {
      await db.transaction().execute(async (trx) => {
        try {
          await trx.insertInto('users').values({ ...user, password_hash: null, created_at: at, updated_at: at }).execute()
        } catch (error) {
          if (isUniqueViolation(error)) throw new EmailTakenError()
          throw error
        }
        await this.addIdentity(identity, trx)
      })
    },

    async list(userId: string, limit: number, afterId: string | undefined): Promise<Identity[]> {
      let select = db.selectFrom('user_identities').selectAll().where('user_id', '=', userId)
      if (afterId) select = select.where('id', '>', afterId)
      return select.orderBy('id').limit(limit + 1).execute()
    },

    /**
     * Removes one of the user's identities, unless it is the last way to sign in (no password, no
     * other identity). The user's row is locked, so two unlinks at once can't leave it with none.
     */
    async remove(userId: string, id: string): Promise<'removed' | 'not_found' | 'last'> {
      return db.transaction().execute(async (trx) => {
        const user = await trx.selectFrom('users').select('password_hash').where('id', '=', userId).forUpdate().executeTakeFirst()
        const identity = await trx.selectFrom('user_identities').select('id').where('id', '=', id).where('user_id', '=', userId).executeTakeFirst()
        if (!user || !identity) return 'not_found'
        if (user.password_hash === null) {
          const { n } = await trx.selectFrom('user_identities').select((eb) => eb.fn.countAll<string>().as('n')).where('user_id', '=', userId).executeTakeFirstOrThrow()
          if (Number(n) <= 1) return 'last'
        }
        await trx.deleteFrom('user_identities').where('id', '=', id).execute()
        return 'removed'
      })
    },

    async forgetUser(userId: string): Promise<void> {
      await db.deleteFrom('user_identities').where('user_id', '=', userId).execute()
      await db.deleteFrom('oidc_exchange_codes').where('user_id', '=', userId).execute()
    },

    async sweep(now: Date): Promise<void> {
      await db.deleteFrom('oidc_flows').where('expires_at', '<=', now).execute()
      await db.deleteFrom('oidc_exchange_codes').where('expires_at', '<=', now).execute()
    },
  }
}

export type OidcStore = ReturnType<typeof createOidcStore>
