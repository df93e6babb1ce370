import { Type, type Static } from 'typebox'
import { Page, PageQuery, Timestamp, Uuid } from '../../http/schemas.js'
import { UserSummary } from '../accounts/index.js'

export const ReviewBody = Type.Object(
  {
    rating: Type.Integer({ minimum: 1, maximum: 5 }),
    text: Type.Optional(Type.String({ maxLength: 2000, description: 'Up to 2000 characters' })),
  },
  { additionalProperties: false, examples: [{ rating: 5, text: 'On time, tidy, fixed it for good.' }] },
)
export type ReviewInput = Static<typeof ReviewBody>

export const ReviewSubmitted = Type.Object(
  {
    id: Uuid,
    job_id: Uuid,
    status: Type.Union([Type.Literal('submitted'), Type.Literal('published')], {
      description: '`submitted`: kept blind (visible to nobody) until the other side writes theirs or 14 days after PAID; `published`: both wrote, both are public now',
    }),
    created_at: Timestamp,
  },
  { examples: [{ id: '01938d2a-0000-7000-8000-000000000001', job_id: '01938d1a-2b4c-7d6e-8f90-a1b2c3d4e5f6', status: 'submitted', created_at: '2026-12-07T09:00:00.000Z' }] },
)

export const Review = Type.Object(
  {
    id: Uuid,
    job_id: Uuid,
    author: UserSummary,
    subject_id: Uuid,
    rating: Type.Integer({ minimum: 1, maximum: 5 }),
    text: Type.String(),
    published_at: Timestamp,
    reply: Type.Union([Type.Object({ text: Type.String(), at: Timestamp }), Type.Null()], { description: 'The reviewed user\'s one public answer' }),
  },
  { $id: 'Review' },
)
export type ReviewView = Static<typeof Review>

export const ReviewList = Page(Review, 'Published reviews, newest first')
export const ReviewListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false })

export const ReplyBody = Type.Object(
  { text: Type.String({ minLength: 1, maxLength: 2000, pattern: '\\S' }) },
  { additionalProperties: false, examples: [{ text: 'Thank you, glad to help again.' }] },
)

export const HideBody = Type.Object(
  { reason: Type.String({ minLength: 1, maxLength: 2000, pattern: '\\S', description: 'Kept with the review and in the audit log' }) },
  { additionalProperties: false, examples: [{ reason: 'Insults' }] },
)
