// The whole app, configured by its environment, as a bench server (see support/server.ts).

import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { openPlatform } from '../src/platform/index.js'
import { serveOverIpc } from './support/server.js'

async function main() {
  const config = loadConfig(process.env)
  const platform = await openPlatform(config)
  const app = await buildApp(config, platform)
  await serveOverIpc(app, { close: () => platform.close() })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
