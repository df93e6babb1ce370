import { sql, type ColumnType, type Generated, type Selectable, type Transaction } from 'kysely'
import type { Database, DB } from '../../platform/db/index.js'

export type Role = 'CLIENT' | 'WORKER' | 'ADMIN'

declare module '../../platform/db/types.js' {
  interface Database {
    users: UsersTable
    user_pictures: { user_id: string; image: Buffer | Uint8Array; etag: string; updated_at: Generated<Date> }
  }
}

interface UsersTable {
  id: string
  email: string | null
  first_name: string
  last_name: string
  password_hash: string | null
  roles: Role[]
  picture_etag: string | null
  created_at: Generated<Date>
  updated_at: Generated<Date>
  deleted_at: ColumnType<Date | null, never, Date | null>
  /** Raised to end every session of the user at once (the sessions feature's). */
  sessions_version: Generated<number>
  /** When the user followed the confirmation link mailed to `email`; null until then. */
  email_confirmed_at: ColumnType<Date | null, Date | null | undefined, Date | null>
  /** When an admin suspended the account (it can't sign in); null while it is not. */
  suspended_at: ColumnType<Date | null, Date | null | undefined, Date | null>
  suspended_reason: ColumnType<string | null, string | null | undefined, string | null>
}

/** A user as stored, without the password hash (which only findForLogin reads). */
export type UserRow = Omit<Selectable<UsersTable>, 'password_hash' | 'deleted_at' | 'sessions_version' | 'suspended_at' | 'suspended_reason'>

const PUBLIC_COLUMNS = ['id', 'email', 'first_name', 'last_name', 'roles', 'picture_etag', 'created_at', 'updated_at', 'email_confirmed_at'] as const

export interface UserListQuery {
  q?: string
  role?: Role
  limit: number
  afterId?: string
}

export class EmailTakenError extends Error {}

const isUniqueViolation = (error: unknown) => (error as { code?: string } | null)?.code === '23505'

export function createAccountsStore(db: DB) {
  /** Work that needs a transaction: the caller's, when the store is on one already. */
  const inTransaction = <T>(work: (trx: Transaction<Database>) => Promise<T>): Promise<T> =>
    db.isTransaction ? work(db as Transaction<Database>) : db.transaction().execute(work)

  const live = () => db.selectFrom('users').where('deleted_at', 'is', null)

  return {
    async insert(user: { id: string; email: string; first_name: string; last_name: string; password_hash: string; roles: Role[] }, at: Date): Promise<UserRow> {
      try {
        return await db.insertInto('users').values({ ...user, created_at: at, updated_at: at }).returning(PUBLIC_COLUMNS).executeTakeFirstOrThrow()
      } catch (error) {
        if (isUniqueViolation(error)) throw new EmailTakenError()
        throw error
      }
    },

    async findById(id: string): Promise<UserRow | undefined> {
      return live().select(PUBLIC_COLUMNS).where('id', '=', id).executeTakeFirst()
    },

    /** The users of these ids that exist (deleted ones are left out). */
    async findByIds(ids: readonly string[]): Promise<Map<string, UserRow>> {
      if (ids.length === 0) return new Map()
      const rows = await live().select(PUBLIC_COLUMNS).where('id', 'in', ids).execute()
      return new Map(rows.map((row) => [row.id, row]))
    },

    /**
     * The one read of a password hash: for checking a password. With the user's sessions_version
     * as it is when the sign-in begins: a session is made only if it is still that at the end.
     */
    async findForLogin(email: string) {
      return live()
        .select([...PUBLIC_COLUMNS, 'password_hash', 'sessions_version', 'suspended_at'])
        .where(sql`lower(email)`, '=', email.toLowerCase())
        .executeTakeFirst()
    },

    /** A user by id with its sessions_version, for a sign-in that proved who it is otherwise (a provider, a second factor). */
    async findForSignIn(id: string) {
      return live().select([...PUBLIC_COLUMNS, 'sessions_version']).where('id', '=', id).executeTakeFirst()
    },

    /** Whether the user's email is confirmed (followed a mailed link, or vouched for by a provider). */
    async emailConfirmed(id: string): Promise<boolean> {
      const row = await live().select('email_confirmed_at').where('id', '=', id).executeTakeFirst()
      return row?.email_confirmed_at != null
    },

    async passwordHash(id: string): Promise<string | null> {
      const row = await live().select('password_hash').where('id', '=', id).executeTakeFirst()
      return row?.password_hash ?? null
    },

    async update(
      id: string,
      changes: Partial<Pick<UsersTable, 'first_name' | 'last_name' | 'roles' | 'password_hash' | 'email' | 'picture_etag'> & { email_confirmed_at: Date | null }>,
      at: Date,
    ): Promise<UserRow | undefined> {
      try {
        return await db
          .updateTable('users')
          .set({ ...changes, updated_at: at })
          .where('id', '=', id)
          .where('deleted_at', 'is', null)
          .returning(PUBLIC_COLUMNS)
          .executeTakeFirst()
      } catch (error) {
        if (isUniqueViolation(error)) throw new EmailTakenError()
        throw error
      }
    },

    /** Grants or takes away ADMIN, by email; the user as it is then, or undefined if there is none. */
    async setAdmin(email: string, admin: boolean, at: Date): Promise<UserRow | undefined> {
      return db
        .updateTable('users')
        .set({
          roles: admin ? sql<Role[]>`CASE WHEN 'ADMIN' = ANY(roles) THEN roles ELSE array_append(roles, 'ADMIN') END` : sql<Role[]>`array_remove(roles, 'ADMIN')`,
          updated_at: at,
        })
        .where(sql`lower(email)`, '=', email.toLowerCase())
        .where('deleted_at', 'is', null)
        .returning(PUBLIC_COLUMNS)
        .executeTakeFirst()
    },

    /**
     * Deletes an account: its personal data and picture go, the row stays as a tombstone so that
     * messages and jobs others hold keep their reference. Answers false if there was none.
     */
    async delete(id: string, at: Date): Promise<boolean> {
      return inTransaction(async (trx) => {
        await trx.deleteFrom('user_pictures').where('user_id', '=', id).execute()
        const result = await trx
          .updateTable('users')
          .set({ email: null, first_name: '', last_name: '', password_hash: null, picture_etag: null, deleted_at: at, updated_at: at })
          .where('id', '=', id)
          .where('deleted_at', 'is', null)
          .executeTakeFirst()
        return result.numUpdatedRows > 0n
      })
    },

    /** The transaction this store writes in (its caller's). */
    get trx(): Transaction<Database> {
      if (!db.isTransaction) throw new Error('this store is not on a transaction')
      return db as Transaction<Database>
    },

    /** Marks the email confirmed (unless it is already), by email; the user, or undefined if there is none. */
    async confirmEmail(email: string, at: Date): Promise<UserRow | undefined> {
      return db
        .updateTable('users')
        .set({ email_confirmed_at: sql<Date>`coalesce(email_confirmed_at, ${at})`, updated_at: at })
        .where(sql`lower(email)`, '=', email.toLowerCase())
        .where('deleted_at', 'is', null)
        .returning(PUBLIC_COLUMNS)
        .executeTakeFirst()
    },

    /** Runs `work` in one transaction (a store made on it writes there, with the tasks of the outbox). */
    transaction<T>(work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
      return inTransaction(work)
    },

    async list(query: UserListQuery): Promise<UserRow[]> {
      let select = live().select(PUBLIC_COLUMNS)
      if (query.q) {
        // ILIKE on the trigram index: a match anywhere in "first last", any case.
        const pattern = `%${query.q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`
        select = select.where(sql`lower(first_name || ' ' || last_name)`, 'like', pattern)
      }
      if (query.role) select = select.where(sql<boolean>`${query.role} = ANY(roles)`)
      if (query.afterId) select = select.where('id', '>', query.afterId)
      return select.orderBy('id').limit(query.limit + 1).execute()
    },

    async setPicture(userId: string, image: Buffer, etag: string, at: Date): Promise<UserRow | undefined> {
      return inTransaction(async (trx) => {
        const user = await trx
          .updateTable('users')
          .set({ picture_etag: etag, updated_at: at })
          .where('id', '=', userId)
          .where('deleted_at', 'is', null)
          .returning(PUBLIC_COLUMNS)
          .executeTakeFirst()
        if (!user) return undefined
        await trx
          .insertInto('user_pictures')
          .values({ user_id: userId, image, etag, updated_at: at })
          .onConflict((oc) => oc.column('user_id').doUpdateSet({ image, etag, updated_at: at }))
          .execute()
        return user
      })
    },

    async picture(userId: string): Promise<{ image: Buffer; etag: string; updated_at: Date } | undefined> {
      const row = await db
        .selectFrom('user_pictures')
        .innerJoin('users', 'users.id', 'user_pictures.user_id')
        .select(['image', 'etag', 'user_pictures.updated_at'])
        .where('user_id', '=', userId)
        .where('users.deleted_at', 'is', null)
        .executeTakeFirst()
      return row ? { ...row, image: Buffer.from(row.image) } : undefined
    },
  }
}

export type AccountsStore = ReturnType<typeof createAccountsStore>
