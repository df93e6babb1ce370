import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { sql } from 'kysely'
import { Type } from 'typebox'
import { AppError, UnavailableError } from '../../errors.js'
import { problemResponses } from '../../http/problems.js'

const tags = ['system']

/** Settles as `work` does, or fails once `ms` have passed: a stalled server never holds a check longer. */
const within = <T>(work: Promise<T>, ms: number) => {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new UnavailableError(`no answer within ${ms} ms`)), ms)))
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer))
}

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
      summary: 'Readiness: the database, the live store and the task queue answer',
      description: `503 \`not_ready\` when one does not answer within the server's READY_TIMEOUT (a server down or stalled), or when a connection that listens for events or task wake-ups dropped and is being made again; the detail names each failing part.`,
      response: {
        200: Type.Object({ status: Type.Literal('ready'), database: Type.String(), live_store: Type.String() }),
        ...problemResponses(),
        503: { ...(problemResponses()[503] as object), description: 'Not ready (`not_ready`): the detail names the parts that failed' } as never,
      },
    },
  }, async (request) => {
    const { database, live, queue } = app.platform
    const checks: [string, () => Promise<unknown>][] = [
      ['database', () => sql`SELECT 1`.execute(database.db)],
      ['live store', () => live.ping()],
      ['task queue', () => queue.ping()],
    ]
    const failing: string[] = []
    await Promise.all(
      checks.map(([part, check]) =>
        within(check(), app.config.readyTimeout).catch((error: unknown) => {
          // What the servers said (addresses, user names) goes to the log, not to anyone who asks.
          if (!(error instanceof AppError)) request.log.warn({ err: error }, `readiness: the ${part} failed`)
          failing.push(`the ${part} (${error instanceof AppError ? error.message : 'failed; see the log'})`)
        }),
      ),
    )
    if (failing.length > 0) throw new UnavailableError(`Not ready: ${failing.join('; ')}`, 'not_ready')
    return { status: 'ready' as const, database: database.kind, live_store: live.kind }
  })
}
