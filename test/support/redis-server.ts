import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from './processes.js'

// One redis-server of a test's own on a free loopback port, without persistence, to stop, pause
// and start again (never the shared one, which other tests use).

export interface RedisServer {
  url: string
  port: number
  /** SIGSTOP: the server holds its connections and answers nothing, as a stalled one does. */
  pause(): void
  /** SIGCONT after pause(). */
  resume(): void
  /** Kills the server at once (SIGKILL): connections drop, data goes. */
  kill(): Promise<void>
  /** Starts a server again on the same port (after kill); nothing when it runs. */
  start(): Promise<void>
  /** Stops the server for good; safe to call twice. */
  stop(): Promise<void>
}

const READY_TIMEOUT_MS = 20_000

/** Whether something answers PING on the port. */
function pings(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (data) => done(String(data).startsWith('+PONG')))
  })
}

export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort()
  let child: ChildProcess | undefined
  let output = ''

  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null
  // If the test process ends without stop(), the server goes too.
  const onExit = () => {
    if (running()) child!.kill('SIGKILL')
  }
  process.once('exit', onExit)

  const start = async () => {
    if (running()) return
    output = ''
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', ''], { stdio: ['ignore', 'pipe', 'pipe'] })
    const keep = (chunk: Buffer) => (output = (output + chunk).slice(-4000))
    child.stdout!.on('data', keep)
    child.stderr!.on('data', keep)
    child.on('error', (error) => keep(Buffer.from(`\n${error.message}`)))
    const deadline = Date.now() + READY_TIMEOUT_MS
    while (!(await pings(port))) {
      if (child.pid === undefined) throw new Error('could not start redis-server: is it installed and on PATH?')
      if (!running()) throw new Error(`redis-server on port ${port} stopped:\n${output}`)
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer:\n${output}`)
      await sleep(50)
    }
  }

  const kill = async () => {
    if (!running()) return
    const exited = new Promise((resolve) => child!.once('exit', resolve))
    child!.kill('SIGCONT') // a paused server must run to die
    child!.kill('SIGKILL')
    await exited
  }

  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    kill,
    start,
    async stop() {
      await kill()
      process.off('exit', onExit)
    },
  }
}
