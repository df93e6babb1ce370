import type { TSchema, Static } from 'typebox'
import { Value } from 'typebox/value'
import { InvalidInputError } from '../errors.js'

// Opaque cursors: the position after the last item of a page, as base64url JSON. Clients pass
// them back untouched; anything else is a 400, never a 500.

export function encodeCursor(position: unknown): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url')
}

export function decodeCursor<T extends TSchema>(cursor: string | undefined, schema: T): Static<T> | undefined {
  if (cursor === undefined) return undefined
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    value = undefined
  }
  if (!Value.Check(schema, value)) throw invalidCursor()
  return value as Static<T>
}

const invalidCursor = () => new InvalidInputError('The cursor is not one this API gave out', [{ field: 'querystring/cursor', message: 'is not a valid cursor' }], 'invalid_cursor')

/** A time held in a cursor: the date-time format lets a leap second (":60") through, which no Date holds. */
export function cursorTime(text: string): Date {
  const at = new Date(text)
  if (Number.isNaN(at.getTime())) throw invalidCursor()
  return at
}

/** Cuts a page from rows fetched with limit + 1, and the cursor to the next page, if any. */
export function pageOf<Row>(rows: Row[], limit: number, positionOf: (last: Row) => unknown) {
  const items = rows.slice(0, limit)
  const last = items[items.length - 1]
  return { items, next_cursor: rows.length > limit && last !== undefined ? encodeCursor(positionOf(last)) : null }
}
