import { Type, type TSchema } from 'typebox'

// Schema pieces every feature shares.

export const Uuid = Type.String({ format: 'uuid', description: 'UUIDv7' })
export const Timestamp = Type.String({ format: 'date-time', description: 'ISO 8601, UTC' })

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20, description: 'Items per page' })),
  cursor: Type.Optional(Type.String({ maxLength: 1024, description: 'next_cursor of the previous page' })),
}

export function Page<T extends TSchema>(item: T, description?: string) {
  return Type.Object(
    {
      items: Type.Array(item),
      next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as cursor for the next page; null on the last' }),
    },
    { description },
  )
}

export const IdParams = Type.Object({ id: Uuid })
