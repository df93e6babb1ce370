// The server side of `npm run bench:auth`, run in a process of its own so that the load
// generator does not share an event loop with it. BENCH_MODE=app serves the whole app with the
// configuration in its environment; BENCH_MODE=bare serves one bare Fastify route, the baseline.
// It talks to the benchmark over IPC: it says where it listens, reports its memory, runs raw
// bcrypt.compare on request (the baseline for sign-ins), and stops when told.

import bcrypt from 'bcrypt'
import Fastify, { type FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { openPlatform, type Platform } from '../src/platform/index.js'

export type ToServer =
  | { type: 'bcrypt'; cost: number; concurrency: number; durationMs: number }
  | { type: 'cpu' }
  | { type: 'stop' }

export type FromServer =
  | { type: 'listening'; url: string }
  | { type: 'rss'; rss: number }
  | { type: 'bcrypt'; compares: number; elapsedMs: number }
  | { type: 'cpu'; micros: number }
  | { type: 'stopped' }

const send = (message: FromServer) => process.send?.(message)

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
  } else {
    const config = loadConfig(process.env)
    platform = await openPlatform(config)
    app = await buildApp(config, platform)
  }
  const url = await app.listen({ port: 0, host: '127.0.0.1' })

  const memory = setInterval(() => send({ type: 'rss', rss: process.memoryUsage.rss() }), 250)
  process.on('message', (message: ToServer) => {
    if (message.type === 'bcrypt') {
      rawCompares(message.cost, message.concurrency, message.durationMs).then((result) => send({ type: 'bcrypt', ...result }))
    } else if (message.type === 'cpu') {
      const used = process.cpuUsage()
      send({ type: 'cpu', micros: used.user + used.system })
    } else if (message.type === 'stop') {
      clearInterval(memory)
      void app
        .close()
        .then(() => platform?.close())
        .then(() => {
          send({ type: 'stopped' })
          process.disconnect()
        })
    }
  })
  process.on('disconnect', () => process.exit(0))
  send({ type: 'listening', url })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
