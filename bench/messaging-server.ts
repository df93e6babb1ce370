// One API process of `npm run bench:messaging`: the whole app with the configuration in its
// environment (PostgreSQL and Redis). It tells the benchmark where it listens over IPC, reports
// its memory on request (after a full GC, so the figure is what the process keeps), and stops
// when told.

import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { openPlatform } from '../src/platform/index.js'

export type ToServer = { type: 'memory' } | { type: 'stop' }
export type FromServer =
  | { type: 'listening'; url: string; pid: number }
  | { type: 'memory'; rss: number; heapUsed: number; external: number }
  | { type: 'stopped' }

const send = (message: FromServer) => process.send?.(message)

async function main() {
  const config = loadConfig(process.env)
  const platform = await openPlatform(config)
  const app = await buildApp(config, platform)
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  process.on('message', (message: ToServer) => {
    if (message.type === 'memory') {
      ;(globalThis as { gc?: () => void }).gc?.()
      const m = process.memoryUsage()
      send({ type: 'memory', rss: m.rss, heapUsed: m.heapUsed, external: m.external })
    } else if (message.type === 'stop') {
      void app
        .close()
        .then(() => platform.close())
        .finally(() => {
          send({ type: 'stopped' })
          process.exit(0)
        })
    }
  })
  send({ type: 'listening', url, pid: process.pid })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
