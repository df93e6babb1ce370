import { Type } from 'typebox'

export const WsTicket = Type.Object(
  {
    ticket: Type.String({ description: 'Open `/ws?ticket=<ticket>` with it once, before it expires' }),
    expires_in: Type.Integer({ description: 'Seconds' }),
  },
  { examples: [{ ticket: 'Zk3pQ8vX1mN6bR2tW9yC4hJ7', expires_in: 30 }] },
)

export const WsQuery = Type.Object(
  {
    ticket: Type.Optional(Type.String({ maxLength: 200 })),
    since: Type.Optional(Type.String({ format: 'uuid', description: 'Replays the messages after this one first' })),
  },
  { additionalProperties: false },
)
