import { createHash } from 'node:crypto'
import { v7 as uuidv7 } from 'uuid'
import { ConflictError, ForbiddenError, InvalidInputError, NotFoundError, UnauthenticatedError } from '../../errors.js'
import { decodeCursor, pageOf } from '../../http/cursor.js'
import { toProfilePicture } from '../../platform/images.js'
import type { PasswordHasher } from '../../platform/passwords.js'
import type { FastifyBaseLogger } from 'fastify'
import type { Clock } from '../../platform/clock.js'
import type { EventBus } from '../../platform/live/index.js'
import { createSharedCache } from '../../platform/live/shared-cache.js'
import { Type } from 'typebox'
import type { SignupInput, UpdateUserInput, UserView } from './schemas.js'
import type { Queue, StopHandling } from '../../platform/queue/index.js'
import { createAccountsStore, EmailTakenError, type AccountsStore, type Role, type UserRow } from './store.js'
import { sql, type Transaction } from 'kysely'
import type { Database } from '../../platform/db/index.js'
import { checkNewPassword } from './password-policy.js'
import type { AccountChangedHook, AccountDeletedHook, AccountSessions, Actor, AdminActRecorder, EmailChangeHook, SignedUpHook } from './types.js'
import { createUserViews } from './view.js'

export type { AccountChangedHook, AccountDeletedHook, AccountSessions, Actor, AdminActRecorder, EmailChangeHook, ShownUser, SignedUpHook, SummarizedUser } from './types.js'

/** How recent a sign-in vouches for an account without a password, where a password would be asked. */
const RECENT_SIGN_IN_MS = 5 * 60_000
/** Users kept in each process for search results and the like (about 300 bytes each). */
const CACHED_USERS = 100_000
const CACHED_USER_TTL_MS = 60_000
const CursorPosition = Type.Object({ id: Type.String({ format: 'uuid' }) })

/**
 * What follows a change or a deletion: tasks added in its transaction (the outbox), run at once
 * after the commit and, should that fail, by a worker a little later, with retries.
 */
const CHANGED_TASK = 'accounts.changed'
const DELETED_TASK = 'accounts.deleted'
interface ChangedTask {
  user_id: string
}
interface DeletedTask {
  user_id: string
}

export function createAccountsService(deps: {
  store: AccountsStore
  hasher: PasswordHasher
  sessions: AccountSessions
  publicUrl: string | undefined
  /** Where a change to a user is told to every process, so that their caches drop it. */
  events: EventBus
  log: Pick<FastifyBaseLogger, 'warn'>
  clock: Clock
  queue: Queue
}) {
  const { store, hasher } = deps
  const deletedHooks: AccountDeletedHook[] = []
  /** This process's task handlers, stopped at close. */
  const handlers: StopHandling[] = []
  const changedHooks: AccountChangedHook[] = []
  const signedUpHooks: SignedUpHook[] = []
  let emailChangeHook: EmailChangeHook | undefined
  let recordAdminAct: AdminActRecorder | undefined
  // Users as other features show them (search results, a poster's roles), read through a cache
  // of each process; every change to a user drops it everywhere.
  const cached = createSharedCache<UserRow>({ events: deps.events, name: 'users', max: CACHED_USERS, ttlMs: CACHED_USER_TTL_MS })

  const { isAdmin, pictureUrl, view, summary } = createUserViews(deps.publicUrl)

  /**
   * What follows a change to a user (committed already, with its sessions' part): every
   * process's cache drops it, and the other features hear of it (`before` when known: the map's
   * card is rewritten only when what it shows changed).
   */
  const afterChange = async (task: ChangedTask, user?: UserRow, before?: UserRow) => {
    deps.sessions.forget([task.user_id])
    await cached.changed([task.user_id])
    const current = user ?? (await store.findById(task.user_id))
    if (current) for (const hook of changedHooks) await hook(current, before)
  }

  /** What follows a deletion (its sessions ended with it): the other features forget the user, caches drop it. */
  const afterDeletion = async (task: DeletedTask) => {
    deps.sessions.forget([task.user_id])
    for (const hook of deletedHooks) await hook(task.user_id)
    await cached.changed([task.user_id])
  }

  /**
   * Writes a change to a user with the task of what follows it, in one transaction; then runs
   * that at once. A failure there is logged and left to the task: the change stands. Sessions
   * hear of the change in the same transaction (a new password, `endSessions`, also ends them:
   * all, or all but the one that made it), so no process authenticates with the old user past
   * the commit by more than a second.
   */
  const change = (write: (store: AccountsStore) => Promise<UserRow | undefined>, options: { endSessions?: { keep?: string }; before?: UserRow } = {}) =>
    deps.queue.writeThenRun(
      store.transaction,
      CHANGED_TASK,
      async (trx) => {
        const user = await write(createAccountsStore(trx))
        if (user && options.endSessions) await deps.sessions.revokeIn(trx, user.id, options.endSessions.keep)
        else if (user) await deps.sessions.changedIn(trx, [user.id])
        return user
      },
      (user): ChangedTask | null => (user ? { user_id: user.id } : null),
      (data, user) => afterChange(data, user, options.before),
    )

  /** The caller's current password, given to `what` (a stolen token alone must not be enough): missing 400, wrong 403. */
  const checkCurrentPassword = async (current: string | undefined, hash: string | null, what: string) => {
    if (current === undefined) {
      throw new InvalidInputError(`current_password is needed to ${what}`, [{ field: 'body/current_password', message: 'is required' }], 'current_password_required')
    }
    if (!(await hasher.verify(current, hash))) throw new ForbiddenError('current_password is wrong', 'wrong_password')
  }

  /** For an account without a password, where one would be asked: a sign-in of the last minutes, else 403 `recent_sign_in_required`. */
  const mustHaveSignedInRecently = (actor: Actor, what: string) => {
    if (deps.clock.now().getTime() - actor.signedInAt.getTime() > RECENT_SIGN_IN_MS) {
      throw new ForbiddenError(`This account has no password: sign in again (within ${RECENT_SIGN_IN_MS / 60_000} minutes) to ${what}`, 'recent_sign_in_required')
    }
  }

  const mustFind = async (id: string) => {
    const user = await store.findById(id)
    if (!user) throw new NotFoundError('No such user', 'user_not_found')
    return user
  }

  /** The acting user, and the target of a change: the actor itself, or anyone for an admin. */
  const actingOn = async (actor: Actor, targetId: string | undefined) => {
    const me = await store.findById(actor.userId)
    if (!me) throw new UnauthenticatedError()
    if (!targetId || targetId === me.id) return { me, target: me }
    if (!isAdmin(me)) throw new ForbiddenError('Only admins may change or delete another user')
    return { me, target: await mustFind(targetId) }
  }

  /**
   * In `trx`: holds every admin's row (so two acts at once can't each think another admin stays)
   * and refuses when `userId` is the last admin.
   */
  const keepLastAdmin = async (trx: Transaction<Database>, userId: string) => {
    const admins = await trx.selectFrom('users').select('id').where(sql<boolean>`'ADMIN' = ANY(roles)`).where('deleted_at', 'is', null).orderBy('id').forUpdate().execute()
    if (admins.length <= 1 && admins.some((a) => a.id === userId)) throw new ConflictError('This is the last admin: make another admin first', 'last_admin')
  }

  /** An admin's act on an account, to the audit log in the act's transaction. */
  const auditAdminAct = async (trx: Transaction<Database>, actor: Actor, action: string, targetId: string, details: Record<string, unknown>) => {
    if (!recordAdminAct) return
    const origin = actor.origin ?? { address: null, requestId: null }
    await recordAdminAct(trx, { actorId: actor.userId, ...origin }, { action, targetType: 'user', targetId, details }, deps.clock.now())
  }

  return {
    view,
    pictureUrl,
    summary,
    onDeleted(hook: AccountDeletedHook) {
      deletedHooks.push(hook)
    },
    onChanged(hook: AccountChangedHook) {
      changedHooks.push(hook)
    },
    onSignedUp(hook: SignedUpHook) {
      signedUpHooks.push(hook)
    },
    /** Where an admin's acts through these routes are recorded (the audit log). */
    recordAdminActsWith(recorder: AdminActRecorder) {
      recordAdminAct = recorder
    },
    /** Who handles a change of email (by mail); without one, an email changes at once. */
    handleEmailChanges(hook: EmailChangeHook) {
      emailChangeHook = hook
    },

    /**
     * A change to a user written by another feature (a confirmed email, a reset password) in one
     * transaction with what follows it: sessions told (or ended), caches dropped everywhere.
     */
    changeWith: (write: (trx: Transaction<Database>) => Promise<UserRow | undefined>, options: { endSessions?: { keep?: string } } = {}) =>
      change((store) => write(store.trx), options),

    /**
     * Users by id (deleted ones are left out), from this process's cache when they are in it. A
     * change made anywhere shows here once its event arrives (within a minute at worst): for
     * showing other users, not for deciding what a user may do.
     */
    byIds: (ids: readonly string[]): Promise<Map<string, UserRow>> => cached.getMany(ids, (missing) => store.findByIds(missing)),

    /** Whether the user is an admin now: read from the database, for deciding what a user may see. */
    isAdmin: async (userId: string): Promise<boolean> => (await store.findById(userId))?.roles.includes('ADMIN') ?? false,

    async start() {
      await cached.start()
      handlers.push(await deps.queue.handle<ChangedTask>(CHANGED_TASK, (task) => afterChange(task.data)))
      handlers.push(await deps.queue.handle<DeletedTask>(DELETED_TASK, (task) => afterDeletion(task.data)))
    },
    async close() {
      for (const stop of handlers.splice(0)) await stop()
      await cached.close()
    },

    async signup(input: SignupInput): Promise<UserView> {
      checkNewPassword(input.password)
      const password_hash = await hasher.hash(input.password)
      try {
        // The account and its confirmation mail commit together.
        const user = await store.transaction(async (trx) => {
          const user = await createAccountsStore(trx).insert({
            id: uuidv7(),
            email: input.email.trim(),
            first_name: input.first_name.trim(),
            last_name: input.last_name.trim(),
            password_hash,
            roles: input.roles ?? ['CLIENT'],
          }, deps.clock.now())
          for (const hook of signedUpHooks) await hook(trx, user)
          return user
        })
        return view(user, user)
      } catch (error) {
        if (error instanceof EmailTakenError) throw new ConflictError('An account with this email exists already', 'email_taken')
        throw error
      }
    },

    /** A user as `viewer` sees it; the viewer itself (by default) as its authentication carries it, with no read. */
    async get(viewer: UserRow, id: string | undefined): Promise<UserView> {
      const user = !id || id === viewer.id ? viewer : await mustFind(id)
      return view(user, viewer)
    },

    async update(actor: Actor, input: UpdateUserInput): Promise<UserView> {
      const { me, target } = await actingOn(actor, input.id)
      const self = me.id === target.id
      if (input.roles?.includes('ADMIN') !== target.roles.includes('ADMIN') && input.roles && !isAdmin(me)) {
        throw new ForbiddenError('Only an admin may grant or take away ADMIN')
      }
      // Changing one's own password or email needs the current password: a stolen token alone
      // must not be enough to take the account over.
      if (self && (input.password !== undefined || input.email !== undefined)) {
        const hash = await store.passwordHash(me.id)
        // An account made by a provider has no password to give: a recent sign-in vouches
        // instead (as for deleting it), so it can set its first one.
        if (hash === null) mustHaveSignedInRecently(actor, 'set a password or change the email')
        else await checkCurrentPassword(input.current_password, hash, 'change the password or email')
      }
      if (input.password !== undefined) checkNewPassword(input.password)
      // A new email is the user's only once a link mailed to it is followed: until then it is
      // asked for, and the address there was stays (see handleEmailChanges).
      const newEmail = input.email?.trim()
      const emailChanges = newEmail !== undefined && newEmail.toLowerCase() !== target.email?.toLowerCase()
      if (emailChanges && emailChangeHook) {
        const holder = await store.findForLogin(newEmail)
        if (holder && holder.id !== target.id) throw new ConflictError('An account with this email exists already', 'email_taken')
      }
      try {
        const changes = {
          ...(input.first_name !== undefined ? { first_name: input.first_name.trim() } : {}),
          ...(input.last_name !== undefined ? { last_name: input.last_name.trim() } : {}),
          ...(newEmail !== undefined && (!emailChangeHook || !emailChanges) ? { email: newEmail } : {}),
          ...(input.roles !== undefined ? { roles: input.roles as Role[] } : {}),
          ...(input.password !== undefined ? { password_hash: await hasher.hash(input.password) } : {}),
        }
        // A new password ends every other session: whoever knew the old one is out.
        const endSessions = input.password !== undefined ? { keep: self ? actor.sessionId : undefined } : undefined
        const rolesChange = input.roles !== undefined && [...input.roles].sort().join() !== [...target.roles].sort().join()
        const dropsAdmin = input.roles !== undefined && target.roles.includes('ADMIN') && !input.roles.includes('ADMIN')
        // An admin's act: on another user, or on roles (its own too). Which fields changed, never their values.
        const audited = !self || (rolesChange && isAdmin(me))
        const updated = await change(async (store) => {
          if (dropsAdmin) await keepLastAdmin(store.trx, target.id)
          const updated = await store.update(target.id, changes, deps.clock.now())
          if (updated && emailChanges && emailChangeHook) await emailChangeHook(store.trx, updated, newEmail)
          if (updated && audited) {
            const fields = Object.keys(input).filter((key) => key !== 'id' && key !== 'current_password' && input[key as keyof UpdateUserInput] !== undefined)
            await auditAdminAct(store.trx, actor, rolesChange ? 'user.roles' : 'user.update', target.id, { fields, ...(rolesChange ? { before: target.roles, after: updated.roles } : {}) })
          }
          return updated
        }, { endSessions, before: target })
        if (!updated) throw new NotFoundError('No such user', 'user_not_found')
        return view(updated, me)
      } catch (error) {
        if (error instanceof EmailTakenError) throw new ConflictError('An account with this email exists already', 'email_taken')
        throw error
      }
    },

    /** Marks a user's email confirmed, by email (the demo's people, made on the command line); false if there is no such user. */
    async confirmEmailOf(email: string): Promise<boolean> {
      const user = await change((store) => store.confirmEmail(email.trim(), deps.clock.now()))
      return user !== undefined
    },

    /**
     * An admin's change of a user's roles: `decide` answers the new roles from the user as held
     * in the transaction (or throws), and `also` runs in that transaction with the user before and
     * after (the audit log). Admins are held in it too, so that two admins taking ADMIN from each
     * other can't leave none.
     */
    async setRolesByAdmin(
      targetId: string,
      decide: (user: UserRow, admins: number) => Role[],
      also: (trx: Transaction<Database>, before: UserRow, after: UserRow) => Promise<void>,
    ): Promise<UserView> {
      let before: UserRow | undefined
      const updated = await change((txStore) =>
        txStore.transaction(async (trx) => {
          const admins = await trx.selectFrom('users').select('id').where(sql<boolean>`'ADMIN' = ANY(roles)`).where('deleted_at', 'is', null).orderBy('id').forUpdate().execute()
          before = await txStore.findById(targetId)
          if (!before) throw new NotFoundError('No such user', 'user_not_found')
          const roles = decide(before, admins.length)
          const after = await txStore.update(targetId, { roles }, deps.clock.now())
          await also(trx, before, after!)
          return after
        }),
      )
      return view(updated!, { id: '', roles: ['ADMIN'] })
    },

    /** An admin deletes a user, with `also` in the deletion's transaction (the audit log). */
    async deleteByAdmin(targetId: string, also: (trx: Transaction<Database>) => Promise<void>): Promise<void> {
      const deleted = await deps.queue.writeThenRun(
        store.transaction,
        DELETED_TASK,
        async (trx) => {
          const deleted = await createAccountsStore(trx).delete(targetId, deps.clock.now())
          if (deleted) {
            await deps.sessions.revokeIn(trx, targetId)
            await also(trx)
          }
          return deleted
        },
        (deleted): DeletedTask | null => (deleted ? { user_id: targetId } : null),
        afterDeletion,
      )
      if (!deleted) throw new NotFoundError('No such user', 'user_not_found')
    },

    /** Grants or takes away ADMIN by email (the command line's way to make the first admin); false if there is no such user. */
    async setAdmin(email: string, admin: boolean): Promise<boolean> {
      const user = await change((store) => store.setAdmin(email.trim(), admin, deps.clock.now()))
      return user !== undefined
    },

    /**
     * Deletes the actor, or another user for an admin. A token alone is not enough: the actor's
     * own password is asked, or for an account without one, a sign-in of the last minutes.
     */
    async delete(actor: Actor, id: string | undefined, currentPassword: string | undefined): Promise<void> {
      const { me, target } = await actingOn(actor, id)
      const hash = await store.passwordHash(me.id)
      if (hash === null) mustHaveSignedInRecently(actor, 'delete')
      else await checkCurrentPassword(currentPassword, hash, 'delete a user')
      const deleted = await deps.queue.writeThenRun(
        store.transaction,
        DELETED_TASK,
        async (trx) => {
          // Deleting the last admin would leave nobody to admit another (but the command line).
          if (isAdmin(target)) await keepLastAdmin(trx, target.id)
          const deleted = await createAccountsStore(trx).delete(target.id, deps.clock.now())
          if (deleted) {
            await deps.sessions.revokeIn(trx, target.id)
            if (target.id !== me.id) await auditAdminAct(trx, actor, 'user.delete', target.id, {})
          }
          return deleted
        },
        (deleted): DeletedTask | null => (deleted ? { user_id: target.id } : null),
        afterDeletion,
      )
      if (!deleted) throw new NotFoundError('No such user', 'user_not_found')
    },

    async list(viewerId: string, query: { q?: string; role?: Role; limit?: number; cursor?: string }) {
      const viewer = await store.findById(viewerId)
      if (!viewer) throw new UnauthenticatedError()
      if (query.role === 'ADMIN' && !isAdmin(viewer)) throw new ForbiddenError('Only admins may list the users with the ADMIN role', 'not_an_admin')
      const limit = query.limit ?? 20
      const after = decodeCursor(query.cursor, CursorPosition)
      const rows = await store.list({ q: query.q?.trim() || undefined, role: query.role, limit, afterId: after?.id })
      const page = pageOf(rows, limit, (last) => ({ id: last.id }))
      return { items: page.items.map((u) => view(u, viewer)), next_cursor: page.next_cursor }
    },

    async setPicture(actor: Actor, upload: Buffer): Promise<UserView> {
      const image = await toProfilePicture(upload)
      const etag = createHash('sha256').update(image).digest('base64url').slice(0, 16)
      const user = await change((store) => store.setPicture(actor.userId, image, etag, deps.clock.now()))
      if (!user) throw new UnauthenticatedError()
      return view(user, user)
    },

    async picture(userId: string) {
      const picture = await store.picture(userId)
      if (!picture) throw new NotFoundError('This user has no picture', 'picture_not_found')
      return picture
    },
  }
}

export type AccountsService = ReturnType<typeof createAccountsService>
