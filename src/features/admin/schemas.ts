import { Type, type Static } from 'typebox'
import { Page, PageQuery, Timestamp, Uuid } from '../../http/schemas.js'
import { AnyRole, User, UserSummary } from '../accounts/index.js'
import { Job } from '../jobs/index.js'

const Reason = Type.String({ minLength: 1, maxLength: 2000, pattern: '\\S', description: 'Why: kept in the audit log' })
const OptionalReason = Type.Optional(Type.String({ maxLength: 2000, description: 'Why: kept in the audit log' }))

export const AdminUser = Type.Object(
  {
    ...User.properties,
    email: Type.Union([Type.String(), Type.Null()]),
    status: Type.Union([Type.Literal('active'), Type.Literal('suspended')]),
    suspended_at: Type.Union([Timestamp, Type.Null()]),
    suspended_reason: Type.Union([Type.String(), Type.Null()]),
  },
  { description: 'A user as admins see it' },
)
export type AdminUserView = Static<typeof AdminUser>

export const AdminUserQuery = Type.Object(
  {
    q: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Matches name or email, any case' })),
    role: Type.Optional(AnyRole),
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('suspended')])),
    created_from: Type.Optional(Type.String({ format: 'date-time', description: 'Signed up at or after' })),
    created_to: Type.Optional(Type.String({ format: 'date-time', description: 'Signed up before' })),
    ...PageQuery,
  },
  { additionalProperties: false },
)
export type AdminUserQueryInput = Static<typeof AdminUserQuery>
export const AdminUserList = Page(AdminUser, 'By sign-up, oldest first')

export const SuspendBody = Type.Object({ reason: Reason }, { additionalProperties: false, examples: [{ reason: 'Threatened a worker' }] })
export const ReasonBody = Type.Object({ reason: OptionalReason }, { additionalProperties: false })
export const RolesBody = Type.Object(
  {
    grant: Type.Optional(Type.Array(AnyRole, { maxItems: 3, uniqueItems: true })),
    revoke: Type.Optional(Type.Array(AnyRole, { maxItems: 3, uniqueItems: true })),
    reason: OptionalReason,
  },
  { additionalProperties: false, examples: [{ grant: ['ADMIN'], reason: 'Joins the support team' }] },
)

export const ReportView = Type.Object({
  id: Uuid,
  reporter: UserSummary,
  user: AdminUser,
  reason: Type.String(),
  created_at: Timestamp,
  resolved_at: Type.Union([Timestamp, Type.Null()]),
  resolution: Type.Union([Type.String(), Type.Null()]),
  message: Type.Union([Type.Object({ id: Uuid, text: Type.String(), created_at: Timestamp }), Type.Null()], { description: 'The message reported, if a message was' }),
  review: Type.Union([Type.Object({ id: Uuid, rating: Type.Integer(), text: Type.String(), job_id: Uuid, hidden: Type.Boolean() }), Type.Null()], { description: 'The review reported, if a review was' }),
})
export const ReportQuery = Type.Object(
  { status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('resolved'), Type.Literal('all')], { default: 'open' })), ...PageQuery },
  { additionalProperties: false },
)
export const ReportList = Page(ReportView, 'Oldest first: the longest waiting at the top')
export const ResolveBody = Type.Object(
  {
    action: Type.Union([Type.Literal('dismiss'), Type.Literal('hide'), Type.Literal('suspend')], { description: '`hide` takes a reported review off; `suspend` suspends the reported user' }),
    reason: Reason,
  },
  { additionalProperties: false, examples: [{ action: 'dismiss', reason: 'Nothing wrong with it' }] },
)

export const AdminJob = Type.Object({
  job: Job,
  messages: Type.Array(Type.Object({ id: Uuid, from: Type.Union([Uuid, Type.Null()]), to: Uuid, kind: Type.String(), text: Type.String(), created_at: Timestamp })),
  ledger: Type.Array(Type.Object({ id: Uuid, kind: Type.String(), currency: Type.String(), at: Timestamp, entries: Type.Array(Type.Object({ account: Type.String(), amount: Type.Integer() })) }), { description: 'The job\'s ledger movements, each a set of entries summing to zero (debits positive, credits negative)' }),
})

export const AuditEntryView = Type.Object(
  {
    id: Uuid,
    actor_id: Uuid,
    action: Type.String({ description: 'Such as user.suspend, user.roles, category.retire, review.hide, report.dismiss' }),
    target_type: Type.String(),
    target_id: Type.Union([Type.String(), Type.Null()]),
    at: Timestamp,
    address: Type.Union([Type.String(), Type.Null()]),
    request_id: Type.Union([Type.String(), Type.Null()]),
    reason: Type.Union([Type.String(), Type.Null()]),
    details: Type.Unknown(),
  },
  { $id: 'AuditEntry' },
)
export const AuditQuery = Type.Object(
  {
    actor_id: Type.Optional(Type.String({ format: 'uuid' })),
    action: Type.Optional(Type.String({ maxLength: 100 })),
    target_id: Type.Optional(Type.String({ maxLength: 100 })),
    from: Type.Optional(Type.String({ format: 'date-time' })),
    to: Type.Optional(Type.String({ format: 'date-time' })),
    ...PageQuery,
  },
  { additionalProperties: false },
)
export const AuditList = Page(AuditEntryView, 'Newest first')
