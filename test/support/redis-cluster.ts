import { spawn, type ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'

// A real Redis Cluster on this machine: three masters (no replicas) started from the
// `redis-server` binary on free loopback ports, their files in a temporary directory. Needs
// redis-server 7 or later (`cluster-port`, `CLUSTER ADDSLOTSRANGE`).

export interface RedisCluster {
  /** The first node's URL: what REDIS_URL names with REDIS_CLUSTER=true. */
  url: string
  /** The client port of each master. */
  ports: number[]
  /** Stops every node and removes the directory; safe to call twice. */
  stop(): Promise<void>
}

/** Where each test run's clusters keep their files; CI looks for leftovers by this name. */
export const CLUSTER_DIR_PREFIX = 'fl-redis-cluster-'

const MASTERS = 3
const SLOTS = 16384
const READY_TIMEOUT_MS = 20_000

/** Ports nothing listens on now: all held open at once, so they differ. */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
      const server = net.createServer().once('error', reject).listen(0, '127.0.0.1', () => resolve(server))
    })),
  )
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port)
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  return ports
}

async function until<T>(what: string, check: () => Promise<T | undefined>, failed: () => string | undefined): Promise<T> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  for (;;) {
    const gone = failed()
    if (gone) throw new Error(`Redis Cluster: ${gone}`)
    const value = await check().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`Redis Cluster: timed out waiting for ${what}`)
    await sleep(50)
  }
}

export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = await mkdtemp(path.join(tmpdir(), CLUSTER_DIR_PREFIX))
  const nodes: { port: number; bus: number; child: ChildProcess; output: string }[] = []
  const clients: Redis[] = []

  // If the test process ends without stop() (an uncaught error, process.exit), the nodes and
  // their files still go.
  const onExit = () => {
    for (const node of nodes) if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  process.once('exit', onExit)

  let stopping: Promise<void> | undefined
  const stop = () =>
    (stopping ??= (async () => {
      for (const client of clients) client.disconnect()
      await Promise.all(nodes.map(({ child }) => stopProcess(child)))
      await rm(dir, { recursive: true, force: true })
      process.off('exit', onExit)
    })())

  try {
    const ports = await freePorts(MASTERS * 2)
    for (let i = 0; i < MASTERS; i++) {
      const [port, bus] = [ports[i]!, ports[MASTERS + i]!]
      const child = spawn('redis-server', [
        '--port', String(port), '--bind', '127.0.0.1', '--cluster-port', String(bus),
        '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '5000',
        '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', '',
      ], { stdio: ['ignore', 'pipe', 'pipe'] })
      const node = { port, bus, child, output: '' }
      const keep = (chunk: Buffer) => (node.output = (node.output + chunk).slice(-4000))
      child.stdout!.on('data', keep)
      child.stderr!.on('data', keep)
      child.on('error', (error) => keep(Buffer.from(`\n${error.message}`)))
      nodes.push(node)
    }
    const failed = () => {
      if (nodes.some((n) => n.child.pid === undefined)) return 'could not start redis-server: is it installed and on PATH?'
      const dead = nodes.find((n) => n.child.exitCode !== null || n.child.signalCode !== null)
      return dead && `the node on port ${dead.port} stopped:\n${dead.output}`
    }

    for (const node of nodes) {
      clients.push(
        await until(`port ${node.port}`, async () => {
          const client = new Redis({ host: '127.0.0.1', port: node.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
          client.on('error', () => {})
          try {
            await client.connect()
            return client
          } catch (error) {
            client.disconnect()
            throw error
          }
        }, failed),
      )
    }

    // Slots in three even ranges, a config epoch each (as redis-cli does), then the first node
    // meets the others; gossip spreads the rest.
    for (let i = 0; i < MASTERS; i++) {
      const first = Math.floor((SLOTS * i) / MASTERS)
      const last = Math.floor((SLOTS * (i + 1)) / MASTERS) - 1
      await clients[i]!.call('CLUSTER', 'ADDSLOTSRANGE', first, last)
      await clients[i]!.call('CLUSTER', 'SET-CONFIG-EPOCH', i + 1)
    }
    for (const node of nodes.slice(1)) await clients[0]!.call('CLUSTER', 'MEET', '127.0.0.1', node.port, node.bus)
    for (const client of clients) {
      await until('cluster_state:ok', async () => {
        const info = String(await client.call('CLUSTER', 'INFO'))
        return info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${MASTERS}`) && info.includes(`cluster_slots_ok:${SLOTS}`) ? true : undefined
      }, failed)
    }
    for (const client of clients) client.disconnect()
    clients.length = 0
    return { url: `redis://127.0.0.1:${nodes[0]!.port}`, ports: nodes.map((n) => n.port), stop }
  } catch (error) {
    await stop()
    throw error
  }
}

/** SIGTERM (without saving, the nodes shut down at once), SIGKILL if that takes over 5 s. */
async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
  await exited
  clearTimeout(timer)
}
