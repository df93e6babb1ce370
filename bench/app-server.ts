// The whole app, configured by its environment, as a bench server (see support/server.ts).
// Besides the common messages it answers `payments-applied` with how many provider events its
// payments applier has applied (bench/payments.ts waits on it and checks none is applied twice),
// and `statements` with the SQL statements the app ran through Kysely so far, by their first word,
// with the time spent waiting for them (with DEBUG, the debug log's statement lines take the hook).

import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { openPlatform } from '../src/platform/index.js'
import { serveOverIpc } from './support/server.js'

async function main() {
  const config = loadConfig(process.env)
  const platform = await openPlatform(config)
  const app = await buildApp(config, platform)
  const statements: Record<string, { count: number; ms: number }> = {}
  if (!config.debug) {
    platform.database.logQueries((event) => {
      const kind = /^\s*(\w+)/.exec(event.query.sql)?.[1]?.toUpperCase() ?? '?'
      const entry = (statements[kind] ??= { count: 0, ms: 0 })
      entry.count++
      entry.ms += event.queryDurationMillis
    })
  }
  await serveOverIpc(app, {
    close: () => platform.close(),
    handle: (message, send) => {
      if (message.type === 'statements') {
        send({ type: 'statements', statements })
        return true
      }
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
