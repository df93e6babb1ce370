import type { FastifyInstance } from 'fastify'
import { InvalidInputError } from '../errors.js'

// PostgreSQL text can't hold the NUL character, so input carrying one is refused at the door
// (400) instead of failing in the database (500). JSON bodies and URLs are the ways in for text.

/** A JSON escape \u0000 (not an escaped backslash followed by "u0000"). */
const JSON_NUL = /(?:^|[^\\])(?:\\\\)*\\u0000/

const nulRefused = (where: string) =>
  new InvalidInputError(`The ${where} holds a NUL character (\\u0000), which no text field may`, [{ field: where, message: 'must not contain \\u0000' }], 'nul_character')

export function registerInputGuards(app: FastifyInstance) {
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (JSON_NUL.test(body as string)) return done(nulRefused('body'), undefined)
    return parseJson(request, body as string, done)
  })
  app.addHook('onRequest', async (request) => {
    if (request.url.includes('%00')) throw nulRefused('url')
  })
}
