// The server side of `npm run bench:jobs`: the whole app, configured by its environment, in a
// process of its own so the load generator does not share its event loop. Over IPC it says where
// it listens, reports its memory, and stops when told.

import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { openPlatform } from '../src/platform/index.js'

export type ToJobsServer = { type: 'stop' }
export type FromJobsServer = { type: 'listening'; url: string } | { type: 'rss'; rss: number } | { type: 'stopped' }

const send = (message: FromJobsServer) => process.send?.(message)

async function main() {
  const config = loadConfig(process.env)
  const platform = await openPlatform(config)
  const app = await buildApp(config, platform)
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  const memory = setInterval(() => send({ type: 'rss', rss: process.memoryUsage.rss() }), 250)
  process.on('message', (message: ToJobsServer) => {
    if (message.type !== 'stop') return
    clearInterval(memory)
    void app
      .close()
      .then(() => platform.close())
      .then(() => {
        send({ type: 'stopped' })
        process.disconnect()
      })
  })
  process.on('disconnect', () => process.exit(0))
  send({ type: 'listening', url })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
