import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

// One redis-server of a test's own, without persistence (no RDB, no AOF), on a free loopback
// port: for tests that restart Redis. Its process never outlives the test process.

export interface OwnRedis {
  url: string
  /** Stops the server (its data goes) and starts a new one on the same port. */
  restart(): Promise<void>
  stop(): Promise<void>
}

const READY_TIMEOUT_MS = 20_000

async function freePort(): Promise<number> {
  const server = await new Promise<net.Server>((resolve, reject) => {
    const s = net.createServer().once('error', reject).listen(0, '127.0.0.1', () => resolve(s))
  })
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

const answers = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('error', () => resolve(false))
    socket.once('data', (data) => {
      socket.destroy()
      resolve(String(data).startsWith('+PONG'))
    })
    socket.write('PING\r\n')
  })

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}

export async function startOwnRedis(): Promise<OwnRedis> {
  const port = await freePort()
  let child: ChildProcess | undefined
  const onExit = () => child?.kill('SIGKILL')
  process.once('exit', onExit)

  const start = async () => {
    let output = ''
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', ''], { stdio: ['ignore', 'pipe', 'pipe'] })
    const keep = (chunk: Buffer) => (output = (output + chunk).slice(-4000))
    child.stdout!.on('data', keep)
    child.stderr!.on('data', keep)
    child.on('error', (error) => keep(Buffer.from(`\n${error.message}`)))
    const deadline = Date.now() + READY_TIMEOUT_MS
    while (!(await answers(port))) {
      if (child.exitCode !== null || child.pid === undefined) throw new Error(`redis-server did not start (is it on PATH?):\n${output}`)
      if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer:\n${output}`)
      await sleep(50)
    }
  }
  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    async restart() {
      await stopProcess(child!)
      await start()
    },
    async stop() {
      await stopProcess(child!)
      process.off('exit', onExit)
    },
  }
}
