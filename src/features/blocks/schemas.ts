import { Type } from 'typebox'
import { Page, PageQuery, Timestamp, Uuid } from '../../http/schemas.js'
import { UserSummary } from '../accounts/index.js'

export const BlockBody = Type.Object({ user_id: Uuid }, { additionalProperties: false })
export const BlockParams = Type.Object({ user_id: Uuid })
export const Block = Type.Object({ user: UserSummary, created_at: Timestamp })
export const BlockList = Page(Block)
export const BlockListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false })

export const ReportBody = Type.Object(
  {
    message_id: Type.Optional(Type.String({ format: 'uuid', description: 'A message the caller received' })),
    user_id: Type.Optional(Type.String({ format: 'uuid', description: 'A user' })),
    review_id: Type.Optional(Type.String({ format: 'uuid', description: 'A published review (its author is reported)' })),
    reason: Type.String({ minLength: 1, maxLength: 2000, pattern: '\\S' }),
  },
  { additionalProperties: false, description: 'Exactly one of message_id, user_id and review_id' },
)
export const Report = Type.Object({
  id: Uuid,
  user_id: Uuid,
  message_id: Type.Union([Uuid, Type.Null()]),
  review_id: Type.Union([Uuid, Type.Null()]),
  reason: Type.String(),
  created_at: Timestamp,
})
