import { createHash } from 'node:crypto'
import { Ajv, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import fc from 'fast-check'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'

// The API as its OpenAPI document describes it, for the tests that walk every operation (the
// fuzzer, the OWASP suite): the operations, the ids each takes, requests made from the schemas,
// and checks of the answers against what the document declares.

export type JsonSchema = {
  type?: string | string[]
  format?: string
  enum?: unknown[]
  const?: unknown
  anyOf?: JsonSchema[]
  oneOf?: JsonSchema[]
  properties?: Record<string, JsonSchema>
  required?: string[]
  additionalProperties?: boolean | JsonSchema
  items?: JsonSchema
  minItems?: number
  maxItems?: number
  uniqueItems?: boolean
  minLength?: number
  maxLength?: number
  pattern?: string
  minimum?: number
  maximum?: number
  deprecated?: boolean
  $ref?: string
}

export interface Parameter {
  in: 'path' | 'query' | 'header'
  name: string
  required?: boolean
  schema: JsonSchema
}

export interface Operation {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH'
  path: string
  operationId: string
  tags: string[]
  /** Needs a bearer token (an operation that also lists `{}` takes one but is open). */
  signedIn: boolean
  parameters: Parameter[]
  /** Media type -> schema of the request body; empty when the operation takes none. */
  bodies: Record<string, JsonSchema>
  bodyRequired: boolean
  /** Declared statuses ("200", "4XX", "default"). */
  statuses: string[]
}

export interface Spec {
  paths: Record<string, Record<string, Record<string, unknown>>>
  components: { schemas: Record<string, JsonSchema> }
}

export async function fetchSpec(app: FastifyInstance): Promise<Spec> {
  const res = await app.inject({ url: '/openapi.json' })
  if (res.statusCode !== 200) throw new Error(`GET /openapi.json answered ${res.statusCode}`)
  return res.json()
}

const METHODS = ['get', 'post', 'put', 'delete', 'patch']

export function operationsOf(spec: Spec): Operation[] {
  return Object.entries(spec.paths).flatMap(([path, methods]) =>
    Object.entries(methods)
      .filter(([method]) => METHODS.includes(method))
      .map(([method, raw]) => {
        const op = raw as {
          operationId: string
          tags?: string[]
          security?: Record<string, unknown>[]
          parameters?: Parameter[]
          requestBody?: { required?: boolean; content: Record<string, { schema: JsonSchema }> }
          responses: Record<string, unknown>
        }
        const security = op.security ?? []
        return {
          method: method.toUpperCase() as Operation['method'],
          path,
          operationId: op.operationId,
          tags: op.tags ?? [],
          signedIn: security.length > 0 && !security.some((s) => Object.keys(s).length === 0),
          parameters: op.parameters ?? [],
          bodies: Object.fromEntries(Object.entries(op.requestBody?.content ?? {}).map(([type, c]) => [type, c.schema])),
          bodyRequired: op.requestBody?.required ?? false,
          statuses: Object.keys(op.responses),
        }
      }),
  )
}

/** Follows a `#/components/schemas/X` reference. */
export function resolve(spec: Spec, schema: JsonSchema): JsonSchema {
  if (!schema.$ref) return schema
  const name = schema.$ref.replace('#/components/schemas/', '')
  return resolve(spec, spec.components.schemas[name]!)
}

/** Where an operation takes an id: each path parameter, and each query or body field that is a UUID. */
export interface IdField {
  in: 'path' | 'query' | 'body'
  name: string
}
export function idFieldsOf(spec: Spec, op: Operation): IdField[] {
  const fields: IdField[] = []
  for (const p of op.parameters) {
    if (p.in === 'path' || (p.in === 'query' && resolve(spec, p.schema).format === 'uuid')) fields.push({ in: p.in, name: p.name })
  }
  const json = op.bodies['application/json']
  for (const [name, schema] of Object.entries(json ? resolve(spec, json).properties ?? {} : {})) {
    if (resolve(spec, schema).format === 'uuid') fields.push({ in: 'body', name })
  }
  return fields
}

/** `METHOD /path field` (the key of the tables that say what each id is). */
export const idFieldKey = (op: Operation, field: IdField) => `${op.method} ${op.path} ${field.in}:${field.name}`

// ---------------------------------------------------------------------------------------------
// Answers checked against the document.

function escapePointer(segment: string) {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1')
}

/**
 * Checks an answer against the operation's declared answers: its status is declared, its
 * content type is one declared for that status, and a JSON body fits the schema. Answers the
 * list of what is wrong (empty when nothing is).
 */
export function answerChecker(spec: Spec) {
  const ajv = new Ajv({ strict: false, allErrors: true, formats: { binary: true } })
  addFormats.default(ajv)
  ajv.addSchema(spec as object, 'spec')
  const compiled = new Map<string, ValidateFunction>()
  return (op: Operation, res: LightMyRequestResponse): string[] => {
    const declared = (spec.paths[op.path]![op.method.toLowerCase()] as { responses: Record<string, { content?: Record<string, unknown> }> }).responses
    const status = String(res.statusCode)
    const response = declared[status] ?? declared[`${status[0]}XX`] ?? declared.default
    if (!response) return [`status ${status} is not declared (declared: ${Object.keys(declared).join(', ')})`]
    if (res.statusCode === 204 || res.statusCode === 304 || res.statusCode === 101) return res.body.length > 0 && res.statusCode !== 101 ? [`${status} with a body`] : []
    const type = String(res.headers['content-type'] ?? '').split(';')[0]!.trim()
    const content = response.content ?? {}
    if (!(type in content)) return [`content type "${type}" is not declared for ${status} (declared: ${Object.keys(content).join(', ') || 'none'})`]
    if (!type.endsWith('json')) return []
    const key = `${op.method} ${op.path} ${status} ${type}`
    let validate = compiled.get(key)
    if (!validate) {
      const pointer = ['paths', op.path, op.method.toLowerCase(), 'responses', declared[status] ? status : declared[`${status[0]}XX`] ? `${status[0]}XX` : 'default', 'content', type, 'schema']
      validate = ajv.compile({ $ref: `spec#/${pointer.map((s) => encodeURIComponent(escapePointer(s))).join('/')}` })
      compiled.set(key, validate)
    }
    let body: unknown
    try {
      body = JSON.parse(res.body)
    } catch {
      return [`the body is not JSON: ${res.body.slice(0, 200)}`]
    }
    if (validate(body)) return []
    return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} (${JSON.stringify(e.params)})`)
  }
}

// ---------------------------------------------------------------------------------------------
// Secrets that must never be in an answer.

/**
 * Finds secrets in an answer's body and headers: a bcrypt hash, one of the given passwords,
 * tokens or tickets (or their SHA-256, in hex or base64url, as they are stored), and field names
 * that only storage has. `allowed` are the secrets this answer may hold (the token of a sign-in).
 */
export function secretsIn(res: LightMyRequestResponse, known: Iterable<string>, allowed: Iterable<string> = [], handedFields: string[] = []): string[] {
  const allow = new Set(allowed)
  const text = res.body + '\n' + JSON.stringify(res.headers)
  const found: string[] = []
  if (/\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}/.test(text)) found.push('a bcrypt hash')
  // A field the operation hands out on purpose (a new TOTP secret, to the user enrolling it) is not a stored one shown.
  const stored = [...(res.body.matchAll(/"(password_hash|token_hash|hash|secret|sessions_version)"\s*:/g))].map((m) => m[1]!)
  if (stored.some((field) => !handedFields.includes(field))) found.push('a stored field')
  for (const secret of known) {
    if (allow.has(secret) || secret.length < 8) continue
    const hashes = [createHash('sha256').update(secret).digest('hex'), createHash('sha256').update(secret).digest('base64url')]
    if (text.includes(secret)) found.push(`the secret ${secret.slice(0, 6)}…`)
    else if (hashes.some((h) => text.includes(h))) found.push(`the hash of the secret ${secret.slice(0, 6)}…`)
  }
  return found
}

// ---------------------------------------------------------------------------------------------
// Requests made from the schemas, with fast-check.

export interface Pools {
  /** Ids to put where a UUID goes: the caller's, other users', and unknown ones. */
  ids: () => string[]
  /** Values to try, besides random ones, for fields of these names (the actors' emails and passwords). */
  named?: () => Record<string, unknown[]>
}

const BOUND = 1_000_000

/** Values a schema takes (as well as fast-check can tell from its keywords). */
export function valid(spec: Spec, raw: JsonSchema, pools: Pools): fc.Arbitrary<unknown> {
  const schema = resolve(spec, raw)
  if (schema.const !== undefined) return fc.constant(schema.const)
  if (schema.enum) return fc.constantFrom(...schema.enum)
  const alternatives = schema.anyOf ?? schema.oneOf
  if (alternatives) return fc.oneof(...alternatives.map((s) => valid(spec, s, pools)))
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : []
  if (types.length > 1) return fc.oneof(...types.map((type) => valid(spec, { ...schema, type }, pools)))
  switch (types[0]) {
    case 'null':
      return fc.constant(null)
    case 'boolean':
      return fc.boolean()
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -BOUND, max: Math.min(schema.maximum ?? BOUND, 2 ** 31 - 1) })
    case 'number':
      return fc.double({ min: schema.minimum ?? -BOUND, max: schema.maximum ?? BOUND, noNaN: true, noDefaultInfinity: true })
    case 'string':
      return validString(schema, pools)
    case 'array': {
      const item = valid(spec, schema.items ?? {}, pools)
      const bounds = { minLength: schema.minItems ?? 0, maxLength: Math.min(schema.maxItems ?? 3, 3) }
      return schema.uniqueItems ? fc.uniqueArray(item, { ...bounds, selector: (v) => JSON.stringify(v) }) : fc.array(item, bounds)
    }
    case 'object':
      return validObject(spec, schema, pools)
    default:
      return schema.properties ? validObject(spec, schema, pools) : fc.jsonValue({ maxDepth: 2 })
  }
}

function validObject(spec: Spec, schema: JsonSchema, pools: Pools): fc.Arbitrary<unknown> {
  const named = pools.named?.() ?? {}
  const properties = Object.fromEntries(
    Object.entries(schema.properties ?? {})
      .filter(([, s]) => !s.deprecated)
      .map(([name, s]) => [name, named[name]?.length ? fc.oneof(fc.constantFrom(...named[name]!), valid(spec, s, pools)) : valid(spec, s, pools)]),
  )
  return fc.record(properties, { requiredKeys: (schema.required ?? []).filter((name) => name in properties) })
}

function validString(schema: JsonSchema, pools: Pools): fc.Arbitrary<string> {
  const min = schema.minLength ?? 0
  const max = Math.min(schema.maxLength ?? 60, 60)
  switch (schema.format) {
    case 'uuid':
      return fc.oneof({ arbitrary: fc.constantFrom(...pools.ids()), weight: 3 }, { arbitrary: fc.uuid({ version: 7 }), weight: 1 })
    case 'email':
      return fc.tuple(fc.stringMatching(/^[a-z][a-z0-9.]{0,15}$/), fc.constantFrom('example.com', 'example.org')).map(([local, domain]) => `${local.replace(/\.+$/, '')}@${domain}`)
    case 'date-time':
      return fc.date({ min: new Date(Date.now() + 3_600_000), max: new Date(Date.now() + 365 * 86_400_000), noInvalidDate: true }).map((d) => d.toISOString())
  }
  const text = fc.string({ minLength: min, maxLength: Math.max(min, max), unit: 'grapheme' })
  if (schema.pattern === '\\S') return text.filter((s) => /\S/.test(s) && s.length <= max)
  if (schema.pattern) return fc.stringMatching(new RegExp(schema.pattern)).filter((s) => s.length >= min && s.length <= (schema.maxLength ?? Infinity))
  // Lengths count UTF-16 units for the validator, graphemes for fast-check.
  return text.filter((s) => s.length >= min && s.length <= (schema.maxLength ?? Infinity))
}

/** A value the schema surely refuses (another JSON type, or past a bound), or undefined when none is sure. */
export function invalid(spec: Spec, raw: JsonSchema): fc.Arbitrary<unknown> | undefined {
  const schema = resolve(spec, raw)
  const alternatives = schema.anyOf ?? schema.oneOf
  const allowed = new Set<string>()
  if (alternatives) {
    for (const alt of alternatives.map((s) => resolve(spec, s))) {
      if (alt.const !== undefined) allowed.add(alt.const === null ? 'null' : typeof alt.const)
      else if (alt.type) for (const t of [alt.type].flat()) allowed.add(t)
      else return undefined
    }
  } else if (schema.enum) {
    return fc.constantFrom('NOT_ONE_OF_THEM', 12345)
  } else if (schema.type) {
    for (const t of [schema.type].flat()) allowed.add(t)
  } else return undefined
  if (allowed.has('integer')) allowed.add('number')
  const others: fc.Arbitrary<unknown>[] = []
  if (!allowed.has('string')) others.push(fc.constantFrom('12', 'abc', ''))
  if (!allowed.has('number')) others.push(fc.constantFrom(7, -1.5))
  if (!allowed.has('boolean')) others.push(fc.boolean())
  if (!allowed.has('null')) others.push(fc.constant(null))
  if (!allowed.has('object')) others.push(fc.constant({ x: 1 }))
  if (!allowed.has('array')) others.push(fc.constant([1, 'a']))
  if (!alternatives && schema.type === 'integer') others.push(fc.constant(1.5), ...(schema.maximum !== undefined ? [fc.constant(schema.maximum + 1)] : []))
  if (!alternatives && schema.type === 'string' && schema.maxLength !== undefined && schema.maxLength < 10_000) others.push(fc.constant('x'.repeat(schema.maxLength + 1)))
  if (!alternatives && schema.type === 'string' && schema.format === 'uuid') others.push(fc.constantFrom('not-a-uuid', '0190f3c4-0000-7000-8000'))
  return others.length > 0 ? fc.oneof(...others) : undefined
}
