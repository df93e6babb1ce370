import { Type } from 'typebox'
import { Timestamp, Uuid } from '../../http/schemas.js'
import { User } from '../accounts/index.js'

export const AuthorizeBody = Type.Object(
  {
    email: Type.String({ minLength: 1, maxLength: 254 }),
    password: Type.String({ minLength: 1, maxLength: 200 }),
  },
  { additionalProperties: false, examples: [{ email: 'ana@example.com', password: 'correct horse' }] },
)

export const AccessToken = Type.Object({
  access_token: Type.String({ description: 'Send as `Authorization: Bearer <access_token>`' }),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Seconds the token lives unused; each authenticated request renews it' }),
  user: User,
})

export const Session = Type.Object({
  id: Uuid,
  current: Type.Boolean({ description: 'The session of the token this request used' }),
  user_agent: Type.Union([Type.String(), Type.Null()]),
  created_at: Timestamp,
  last_used_at: Timestamp,
  expires_at: Timestamp,
})

export const SessionList = Type.Object({ items: Type.Array(Session) })
