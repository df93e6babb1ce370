import { Type, type Static } from 'typebox'
import { Timestamp, Uuid, Page, PageQuery } from '../../http/schemas.js'

export const SelfRole = Type.Union([Type.Literal('CLIENT'), Type.Literal('WORKER')])
export const AnyRole = Type.Union([Type.Literal('CLIENT'), Type.Literal('WORKER'), Type.Literal('ADMIN')])

export const Email = Type.String({ format: 'email', minLength: 3, maxLength: 254 })
// The service checks the rest: not on the list of common and breached passwords.
export const Password = Type.String({ minLength: 8, maxLength: 128, description: '8 to 128 characters (15 or more recommended), any characters; a common or breached password is refused (400 `password_too_common`)' })
const Name = Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' })

export const User = Type.Object(
  {
    id: Uuid,
    email: Type.Optional(Type.String({ description: 'Only to the user and to admins' })),
    first_name: Type.String(),
    last_name: Type.String(),
    roles: Type.Array(AnyRole),
    picture_url: Type.Union([Type.String(), Type.Null()]),
    created_at: Timestamp,
    email_confirmed: Type.Optional(Type.Boolean({ description: 'Whether the user confirmed `email` by the link mailed to it; only to the user and to admins' })),
  },
  {
    $id: 'User',
    examples: [{ id: '01938d0e-5f3a-7c2e-9b1a-2f6d8e4c7a10', email: 'ana@example.com', first_name: 'Ana', last_name: 'Lima', roles: ['WORKER'], picture_url: '/users/01938d0e-5f3a-7c2e-9b1a-2f6d8e4c7a10/picture?v=sKcrfSIT-xshJK8D', created_at: '2026-12-01T09:30:00.000Z', email_confirmed: true }],
  },
)
export type UserView = Static<typeof User>

export const UserSummary = Type.Object(
  {
    id: Uuid,
    first_name: Type.String(),
    last_name: Type.String(),
    picture_url: Type.Union([Type.String(), Type.Null()]),
    deleted: Type.Boolean({ description: 'The account was deleted; its name and picture are gone' }),
  },
  { description: 'Who a message or thread is with, as any user may see it' },
)
export type UserSummaryView = Static<typeof UserSummary>

export const SignupBody = Type.Object(
  {
    email: Email,
    password: Password,
    first_name: Name,
    last_name: Name,
    roles: Type.Optional(Type.Array(SelfRole, { minItems: 1, maxItems: 2, uniqueItems: true, description: 'Default ["CLIENT"]; ADMIN is granted, never chosen' })),
  },
  { additionalProperties: false, examples: [{ email: 'ana@example.com', password: 'correct horse', first_name: 'Ana', last_name: 'Lima', roles: ['WORKER'] }] },
)
export type SignupInput = Static<typeof SignupBody>

export const UpdateUserBody = Type.Object(
  {
    id: Type.Optional(Type.String({ format: 'uuid', description: 'The user to change; default the caller. Another user needs ADMIN' })),
    first_name: Type.Optional(Name),
    last_name: Type.Optional(Name),
    email: Type.Optional(Type.String({ format: 'email', minLength: 3, maxLength: 254, description: 'A new email takes effect once confirmed by the link mailed to it; the old address is told, with a link to undo the change' })),
    roles: Type.Optional(Type.Array(AnyRole, { minItems: 1, maxItems: 3, uniqueItems: true, description: 'ADMIN only by an admin' })),
    password: Type.Optional(Password),
    current_password: Type.Optional(Type.String({ maxLength: 200, description: 'Needed to change one\'s own password or email' })),
  },
  { additionalProperties: false },
)
export type UpdateUserInput = Static<typeof UpdateUserBody>

export const DeleteUserBody = Type.Object(
  {
    current_password: Type.Optional(Type.String({ maxLength: 200, description: 'The caller\'s own password (an admin\'s, deleting another user). Not asked of an account without one, which must have signed in within the last 5 minutes' })),
  },
  { additionalProperties: false, description: 'Optional only for an account without a password' },
)
export type DeleteUserInput = Static<typeof DeleteUserBody>

export const UserIdQuery = Type.Object({ id: Type.Optional(Uuid) }, { additionalProperties: false })

export const UserListQuery = Type.Object(
  {
    q: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Matches first or last name, any case' })),
    role: Type.Optional(AnyRole),
    ...PageQuery,
  },
  { additionalProperties: false },
)
export const UserList = Page(User)
