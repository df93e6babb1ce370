import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import { Problem } from './problems.js'
import { DOCS_PREFIX } from './security-headers.js'

// The OpenAPI document (`/openapi.json`, `/docs`), made from the route schemas. What every
// operation has in common is settled here, once: open routes say so (`security: []`), an answer
// without a description of its own is described by its status, and shared schemas are named
// components, referred to rather than copied into every operation.

const TAGS = [
  { name: 'accounts', description: 'Sign-up, the caller\'s own account, other users, profile pictures' },
  { name: 'sessions', description: 'Sign-in and sign-out; the devices (sessions) signed in to an account' },
  { name: 'identity', description: 'What comes by mail: confirming an email, undoing a change of it, resetting a forgotten password' },
  { name: 'location', description: 'Workers on the map: posting a (blurred) position, searching nearby' },
  { name: 'messaging', description: 'Messages, the inbox, conversations, blocks and reports' },
  { name: 'realtime', description: 'Instant delivery over a WebSocket, and its one-time tickets' },
  { name: 'jobs', description: 'Offers, their moves through the job workflow, and payment' },
  { name: 'notifications', description: 'What reaches each user where: preferences per event and channel, quiet hours, Web Push subscriptions, the phone for SMS' },
  { name: 'categories', description: 'The categories of work, a tree of two levels' },
  { name: 'reviews', description: 'Blind two-way reviews after a paid job, ratings, and answers to them' },
  { name: 'payments', description: 'Escrow of job prices, payout accounts, refunds, disputes and the provider\'s webhooks' },
  { name: 'admin', description: 'For admins only, every act audited: users (search, suspension, roles, deletion), categories, reports, reviews, any job, refunds, the platform\'s balances, the audit log, background tasks that kept failing' },
  { name: 'system', description: 'Liveness and readiness, for load balancers and orchestrators' },
]

const STATUS_DESCRIPTIONS: Record<string, string> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  204: 'No content',
  101: 'Switching protocols',
}

/** What @fastify/rate-limit adds to the answers of the routes it limits. */
const RATE_LIMIT_HEADERS = {
  'x-ratelimit-limit': { type: 'integer', description: 'Requests this caller may make in the window' },
  'x-ratelimit-remaining': { type: 'integer', description: 'Requests left in the window' },
  'x-ratelimit-reset': { type: 'integer', description: 'Seconds until the window starts again' },
}

/** Schemas of records that carry a version, answered with it as ETag. */
const VERSIONED = new Set(['Job'])

/** Named schemas: each is a component of the document, and routes refer to it by `<$id>#` (added to the app first thing, before any plugin). */
export const SHARED_SCHEMAS = [Problem]

export async function registerOpenApi(app: FastifyInstance, options: { version: string; publicUrl: string | undefined }) {
  app.addHook('onRoute', (route) => {
    const schema = route.schema as { hide?: boolean; operationId?: string; security?: unknown; response?: Record<string, Record<string, unknown>> } | undefined
    if (!schema || schema.hide) return
    // Client generators name their functions by it: every documented operation has one.
    if (!schema.operationId && route.method !== 'HEAD') throw new Error(`${String(route.method)} ${route.url} has no operationId in its schema`)
    // A route that names no security is open to anyone, and says so.
    schema.security ??= []
    const limited = (route.config as { rateLimit?: unknown } | undefined)?.rateLimit !== false
    for (const [status, answer] of Object.entries(schema.response ?? {})) {
      if (!answer) continue
      // Copied, not changed: a shared schema object serves other routes (and serialization).
      const described = answer.description === undefined ? { ...answer, description: STATUS_DESCRIPTIONS[status] ?? 'Answer' } : answer
      // Every answer of a rate-limited route tells where its caller stands; a versioned record
      // comes with its version as ETag (for If-Match).
      const headers = {
        ...(limited && /^2/.test(status) ? RATE_LIMIT_HEADERS : {}),
        ...(VERSIONED.has(String(answer.$id)) ? { etag: { type: 'string', description: 'The version, `"<version>"`: send it back in If-Match to change what you read' } } : {}),
        ...(described.headers as object | undefined),
      }
      schema.response![status] = Object.keys(headers).length > 0 ? { ...described, headers } : described
    }
  })

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Freelancer API',
        version: options.version,
        description: 'Backend of a local-services marketplace. Errors are RFC 9457 `application/problem+json`. Lists page with an opaque `cursor`.',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      servers: [{ url: options.publicUrl ?? '/', description: options.publicUrl ? 'This deployment' : 'The server this document came from' }],
      tags: TAGS,
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'The access_token from POST /authorize' } } },
    },
    // Components are named by their schemas' $id (`Problem`), not `def-0`.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  })
  await app.register(swaggerUi, {
    routePrefix: DOCS_PREFIX,
    staticCSP: true,
    // Swagger UI (React) sets style attributes from its scripts, which no hash can allow (and a
    // hash beside 'unsafe-inline' would cancel it). Scripts stay limited to the page's own.
    transformStaticCSP: (header) => header.replace(/style-src [^;]*/, "style-src 'self' 'unsafe-inline'"),
    uiConfig: { deepLinking: true },
  })
  app.get('/openapi.json', { schema: { hide: true }, config: { rateLimit: false } }, async () => app.swagger())
}
