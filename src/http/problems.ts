import { randomUUID } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type, type TProperties, type TSchema } from 'typebox'
import { AppError, type FieldError, type ProblemCode, StoreUnavailableError, TooManyRequestsError } from '../errors.js'
import { PROBLEM_CODES } from '../problem-codes.js'
import { DATABASE_RETRY_AFTER_SECONDS, isDatabaseUnavailable } from '../platform/db/unavailable.js'

// Every error answer is RFC 9457 application/problem+json, built here and nowhere else.

export const PROBLEM_TYPE = 'application/problem+json'

const REQUEST_PARTS = ['body', 'querystring', 'params', 'headers'] as const

export const Problem = Type.Object(
  {
    type: Type.String({ description: 'URI naming the kind of problem' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.Unsafe<ProblemCode>({
      type: 'string',
      enum: Object.keys(PROBLEM_CODES),
      description: `Stable machine-readable name of the problem, for clients to branch on:\n\n${Object.entries(PROBLEM_CODES).map(([code, meaning]) => `- \`${code}\`: ${meaning}`).join('\n')}`,
    }),
    instance: Type.Optional(Type.String()),
    request_id: Type.String(),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          field: Type.String({ description: 'Where the field is and its JSON pointer in one: `body/roles/0`, `querystring/limit`' }),
          in: Type.Optional(Type.String({ enum: [...REQUEST_PARTS], description: 'The part of the request the field is in' })),
          pointer: Type.Optional(Type.String({ description: 'RFC 6901 JSON pointer to the field within that part: `/roles/0`' })),
          message: Type.String({ description: 'What is wrong, and what it may be' }),
          allowed: Type.Optional(Type.Array(Type.Unknown(), { description: 'The values the field may take, when it takes one of a set' })),
        }),
        { description: 'The fields that failed validation' },
      ),
    ),
  },
  {
    $id: 'Problem',
    description: 'An RFC 9457 problem detail',
    examples: [
      {
        type: 'urn:problem:invalid_input',
        title: 'Invalid input',
        status: 400,
        detail: 'Invalid body: body/roles/0 must be one of: "CLIENT", "WORKER"',
        code: 'invalid_input',
        instance: '/signup',
        request_id: '3e5b8d79-7881-423a-8fdb-ea45f24244ac',
        errors: [{ field: 'body/roles/0', in: 'body', pointer: '/roles/0', message: 'must be one of: "CLIENT", "WORKER"', allowed: ['CLIENT', 'WORKER'] }],
      },
    ],
  },
)

const DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid input',
  401: 'Missing, unknown or expired access token',
  402: 'The payment method was declined (`decline_code` says why)',
  403: 'Not allowed for this user',
  404: 'Not found',
  409: 'Conflicts with the current state',
  412: 'The If-Match version is not the current one',
  413: 'Body too large',
  428: 'The request must name the version it was made on, with If-Match',
  422: 'The Idempotency-Key was used with a different request',
  415: 'Unsupported content type',
  429: 'Too many requests; see Retry-After',
  503: 'A store it needs does not answer for now (`store_unavailable`); see Retry-After',
}

/**
 * The response schema of a problem whose body carries members of its own beside the standard
 * ones (RFC 9457 extensions), for a status whose answer says more on this route.
 */
export function problemWith(description: string, members: TProperties): TSchema {
  const schema = Type.Object({ ...Problem.properties, ...members }, { description: 'An RFC 9457 problem detail, with members of its own' })
  return { description, content: { [PROBLEM_TYPE]: { schema } } } as unknown as TSchema
}

/**
 * Response schemas for the error statuses a route can answer, for validation and the docs. Any
 * route may meet a store out of reach (503).
 */
export function problemResponses(...statuses: number[]): Record<number, TSchema> {
  const responses: Record<number, TSchema> = {}
  for (const status of [...new Set([400, 429, 500, 503, ...statuses])]) {
    // By reference: the Problem component (src/http/openapi.ts), not a copy in every operation.
    const retry = status === 429 || status === 503 ? { headers: { 'retry-after': { type: 'integer', description: 'Seconds to wait before trying again' } } } : {}
    responses[status] = { description: DESCRIPTIONS[status] ?? 'Unexpected error', ...retry, content: { [PROBLEM_TYPE]: { schema: { $ref: 'Problem#' } } } } as unknown as TSchema
  }
  return responses
}

const STATUS_TITLES: Record<number, string> = {
  400: 'Invalid input',
  401: 'Not signed in',
  402: 'Payment required',
  403: 'Forbidden',
  404: 'Not found',
  405: 'Method not allowed',
  406: 'Not acceptable',
  408: 'Request timeout',
  409: 'Conflict',
  412: 'Precondition failed',
  413: 'Payload too large',
  415: 'Unsupported media type',
  422: 'Unprocessable content',
  428: 'Precondition required',
  431: 'Headers too large',
  429: 'Too many requests',
  500: 'Internal server error',
  503: 'Service unavailable',
}

function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  code: ProblemCode,
  detail: string,
  errors?: FieldError[],
  extensions?: Record<string, unknown>,
) {
  const body = {
    // Extensions first: the standard members below always win.
    ...extensions,
    type: `urn:problem:${code}`,
    title: STATUS_TITLES[status] ?? 'Error',
    status,
    detail,
    code,
    instance: request.url.split('?')[0],
    request_id: String(request.id),
    ...(errors && errors.length > 0 ? { errors: errors.map(located) } : {}),
  }
  return reply.code(status).type(PROBLEM_TYPE).send(body)
}

type AjvError = NonNullable<FastifyError['validation']>[number]

const list = (values: unknown[]) => values.map((v) => JSON.stringify(v)).join(', ')

/** What one branch of a failed `anyOf` wanted of the field itself, when that is one thing. */
function branchWants(errors: AjvError[], at: string): { text: string; values?: unknown[] } | undefined {
  if (errors.length !== 1 || errors[0]!.instancePath !== at) return undefined
  const [error] = errors as [AjvError]
  const params = error.params as { allowedValue?: unknown; allowedValues?: unknown[]; type?: string }
  if (error.keyword === 'const') return { text: JSON.stringify(params.allowedValue), values: [params.allowedValue] }
  if (error.keyword === 'enum') return { text: list(params.allowedValues ?? []), values: params.allowedValues }
  if (error.keyword === 'type') return { text: params.type === 'null' ? 'null' : `a${/^[aeiou]/.test(params.type ?? '') ? 'n' : ''} ${params.type}` }
  return undefined
}

/**
 * Ajv's errors as a client can act on them: an `anyOf` (TypeBox's unions) is told as one error
 * naming what the field may be, instead of one line per alternative; a field taking one of a set
 * lists the set.
 */
function readableErrors(all: AjvError[]): { error: AjvError; message?: string; allowed?: unknown[] }[] {
  const out: { error: AjvError; message?: string; allowed?: unknown[] }[] = []
  const inside = new Set<AjvError>()
  for (const anyOf of all.filter((e) => e.keyword === 'anyOf')) {
    const prefix = `${anyOf.schemaPath.replace(/\/anyOf$/, '')}/anyOf/`
    const branches = new Map<string, AjvError[]>()
    for (const e of all) {
      if (!e.schemaPath.startsWith(prefix)) continue
      inside.add(e)
      const branch = e.schemaPath.slice(prefix.length).split('/')[0]!
      branches.set(branch, [...(branches.get(branch) ?? []), e])
    }
    const wants = [...branches.values()].map((errors) => branchWants(errors, anyOf.instancePath))
    if (wants.every((w) => w !== undefined)) {
      const values = wants.flatMap((w) => w!.values ?? [])
      const allOfSet = wants.every((w) => w!.values !== undefined)
      out.push({ error: anyOf, message: allOfSet ? `must be one of: ${list(values)}` : `must be ${wants.map((w) => w!.text).join(' or ')}`, ...(allOfSet ? { allowed: values } : {}) })
      continue
    }
    // A value or null: what the value broke is what the client needs to hear.
    const notNull = [...branches.values()].filter((errors) => !(errors.length === 1 && (errors[0]!.params as { type?: string }).type === 'null'))
    if (notNull.length === 1) out.push(...notNull[0]!.map((error) => ({ error })))
    else out.push({ error: anyOf, message: 'does not match any of the shapes this field takes (see the API description)' })
  }
  for (const error of all) {
    if (error.keyword === 'anyOf' || inside.has(error)) continue
    if (error.keyword === 'enum') {
      const allowed = (error.params as { allowedValues?: unknown[] }).allowedValues ?? []
      out.push({ error, message: `must be one of: ${list(allowed)}`, allowed })
    } else out.push({ error })
  }
  return out
}

/** Fastify's validation errors, named by the field the client sent. */
function fieldErrors(error: FastifyError): FieldError[] {
  return readableErrors(error.validation ?? []).map(({ error: v, message, allowed }) => {
    const missing = (v.params as { missingProperty?: string } | undefined)?.missingProperty
    const extra = (v.params as { additionalProperty?: string } | undefined)?.additionalProperty
    const path = v.instancePath || ''
    const field = missing ? `${path}/${missing}` : extra ? `${path}/${extra}` : path || '/'
    const text = extra ? 'is not a known field' : missing ? 'is required' : (message ?? v.message ?? 'is invalid')
    return { field: `${error.validationContext ?? 'body'}${field}`, message: text, ...(allowed ? { allowed } : {}) }
  })
}

/** Splits `body/roles/0` into the part of the request and the JSON pointer within it. */
function located(error: FieldError) {
  const [part, ...rest] = error.field.split('/')
  if (!(REQUEST_PARTS as readonly string[]).includes(part!)) return error
  return { field: error.field, in: part, pointer: rest.length > 0 ? `/${rest.join('/')}` : '', message: error.message, ...(error.allowed ? { allowed: error.allowed } : {}) }
}

/** Codes of the other 4xx Fastify itself answers. */
const OTHER_CLIENT_ERRORS: Record<number, ProblemCode> = {
  404: 'not_found',
  405: 'method_not_allowed',
  406: 'not_acceptable',
  408: 'request_timeout',
  409: 'conflict',
  412: 'precondition_failed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  431: 'headers_too_large',
}

const FASTIFY_CODES: Record<string, [number, ProblemCode]> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'unsupported_media_type'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'invalid_content_length'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'payload_too_large'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'empty_body'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'malformed_json'],
  FST_REQ_FILE_TOO_LARGE: [413, 'payload_too_large'],
  FST_INVALID_MULTIPART_CONTENT_TYPE: [415, 'unsupported_media_type'],
}

/** What the HTTP parser refuses before there is a request: [status, code, detail]. */
const CLIENT_ERRORS: Record<string, [number, ProblemCode, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request_timeout', 'The request took longer than the server waits for one (HTTP_REQUEST_TIMEOUT); send it again, faster'],
  HPE_HEADER_OVERFLOW: [431, 'headers_too_large', 'The request\'s headers are larger than the server takes'],
}

/**
 * Fastify's clientErrorHandler: a request the HTTP parser refused, or that ran past its time, is
 * answered problem+json on the raw socket (there is no request to reply to), then the socket closes.
 */
export function answerClientError(this: FastifyInstance, error: Error & { code?: string }, socket: Socket) {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const [status, code, detail] = CLIENT_ERRORS[error.code ?? ''] ?? [400, 'malformed_request', 'The request is not well-formed HTTP']
  this.log.debug({ err: error }, `client error: ${code}`)
  if (socket.writable) {
    const body = JSON.stringify({ type: `urn:problem:${code}`, title: STATUS_TITLES[status] ?? 'Error', status, detail, code, request_id: randomUUID() })
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${PROBLEM_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy(error)
}

/**
 * Fastify's frameworkErrors: what its router refuses before a route is found (a path whose
 * percent-encoding is broken, a path parameter past maxParamLength) is answered problem+json like
 * every other 4xx, instead of Fastify's own JSON. Its codes are those of a malformed request.
 */
export function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  return sendProblem(request, reply, 400, 'malformed_request', error.code === 'FST_ERR_BAD_URL' ? 'The path is not valid percent-encoded UTF-8' : 'A part of the path is longer than any the API takes')
}

export function registerProblemHandlers(app: FastifyInstance) {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof AppError) {
      if (error instanceof TooManyRequestsError || error instanceof StoreUnavailableError) reply.header('retry-after', String(error.retryAfterSeconds))
      return sendProblem(request, reply, error.status, error.code, error.message, 'errors' in error ? (error.errors as FieldError[]) : undefined, error.extensions)
    }
    if (error.validation) {
      const errors = fieldErrors(error)
      return sendProblem(request, reply, 400, 'invalid_input', `Invalid ${error.validationContext ?? 'input'}: ${errors.map((e) => `${e.field} ${e.message}`).join('; ')}`, errors)
    }
    const known = error.code ? FASTIFY_CODES[error.code] : undefined
    if (known) return sendProblem(request, reply, known[0], known[1], error.message)
    if (error instanceof SyntaxError || error.statusCode === 400) {
      return sendProblem(request, reply, 400, 'malformed_request', error.message)
    }
    const status = error.statusCode ?? 500
    if (status >= 400 && status < 500) {
      return sendProblem(request, reply, status, OTHER_CLIENT_ERRORS[status] ?? 'invalid_input', error.message)
    }
    if (isDatabaseUnavailable(error)) {
      // Down or restarting: the client may try again soon; the logs say it once a request, as a warning.
      request.log.warn({ err: error }, 'the database does not answer')
      reply.header('retry-after', String(DATABASE_RETRY_AFTER_SECONDS))
      return sendProblem(request, reply, 503, 'store_unavailable', 'The database does not answer for now; try again shortly')
    }
    request.log.error({ err: error }, 'request failed')
    return sendProblem(request, reply, status >= 500 ? status : 500, 'internal_error', 'Something went wrong on our side; it has been logged')
  })

  app.setNotFoundHandler((request, reply) =>
    sendProblem(request, reply, 404, 'route_not_found', `No route ${request.method} ${request.url.split('?')[0]}`),
  )
}
