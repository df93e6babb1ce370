// The server side of `npm run bench:auth`, run in a process of its own so that the load
// generator does not share an event loop with it. BENCH_MODE=app serves the whole app with the
// configuration in its environment; BENCH_MODE=bare serves one bare Fastify route, the baseline;
// BENCH_MODE=floor serves a bare Fastify route that does only the storage work GET /user did
// before each process kept what it authenticates (read the session and its user, in one query),
// to show what a read per request would cost.
// It talks to the benchmark over IPC (support/server.ts), and also runs raw bcrypt.compare on
// request: the baseline for sign-ins.

import bcrypt from 'bcrypt'
import Fastify, { type FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { openPlatform, type Platform } from '../src/platform/index.js'
import { createSessionsStore } from '../src/features/sessions/store.js'
import { hashToken } from '../src/features/sessions/service.js'
import { serveOverIpc } from './support/server.js'

/**
 * Beyond the common messages (support/server.ts): raw bcrypt.compare, the sign-in baseline; and
 * how many authentications the app keeps in memory.
 */
export type BcryptRequest = { type: 'bcrypt'; cost: number; concurrency: number; durationMs: number } | { type: 'cached' }
export type BcryptResult = { type: 'bcrypt'; compares: number; elapsedMs: number } | { type: 'cached'; size: number }

/** bcrypt.compare with `concurrency` compares in flight for `durationMs`, as the app would run them. */
async function rawCompares(cost: number, concurrency: number, durationMs: number) {
  const password = 'correct horse battery'
  const hash = await bcrypt.hash(password, cost)
  let compares = 0
  const started = performance.now()
  const deadline = started + durationMs
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        if (!(await bcrypt.compare(password, hash))) throw new Error('bcrypt.compare failed')
        compares++
      }
    }),
  )
  return { compares, elapsedMs: performance.now() - started }
}

async function main() {
  let app: FastifyInstance
  let platform: Platform | undefined
  if (process.env.BENCH_MODE === 'bare') {
    app = Fastify({ logger: false })
    app.get('/bare', async () => ({ ok: true }))
  } else if (process.env.BENCH_MODE === 'floor') {
    const config = loadConfig(process.env)
    platform = await openPlatform(config)
    const sessions = createSessionsStore(platform.database.db)
    app = Fastify({ logger: false })
    app.get('/floor', async (request, reply) => {
      const token = request.headers.authorization?.slice('Bearer '.length) ?? ''
      const found = await sessions.authenticate(hashToken(token))
      if (!found) return reply.code(401).send({ status: 401 })
      const { user } = found
      return { id: user.id, first_name: user.first_name, last_name: user.last_name, email: user.email }
    })
  } else {
    const config = loadConfig(process.env)
    platform = await openPlatform(config)
    app = await buildApp(config, platform)
  }
  await serveOverIpc(app, {
    close: async () => platform?.close(),
    handle(message, send) {
      if (message.type === 'cached') {
        send({ type: 'cached', size: app.hasDecorator('sessions') ? app.sessions.cached() : 0 })
        return true
      }
      if (message.type !== 'bcrypt') return false
      const { cost, concurrency, durationMs } = message as Extract<BcryptRequest, { type: 'bcrypt' }>
      void rawCompares(cost, concurrency, durationMs).then((result) => send({ type: 'bcrypt', ...result }))
      return true
    },
  })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
