import type { FastifyInstance } from 'fastify'
import { InvalidInputError } from '../errors.js'

// Every string a request carries (body, query string, path parameters, and the names of their
// fields) is checked here, once, before any route sees it: a lone surrogate ("\ud800", which
// JSON.parse accepts) is not text that can be stored or sent on, and PostgreSQL text can't hold
// NUL. Either answers 400 naming the field instead of failing in the database (500).

type TextProblem = 'nul_character' | 'invalid_text'

/** A surrogate that isn't half of a pair: read by code point (the u flag), pairs aren't surrogates. */
const LONE_SURROGATE = /\p{Cs}/u

function problemOf(text: string): TextProblem | undefined {
  if (text.includes('\u0000')) return 'nul_character'
  if (LONE_SURROGATE.test(text)) return 'invalid_text'
  return undefined
}

/** A JSON pointer segment: "~" and "/" escaped as RFC 6901 says. */
const segment = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1')

/** The first string in `value` that isn't valid text, with where it is ("body/location/address"). */
function findBadText(value: unknown, where: string): { field: string; problem: TextProblem } | undefined {
  if (typeof value === 'string') {
    const problem = problemOf(value)
    return problem && { field: where, problem }
  }
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return undefined
  const entries = Array.isArray(value) ? value.map((item, index) => [String(index), item] as const) : Object.entries(value)
  for (const [key, item] of entries) {
    // A field's name is text the client chose too; it is named as its parent.
    const keyProblem = problemOf(key)
    if (keyProblem) return { field: where, problem: keyProblem }
    const found = findBadText(item, `${where}/${segment(key)}`)
    if (found) return found
  }
  return undefined
}

const refused = ({ field, problem }: { field: string; problem: TextProblem }) =>
  problem === 'nul_character'
    ? new InvalidInputError(`${field} holds a NUL character (\\u0000), which no text field may`, [{ field, message: 'must not contain \\u0000' }], 'nul_character')
    : new InvalidInputError(`${field} is not valid Unicode text (a lone surrogate)`, [{ field, message: 'must be valid Unicode text' }], 'invalid_text')

export function registerInputGuards(app: FastifyInstance) {
  // preValidation: after the body is parsed, before schemas, handlers and storage.
  app.addHook('preValidation', (request, _reply, done) => {
    const found = findBadText(request.params, 'params') ?? findBadText(request.query, 'querystring') ?? findBadText(request.body, 'body')
    done(found && refused(found))
  })
}
