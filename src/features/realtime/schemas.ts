import { Type } from 'typebox'

export const WsTicket = Type.Object({
  ticket: Type.String({ description: 'Open `/ws?ticket=<ticket>` with it once, before it expires' }),
  expires_in: Type.Integer({ description: 'Seconds' }),
})

export const WsQuery = Type.Object(
  {
    ticket: Type.Optional(Type.String({ maxLength: 200 })),
    since: Type.Optional(Type.String({ format: 'uuid', description: 'Replays the messages after this one first' })),
  },
  { additionalProperties: false },
)
