// Apple says the person's name only once, at the first sign-in, in the `user` field of the form it
// posts to the callback (response_mode form_post): {"name":{"firstName":"Ana","lastName":"Lima"},
// "email":"..."}. That field is not signed: whoever holds the browser could write anything in it.
// So it only names an account the sign-in makes, and only what reads as a name is kept; its
// email is never read (the ID token says which email, and who signs in).

/** The longest name part an account keeps, in characters (code points), as POST /user takes it. */
export const NAME_MAX = 100

export interface PostedName {
  firstName: string | null
  lastName: string | null
}

/** Control characters (NUL, line breaks) and lone surrogates are no part of a name. */
const NOT_NAME_TEXT = /[\p{Cc}\p{Cs}]/u

/** Text cut to `max` code points, never in the middle of one (a surrogate pair stays whole). */
export function capped(text: string, max = NAME_MAX): string {
  const points = Array.from(text)
  return points.length <= max ? text : points.slice(0, max).join('').trimEnd()
}

/** A part of a name as given: trimmed and capped, or null when it is no text fit for a name. */
function namePart(value: unknown): string | null {
  if (typeof value !== 'string') return null
  const trimmed = value.trim()
  if (trimmed === '' || NOT_NAME_TEXT.test(trimmed)) return null
  return capped(trimmed)
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** The name in Apple's posted `user` field; undefined when there is none, or it is not what Apple sends. */
export function postedName(user: string | undefined): PostedName | undefined {
  if (user === undefined) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(user)
  } catch {
    return undefined
  }
  if (!isObject(parsed) || !isObject(parsed.name)) return undefined
  const name = { firstName: namePart(parsed.name.firstName), lastName: namePart(parsed.name.lastName) }
  return name.firstName === null && name.lastName === null ? undefined : name
}
