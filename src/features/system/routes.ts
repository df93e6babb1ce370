import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { sql } from 'kysely'
import { Type } from 'typebox'
import { UnavailableError } from '../../errors.js'
import { problemResponses } from '../../http/problems.js'

const tags = ['system']
const CHECK_TIMEOUT_MS = 2_000

const within = <T>(work: Promise<T>, ms: number) =>
  Promise.race([work, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timed out')), ms).unref())])

export async function systemRoutes(fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()

  app.get('/health', {
    config: { rateLimit: false },
    logLevel: 'warn',
    schema: {
      tags,
      summary: 'Liveness: the process is up',
      // No input and no rate limit: the one error it can answer is an unexpected one.
      response: { 200: Type.Object({ status: Type.Literal('ok') }), 500: problemResponses()[500]! },
    },
  }, async () => ({ status: 'ok' as const }))

  app.get('/ready', {
    config: { rateLimit: false },
    logLevel: 'warn',
    schema: {
      tags,
      summary: 'Readiness: the database and the live store answer',
      response: {
        200: Type.Object({ status: Type.Literal('ready'), database: Type.String(), live_store: Type.String() }),
        ...problemResponses(503),
      },
    },
  }, async () => {
    const failing: string[] = []
    await Promise.all([
      within(sql`SELECT 1`.execute(app.platform.database.db), CHECK_TIMEOUT_MS).catch(() => failing.push('database')),
      within(app.platform.live.ping(), CHECK_TIMEOUT_MS).catch(() => failing.push('live store')),
    ])
    if (failing.length > 0) throw new UnavailableError(`Not ready: the ${failing.join(' and the ')} did not answer`, 'not_ready')
    return { status: 'ready' as const, database: app.platform.database.kind, live_store: app.platform.live.kind }
  })
}
