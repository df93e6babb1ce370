import { Type, type Static } from 'typebox'

export const FailedTask = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String({ description: 'The kind of task, such as jobs.request-payment' }),
  data: Type.Unknown({ description: 'What the task was asked to do' }),
  retries: Type.Integer({ description: 'Retries made before it was given up' }),
  error: Type.Union([Type.String(), Type.Null()], { description: 'The last failure' }),
  created_at: Type.String({ format: 'date-time' }),
  failed_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
}, { $id: 'FailedTask' })

export const FailedTaskList = Type.Object({
  items: Type.Array(FailedTask),
  next_cursor: Type.Union([Type.String(), Type.Null()]),
})

export const FailedTaskQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  cursor: Type.Optional(Type.String({ maxLength: 200 })),
})
export type FailedTaskQuery = Static<typeof FailedTaskQuery>
