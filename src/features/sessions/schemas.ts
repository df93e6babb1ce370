import { Type } from 'typebox'
import { Timestamp, Uuid } from '../../http/schemas.js'
import { User } from '../accounts/index.js'
import { problemWith } from '../../http/problems.js'

export const AuthorizeBody = Type.Object(
  {
    email: Type.String({ minLength: 1, maxLength: 254 }),
    password: Type.String({ minLength: 1, maxLength: 200 }),
  },
  { additionalProperties: false, examples: [{ email: 'ana@example.com', password: 'correct horse' }] },
)

export const AccessToken = Type.Object(
  {
    access_token: Type.String({ description: 'Send as `Authorization: Bearer <access_token>`' }),
    token_type: Type.Literal('Bearer'),
    expires_in: Type.Integer({ description: 'Seconds the token lives unused; each authenticated request renews it' }),
    user: User,
  },
  {
    examples: [
      {
        access_token: 'q3Xv9cG0bJmZ1kP8sT4wY7aE2rU5nH6dL0fQ9iO3xCk',
        token_type: 'Bearer',
        expires_in: 2592000,
        user: { id: '01938d0e-5f3a-7c2e-9b1a-2f6d8e4c7a10', email: 'ana@example.com', first_name: 'Ana', last_name: 'Lima', roles: ['WORKER'], picture_url: null, created_at: '2026-12-01T09:30:00.000Z' },
      },
    ],
  },
)

export const Session = Type.Object(
  {
    id: Uuid,
    current: Type.Boolean({ description: 'The session of the token this request used' }),
    user_agent: Type.Union([Type.String(), Type.Null()]),
    created_at: Timestamp,
    last_used_at: Timestamp,
    expires_at: Timestamp,
  },
  {
    examples: [
      { id: '01938d10-1a2b-7c3d-8e4f-0a1b2c3d4e5f', current: true, user_agent: 'FreelancerApp/2.3 (iPhone; iOS 19.1)', created_at: '2026-12-01T09:31:00.000Z', last_used_at: '2026-12-07T08:50:00.000Z', expires_at: '2027-01-06T08:50:00.000Z' },
    ],
  },
)

export const SessionList = Type.Object({ items: Type.Array(Session) })

/** The 401 of a sign-in: wrong credentials, or the second factor asked for (with the token to answer it). */
export const SignInRefused = problemWith('Wrong email or password (`invalid_credentials`), or the account has two-factor sign-in on (`mfa_required`): then `mfa_token` goes to POST /authorize/mfa with a code', {
  mfa_token: Type.Optional(Type.String({ description: 'With `mfa_required`: send it to POST /authorize/mfa with a code' })),
  mfa_expires_in: Type.Optional(Type.Integer({ description: 'With `mfa_required`: seconds the mfa_token lives' })),
})
