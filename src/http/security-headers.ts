import type { FastifyInstance, FastifyReply } from 'fastify'
import helmet from 'helmet'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** Where the HTML pages are served (Swagger UI); everything else answers JSON or an image. */
export const DOCS_PREFIX = '/docs'

// Two helmet configurations, each built once (the Fastify wrapper, @fastify/helmet 13, builds its
// middleware again on every request):
// - API answers get the headers OWASP's REST Security Cheat Sheet lists for APIs: no framing
//   (CSP frame-ancestors and X-Frame-Options), nosniff, HSTS, and `Cache-Control: no-store`
//   unless the route sets its own (pictures do). The headers meant for HTML pages would add
//   ~700 bytes to every answer, which every phone downloads and parses for nothing.
// - The docs pages get helmet's full default set.
const forApi = helmet({
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  xFrameOptions: { action: 'deny' },
  crossOriginOpenerPolicy: false,
  crossOriginResourcePolicy: false,
  originAgentCluster: false,
  referrerPolicy: false,
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xPermittedCrossDomainPolicies: false,
  xXssProtection: false,
})
const forPages = helmet()

/**
 * The headers helmet sets on an API answer, read once: they are the same on every answer, and
 * setting them from one object costs a fraction of running helmet's middlewares each time.
 */
const API_HEADERS: Record<string, string> = (() => {
  const headers: Record<string, string> = { 'cache-control': 'no-store' }
  const response = {
    setHeader: (name: string, value: string) => void (headers[name.toLowerCase()] = value),
    removeHeader: (name: string) => void delete headers[name.toLowerCase()],
  }
  forApi({} as IncomingMessage, response as unknown as ServerResponse, () => {})
  return headers
})()

/** The API answers' headers, on an answer made outside the request lifecycle (a router refusal). */
export function setApiSecurityHeaders(reply: FastifyReply) {
  reply.headers(API_HEADERS)
  reply.header('x-request-id', reply.request.id)
}

/** Security headers and the request id, on every answer (errors and 404s included). */
export function registerSecurityHeaders(app: FastifyInstance) {
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    if (request.routeOptions.url?.startsWith(DOCS_PREFIX)) return forPages(request.raw, reply.raw, () => done())
    reply.headers(API_HEADERS)
    done()
  })
}
