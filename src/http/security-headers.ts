import type { FastifyInstance, FastifyReply } from 'fastify'
import helmet from 'helmet'

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

/** The API answers' headers, on an answer made outside the request lifecycle (a router refusal). */
export function setApiSecurityHeaders(reply: FastifyReply) {
  reply.header('cache-control', 'no-store')
  forApi(reply.request.raw, reply.raw, () => {})
}

export function registerSecurityHeaders(app: FastifyInstance) {
  app.addHook('onRequest', (request, reply, done) => {
    if (request.routeOptions.url?.startsWith(DOCS_PREFIX)) return forPages(request.raw, reply.raw, () => done())
    reply.header('cache-control', 'no-store')
    forApi(request.raw, reply.raw, () => done())
  })
}
