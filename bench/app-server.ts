// The whole app, configured by its environment, as a bench server (see support/server.ts).
// Besides the common messages it answers `payments-applied` with how many provider events its
// payments applier has applied (bench/payments.ts waits on it and checks none is applied twice).

import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { openPlatform } from '../src/platform/index.js'
import { serveOverIpc } from './support/server.js'

async function main() {
  const config = loadConfig(process.env)
  const platform = await openPlatform(config)
  const app = await buildApp(config, platform)
  await serveOverIpc(app, {
    close: () => platform.close(),
    handle: (message, send) => {
      if (message.type !== 'payments-applied') return false
      send({ type: 'payments-applied', count: app.payments.appliedEvents() })
      return true
    },
  })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
