import { sql, type Transaction } from 'kysely'
import { Type } from 'typebox'
import { ConflictError, InvalidInputError, NotFoundError } from '../../errors.js'
import { cursorTime, decodeCursor, pageOf } from '../../http/cursor.js'
import type { Clock } from '../../platform/clock.js'
import type { DB, Database } from '../../platform/db/index.js'
import type { AccountsService, Role } from '../accounts/index.js'
import { createJobsStore, jobView, type JobsService } from '../jobs/index.js'
import type { ReviewsService } from '../reviews/index.js'
import type { AdminContext, AuditStore } from './audit.js'
import type { AdminUserQueryInput, AdminUserView } from './schemas.js'

// What admins do to users, reports and jobs. Every change is written with its audit entry in one
// transaction; what follows the commit (pushes, the map, caches) comes after.

const IdPosition = Type.Object({ id: Type.String({ format: 'uuid' }) })
const TimePosition = Type.Object({ at: Type.String({ format: 'date-time' }), id: Type.String({ format: 'uuid' }) })

const ADMIN_USER_COLUMNS = ['id', 'email', 'first_name', 'last_name', 'roles', 'picture_etag', 'created_at', 'updated_at', 'suspended_at', 'suspended_reason'] as const

interface AdminUserRow {
  id: string
  email: string | null
  first_name: string
  last_name: string
  roles: Role[]
  picture_etag: string | null
  created_at: Date
  updated_at: Date
  suspended_at: Date | null
  suspended_reason: string | null
}

const userNotFound = () => new NotFoundError('No such user', 'user_not_found')
const escapeLike = (text: string) => text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)

export function createAdminService(deps: {
  db: DB
  clock: Clock
  audit: AuditStore
  accounts: Pick<AccountsService, 'view' | 'summary' | 'setRolesByAdmin' | 'deleteByAdmin'>
  sessions: {
    revokeIn(trx: Transaction<Database>, userId: string): Promise<void>
    forget(userIds: readonly string[]): void
  }
  /** Takes a user off the map (the live store). */
  offTheMap: (userId: string) => Promise<void>
  jobs: Pick<JobsService, 'cancelOpenJobsIn' | 'pushCommitted'>
  reviews: Pick<ReviewsService, 'hideIn' | 'afterHidden'>
  log: { warn(object: object, message: string): void }
}) {
  const { db, clock, audit } = deps

  const toAdminUser = (row: AdminUserRow): AdminUserView => ({
    ...deps.accounts.view(row, { id: '', roles: ['ADMIN'] }),
    email: row.email,
    status: row.suspended_at ? 'suspended' : 'active',
    suspended_at: row.suspended_at?.toISOString() ?? null,
    suspended_reason: row.suspended_reason,
  })

  const lockUser = (trx: Transaction<Database>, id: string) =>
    trx.selectFrom('users').select(ADMIN_USER_COLUMNS).where('id', '=', id).where('deleted_at', 'is', null).forUpdate().executeTakeFirst() as Promise<AdminUserRow | undefined>

  const findUser = (id: string) => db.selectFrom('users').select(ADMIN_USER_COLUMNS).where('id', '=', id).where('deleted_at', 'is', null).executeTakeFirst() as Promise<AdminUserRow | undefined>

  const notSelf = (context: AdminContext, id: string, what: string) => {
    if (context.actorId === id) throw new ConflictError(`An admin can't ${what} itself here`, 'admin_self')
  }

  /**
   * In the caller's transaction: suspends the user, ends all its sessions (every process hears
   * of it at the commit: requests answer 401, sockets close), and cancels its open jobs with a
   * message to the other side. Answers what to do after the commit.
   */
  const suspendIn = async (trx: Transaction<Database>, context: AdminContext, userId: string, reason: string, extra: Record<string, unknown> = {}) => {
    notSelf(context, userId, 'suspend')
    const user = await lockUser(trx, userId)
    if (!user) throw userNotFound()
    const now = clock.now()
    const updated = (await trx
      .updateTable('users')
      .set({ suspended_at: user.suspended_at ?? now, suspended_reason: reason })
      .where('id', '=', userId)
      .returning(ADMIN_USER_COLUMNS)
      .executeTakeFirstOrThrow()) as AdminUserRow
    await deps.sessions.revokeIn(trx, userId)
    const canceled = user.suspended_at ? [] : await deps.jobs.cancelOpenJobsIn(trx, userId, 'The account was suspended')
    await audit.record(trx, context, { action: 'user.suspend', targetType: 'user', targetId: userId, reason, details: { canceled_jobs: canceled.map((c) => c.row.id), ...extra } }, now)
    return { updated, canceled }
  }

  const afterSuspension = async (userId: string, canceled: Awaited<ReturnType<typeof suspendIn>>['canceled']) => {
    deps.sessions.forget([userId])
    deps.jobs.pushCommitted(canceled)
    await deps.offTheMap(userId).catch((error: unknown) => deps.log.warn({ err: error, user_id: userId }, 'could not take a suspended user off the map'))
  }

  return {
    async listUsers(query: AdminUserQueryInput) {
      const limit = query.limit ?? 20
      const after = decodeCursor(query.cursor, IdPosition)
      let select = db.selectFrom('users').select(ADMIN_USER_COLUMNS).where('deleted_at', 'is', null)
      const q = query.q?.trim()
      if (q) {
        const pattern = `%${escapeLike(q)}%`
        select = select.where((eb) => eb.or([eb(sql`lower(first_name || ' ' || last_name)`, 'like', pattern), eb(sql`lower(email)`, 'like', pattern)]))
      }
      if (query.role) select = select.where(sql<boolean>`${query.role} = ANY(roles)`)
      if (query.status === 'suspended') select = select.where('suspended_at', 'is not', null)
      if (query.status === 'active') select = select.where('suspended_at', 'is', null)
      if (query.created_from) select = select.where('created_at', '>=', cursorTime(query.created_from))
      if (query.created_to) select = select.where('created_at', '<', cursorTime(query.created_to))
      if (after) select = select.where('id', '>', after.id)
      const rows = (await select.orderBy('id').limit(limit + 1).execute()) as AdminUserRow[]
      const page = pageOf(rows, limit, (last) => ({ id: last.id }))
      return { items: page.items.map(toAdminUser), next_cursor: page.next_cursor }
    },

    async getUser(id: string) {
      const user = await findUser(id)
      if (!user) throw userNotFound()
      return toAdminUser(user)
    },

    async suspend(context: AdminContext, userId: string, reason: string) {
      const { updated, canceled } = await db.transaction().execute((trx) => suspendIn(trx, context, userId, reason.trim()))
      await afterSuspension(userId, canceled)
      return toAdminUser(updated)
    },

    async restore(context: AdminContext, userId: string, reason: string | undefined) {
      const updated = await db.transaction().execute(async (trx) => {
        const user = await lockUser(trx, userId)
        if (!user) throw userNotFound()
        const row = (await trx.updateTable('users').set({ suspended_at: null, suspended_reason: null }).where('id', '=', userId).returning(ADMIN_USER_COLUMNS).executeTakeFirstOrThrow()) as AdminUserRow
        await audit.record(trx, context, { action: 'user.restore', targetType: 'user', targetId: userId, reason: reason ?? null, details: { was_suspended: user.suspended_at !== null } }, clock.now())
        return row
      })
      return toAdminUser(updated)
    },

    async deleteUser(context: AdminContext, userId: string, reason: string | undefined) {
      notSelf(context, userId, 'delete')
      await deps.accounts.deleteByAdmin(userId, (trx) => audit.record(trx, context, { action: 'user.delete', targetType: 'user', targetId: userId, reason: reason ?? null }, clock.now()))
    },

    /** Grants and takes away roles; the last admin keeps ADMIN (409 `last_admin`). */
    async setRoles(context: AdminContext, userId: string, input: { grant?: Role[]; revoke?: Role[]; reason?: string }) {
      const grant = input.grant ?? []
      const revoke = input.revoke ?? []
      if (grant.length + revoke.length === 0 || grant.some((r) => revoke.includes(r))) {
        throw new InvalidInputError('Name roles to grant or to revoke, none in both', [{ field: 'body', message: 'needs grant or revoke, disjoint' }])
      }
      const user = await deps.accounts.setRolesByAdmin(
        userId,
        (user, admins) => {
          const roles = [...new Set([...user.roles.filter((r) => !revoke.includes(r)), ...grant])]
          if (roles.length === 0) throw new ConflictError('A user keeps at least one role', 'conflict')
          if (user.roles.includes('ADMIN') && !roles.includes('ADMIN') && admins <= 1) throw new ConflictError('This is the last admin: make another admin first', 'last_admin')
          return roles
        },
        (trx, before, after) => audit.record(trx, context, { action: 'user.roles', targetType: 'user', targetId: userId, reason: input.reason ?? null, details: { before: before.roles, after: after.roles } }, clock.now()),
      )
      return this.getUser(user.id)
    },

    async listReports(query: { status?: 'open' | 'resolved' | 'all'; limit?: number; cursor?: string }) {
      const limit = query.limit ?? 20
      const after = decodeCursor(query.cursor, IdPosition)
      let select = db
        .selectFrom('reports as r')
        .leftJoin('messages as m', 'm.id', 'r.message_id')
        .leftJoin('reviews as v', 'v.id', 'r.review_id')
        .innerJoin('users as p', 'p.id', 'r.reporter_id')
        .select(['r.id', 'r.reporter_id', 'r.user_id', 'r.reason', 'r.created_at', 'r.resolved_at', 'r.resolution', 'r.message_id'])
        .select(['m.text as message_text', 'm.created_at as message_at'])
        .select(['v.id as review_id', 'v.rating as review_rating', 'v.text as review_text', 'v.job_id as review_job_id', 'v.hidden_at as review_hidden_at'])
        .select(['p.first_name as p_first_name', 'p.last_name as p_last_name', 'p.picture_etag as p_picture_etag', 'p.deleted_at as p_deleted_at'])
      const status = query.status ?? 'open'
      if (status === 'open') select = select.where('r.resolved_at', 'is', null)
      if (status === 'resolved') select = select.where('r.resolved_at', 'is not', null)
      if (after) select = select.where('r.id', '>', after.id)
      const rows = await select.orderBy('r.id').limit(limit + 1).execute()
      const users = new Map<string, AdminUserRow>()
      const ids = [...new Set(rows.map((r) => r.user_id))]
      if (ids.length > 0) for (const u of (await db.selectFrom('users').select(ADMIN_USER_COLUMNS).where('id', 'in', ids).execute()) as AdminUserRow[]) users.set(u.id, u)
      const page = pageOf(rows, limit, (last) => ({ id: last.id }))
      return {
        items: page.items.map((r) => ({
          id: r.id,
          reporter: deps.accounts.summary({ id: r.reporter_id, first_name: r.p_first_name, last_name: r.p_last_name, picture_etag: r.p_picture_etag, deleted_at: r.p_deleted_at }, r.reporter_id),
          user: toAdminUser(users.get(r.user_id)!),
          reason: r.reason,
          created_at: r.created_at.toISOString(),
          resolved_at: r.resolved_at?.toISOString() ?? null,
          resolution: r.resolution,
          message: r.message_id && r.message_text !== null && r.message_at ? { id: r.message_id, text: r.message_text, created_at: new Date(r.message_at).toISOString() } : null,
          review: r.review_id ? { id: r.review_id, rating: Number(r.review_rating), text: r.review_text ?? '', job_id: r.review_job_id!, hidden: r.review_hidden_at !== null } : null,
        })),
        next_cursor: page.next_cursor,
      }
    },

    /** Acts on an open report: dismiss it, hide the review it names, or suspend the user it names. */
    async resolveReport(context: AdminContext, reportId: string, action: 'dismiss' | 'hide' | 'suspend', reason: string) {
      const done = await db.transaction().execute(async (trx) => {
        const report = await trx.selectFrom('reports').select(['id', 'user_id', 'resolved_at', 'review_id']).where('id', '=', reportId).forUpdate().executeTakeFirst()
        if (!report) throw new NotFoundError('No such report', 'report_not_found')
        if (report.resolved_at) throw new ConflictError('The report was acted on already', 'report_resolved')
        const now = clock.now()
        const extra = { report_id: reportId }
        let hidden, suspended
        if (action === 'hide') {
          if (!report.review_id) throw new ConflictError('Only a reported review can be hidden', 'action_not_applicable')
          hidden = await deps.reviews.hideIn(trx, context, report.review_id, reason, extra)
        } else if (action === 'suspend') {
          suspended = await suspendIn(trx, context, report.user_id, reason, extra)
        }
        await trx.updateTable('reports').set({ resolved_at: now, resolution: action }).where('id', '=', reportId).execute()
        await audit.record(trx, context, { action: `report.${action}`, targetType: 'report', targetId: reportId, reason, details: { user_id: report.user_id, review_id: report.review_id } }, now)
        return { hidden, suspended, userId: report.user_id }
      })
      if (done.hidden) await deps.reviews.afterHidden(done.hidden)
      if (done.suspended) await afterSuspension(done.userId, done.suspended.canceled)
    },

    /** Any job, with its status log and payment, its messages and its ledger movements. */
    async job(jobId: string) {
      const job = await createJobsStore(db).findWithParties(jobId)
      if (!job) throw new NotFoundError('No such job', 'job_not_found')
      const [messages, payments] = await Promise.all([
        db.selectFrom('messages').select(['id', 'sender_id', 'recipient_id', 'kind', 'text', 'created_at']).where('job_id', '=', jobId).orderBy('id').execute(),
        db
          .selectFrom('ledger_transactions as t')
          .innerJoin('ledger_entries as e', 'e.transaction_id', 't.id')
          .select(['t.id', 't.kind', 't.at', 'e.account', 'e.currency', 'e.amount'])
          .where('t.job_id', '=', jobId)
          .orderBy('t.at')
          .orderBy('e.id')
          .execute(),
      ])
      // The job's ledger: each movement with its entries (debits positive, credits negative).
      const movements = new Map<string, { id: string; kind: string; currency: string; at: string; entries: { account: string; amount: number }[] }>()
      for (const row of payments) {
        const movement = movements.get(row.id) ?? { id: row.id, kind: row.kind, currency: row.currency, at: row.at.toISOString(), entries: [] }
        movement.entries.push({ account: row.account, amount: Number(row.amount) })
        movements.set(row.id, movement)
      }
      return {
        job: jobView(job, job.status_log),
        messages: messages.map((m) => ({ id: m.id, from: m.sender_id, to: m.recipient_id, kind: m.kind, text: m.text, created_at: m.created_at.toISOString() })),
        ledger: [...movements.values()],
      }
    },

    async auditLog(query: { actor_id?: string; action?: string; target_id?: string; from?: string; to?: string; limit?: number; cursor?: string }) {
      const limit = query.limit ?? 20
      const before = decodeCursor(query.cursor, TimePosition)
      const rows = await audit.list({
        actorId: query.actor_id,
        action: query.action,
        targetId: query.target_id,
        from: query.from ? cursorTime(query.from) : undefined,
        to: query.to ? cursorTime(query.to) : undefined,
        before: before && { at: cursorTime(before.at), id: before.id },
        limit,
      })
      const page = pageOf(rows, limit, (last) => ({ at: last.at.toISOString(), id: last.id }))
      return { items: page.items.map((e) => ({ ...e, at: e.at.toISOString() })), next_cursor: page.next_cursor }
    },
  }
}

export type AdminService = ReturnType<typeof createAdminService>
