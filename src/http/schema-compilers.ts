import { SerializerSelector } from '@fastify/fast-json-stringify-compiler'
import { Ajv } from 'ajv'
import type { FastifySchemaValidationError } from 'fastify'
import addFormats from 'ajv-formats'

// Fastify compiles every route's validators and response serializers at start, for every status
// code a route declares: most are never used by a process (error shapes of rare statuses), and
// compiling them was most of a process's start (about 1 s of CPU, far more on a busy machine,
// while nothing answers). Here each is compiled on its first use instead, the same code once
// made; the schemas themselves are checked by the OpenAPI document's tests, not at start.

type Validate = ((data: unknown, context?: object) => boolean) & { errors?: FastifySchemaValidationError[] | null; schemaEnv?: unknown }

/** A function that compiles `make()` on its first call and is that function from then on. */
function onFirstUse<F extends (...args: any[]) => any>(make: () => F): F {
  let compiled: F | undefined
  return ((...args: Parameters<F>) => (compiled ??= make())(...args)) as F
}

/**
 * Two Ajv instances: query strings, params and headers are coerced from text; bodies never are.
 * A validator compiles at its first request; Fastify reads `errors` off the function it was given.
 */
export function validatorCompiler() {
  const common = { useDefaults: true, allErrors: false, addUsedSchema: false, strict: false } as const
  const forBody = new Ajv({ ...common, coerceTypes: false, removeAdditional: false })
  const forText = new Ajv({ ...common, coerceTypes: 'array', removeAdditional: false })
  addFormats.default(forBody)
  addFormats.default(forText)
  return ({ schema, httpPart }: { schema: object; httpPart?: string }) => {
    let compiled: Validate | undefined
    const validate: Validate = (data, context) => {
      compiled ??= (httpPart === 'body' ? forBody : forText).compile(schema) as Validate
      const valid = compiled(data, context)
      validate.errors = compiled.errors
      return valid
    }
    // What Ajv's own functions carry: Fastify then passes the parent object, so that a coerced
    // value replaces the request's.
    validate.schemaEnv = true
    return validate
  }
}

type SerializerFactory = ReturnType<typeof SerializerSelector>

/** Fastify's own serializers (fast-json-stringify, with the shared schemas), each made at its first answer. */
export const buildSerializer: SerializerFactory = (externalSchemas, options) => {
  const compile = SerializerSelector()(externalSchemas, options)
  return (route) => onFirstUse(() => compile(route))
}
