import cluster from 'node:cluster'
import module from 'node:module'
import { ConfigError, loadConfig, type Config } from './config.js'
import { FolderInUseError } from './platform/db/folder-lock.js'

// The entry point: read the config, open the adapters, serve, and shut down cleanly on a signal.
// With WORKERS=N, the primary forks N processes that share the port (node:cluster).
//
// A start is what a restart costs users, so it does no more than it must: the app's modules are
// loaded by the processes that serve (not by a cluster's primary, which only forks), and their
// compiled code is kept on disk across starts (Node's compile cache: NODE_COMPILE_CACHE names
// its folder, the system's temporary one by default; NODE_DISABLE_COMPILE_CACHE=1 turns it off).
module.enableCompileCache?.()

async function serve(config: Config) {
  const [{ openPlatform }, { buildApp }] = await Promise.all([import('./platform/index.js'), import('./app.js')])
  const platform = await openPlatform(config)
  const app = await buildApp(config, platform)

  let closing = false
  const shutdown = async (signal: string) => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down: no new connections, finishing requests in flight')
    const force = setTimeout(() => {
      app.log.error('requests still in flight at the shutdown timeout; exiting anyway')
      process.exit(1)
    }, config.shutdownTimeout)
    force.unref()
    try {
      await app.close()
      await platform.close()
      app.log.info('shut down')
      process.exit(0)
    } catch (error) {
      app.log.error({ err: error }, 'shutdown failed')
      process.exit(1)
    }
  }
  process.once('SIGTERM', () => void shutdown('SIGTERM'))
  process.once('SIGINT', () => void shutdown('SIGINT'))

  await app.listen({ port: config.port, host: config.host })
  app.log.info(`docs at http://localhost:${config.port}/docs (node ${process.version}, database: ${platform.database.kind}, live store: ${platform.live.kind})`)
}

const MAX_FAILED_STARTS = 3

async function main() {
  let config: Config
  try {
    config = loadConfig()
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message)
      process.exit(2)
    }
    throw error
  }

  if (config.workers > 1 && cluster.isPrimary) {
    console.log(`starting ${config.workers} workers`)
    for (let i = 0; i < config.workers; i++) cluster.fork()
    let stopping = false
    let exitCode = 0
    const stop = (signal: NodeJS.Signals) => {
      stopping = true
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal)
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
    // A worker that dies before it ever listens will die again (a bad setting, a missing file):
    // after a few in a row the primary gives up, so a supervisor sees the crash, not a loop.
    let failedStarts = 0
    const listened = new Set<number>()
    // How long each start took, said with it: it is how long a restarted service answers nothing.
    const forkedAt = new Map<number, number>()
    cluster.on('fork', (worker) => forkedAt.set(worker.id, performance.now()))
    cluster.on('listening', (worker) => {
      listened.add(worker.id)
      failedStarts = 0
      console.log(`worker ${worker.process.pid} listening, ${Math.round(performance.now() - (forkedAt.get(worker.id) ?? 0))} ms after its start`)
    })
    cluster.on('exit', (worker, code) => {
      forkedAt.delete(worker.id)
      if (stopping) {
        if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(exitCode)
        return
      }
      if (!listened.delete(worker.id) && ++failedStarts >= MAX_FAILED_STARTS) {
        console.error(`${failedStarts} workers in a row exited with ${code} before listening; stopping`)
        exitCode = 1
        stop('SIGTERM')
        if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(exitCode)
        return
      }
      console.error(`worker ${worker.process.pid} exited with ${code}; starting another`)
      cluster.fork()
    })
    return
  }
  await serve(config)
}

main().catch((error) => {
  // A refusal that says what to do needs no stack trace.
  console.error(error instanceof FolderInUseError ? error.message : error)
  process.exit(1)
})
