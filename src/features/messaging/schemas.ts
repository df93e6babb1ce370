import { Type, type Static } from 'typebox'
import { Page, PageQuery, Timestamp, Uuid } from '../../http/schemas.js'
import { UserSummary } from '../accounts/index.js'

export const MAX_TEXT_CHARS = 4000

export const Message = Type.Object(
  {
    id: Uuid,
    from: Type.Union([Uuid, Type.Null()], { description: 'The sender; for a system message, the user whose move it tells of, and null when time or the payment provider made the move' }),
    to: Uuid,
    text: Type.String(),
    kind: Type.Union([Type.Literal('user'), Type.Literal('system')]),
    job_id: Type.Optional(Type.Union([Uuid, Type.Null()], { description: 'The job a system message is about' })),
    created_at: Timestamp,
    read_at: Type.Union([Timestamp, Type.Null()], { description: 'When the recipient read it' }),
    sender: Type.Union([UserSummary, Type.Null()], { description: 'The sender as others see it (deleted accounts show as deleted); null when `from` is' }),
  },
  {
    description: 'A message',
    examples: [
      {
        id: '01938d1b-0c2d-7e3f-9a4b-5c6d7e8f9a0b',
        from: '01938d0e-6a1b-7c3d-8e4f-5a6b7c8d9e0f',
        to: '01938d0e-5f3a-7c2e-9b1a-2f6d8e4c7a10',
        text: 'Hi! Free on Saturday?',
        kind: 'user',
        job_id: null,
        created_at: '2026-12-07T08:55:00.000Z',
        read_at: null,
        sender: { id: '01938d0e-6a1b-7c3d-8e4f-5a6b7c8d9e0f', first_name: 'Bruno', last_name: 'Costa', picture_url: null, deleted: false },
      },
    ],
  },
)
export type MessageView = Static<typeof Message>

export const SendBody = Type.Object(
  {
    to: Uuid,
    // The 4000-character limit applies after trimming, in the service; this only bounds the body.
    text: Type.String({ minLength: 1, maxLength: 16_000, description: `Trimmed; 1 to ${MAX_TEXT_CHARS} characters` }),
  },
  { additionalProperties: false, examples: [{ to: '01938d0e-5f3a-7c2e-9b1a-2f6d8e4c7a10', text: 'Hi! Free on Saturday?' }] },
)

export const SendHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$', description: 'Retrying with the same key answers the first result instead of sending again (kept 24 hours)' }),
  ),
})

export const InboxQuery = Type.Object(
  {
    with: Type.Optional(Type.String({ format: 'uuid', description: 'One conversation with this user, both directions' })),
    ...PageQuery,
  },
  { additionalProperties: false },
)

export const Inbox = Type.Object({
  items: Type.Array(Message),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next page; null on the last' }),
  unread: Type.Integer({ description: 'Unread messages the caller received (in this conversation, with `with`)' }),
})

export const ReadBody = Type.Object(
  {
    up_to: Type.String({ format: 'uuid', description: 'A message of the caller\'s; it and every earlier one received are marked read' }),
    with: Type.Optional(Type.String({ format: 'uuid', description: 'Only the conversation with this user' })),
  },
  { additionalProperties: false },
)

export const Conversation = Type.Object({
  user: UserSummary,
  last_message: Message,
  unread: Type.Integer({ description: 'Unread messages from this user' }),
})
export const ConversationList = Page(Conversation)
export const ConversationQuery = Type.Object({ ...PageQuery }, { additionalProperties: false })
