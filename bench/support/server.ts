// A server under test runs in a child process of its own, so the load generator never shares
// its event loop. Both sides of that, for every benchmark: the parent starts the child and talks
// to it (`BenchServer`), the child serves and answers (`serveOverIpc`).

import { fork, type ChildProcess } from 'node:child_process'
import { openSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'

/**
 * Node options that write a server's CPU profiles into BENCH_CPU_PROF, when it is set. Sampled
 * every 4 ms (not 1), so that profiling does not itself overload a busy server.
 */
export const cpuProfileArgs = (dir = process.env.BENCH_CPU_PROF): string[] =>
  dir ? ['--cpu-prof', '--cpu-prof-interval=4000', `--cpu-prof-dir=${dir}`] : []

/** The CPU time a Redis server has used so far (user and system), in seconds, from INFO. */
export async function redisCpuSeconds(redis: { info(section: 'cpu'): Promise<string> }): Promise<number> {
  const info = await redis.info('cpu')
  return Number(/used_cpu_user:([\d.]+)/.exec(info)![1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)![1])
}

/** What every bench server answers; a server may answer more (see `handle`). */
export type ServerMessage =
  | { type: 'listening'; url: string; pid: number }
  | { type: 'rss'; rss: number }
  | { type: 'memory'; rss: number; heapUsed: number; external: number }
  | { type: 'cpu'; micros: number }
  | { type: 'stopped' }
export type ServerRequest = { type: 'memory' } | { type: 'cpu' } | { type: 'stop' }

type Typed = { type: string; [field: string]: unknown }

/** `Extra` and `ExtraRequest`: the messages a server adds to the common ones. */
export class BenchServer<Extra extends Typed = never, ExtraRequest extends Typed = never> {
  private peak = 0
  private waiting = new Map<string, (message: ServerMessage | Extra) => void>()

  private constructor(private readonly child: ChildProcess, readonly url: string) {
    child.on('message', (message: ServerMessage | Extra) => {
      if (message.type === 'rss') this.peak = Math.max(this.peak, (message as { rss: number }).rss)
      this.waiting.get(message.type)?.(message)
    })
  }

  /** Forks `script` (a .ts file, run through tsx) with only `env` and waits until it listens. */
  static async start<Extra extends Typed = never, ExtraRequest extends Typed = never>(
    script: URL,
    options: { env: Record<string, string | undefined>; execArgv?: string[]; name?: string },
  ): Promise<BenchServer<Extra, ExtraRequest>> {
    const child = fork(fileURLToPath(script), [], {
      execArgv: [...(options.execArgv ?? []), '--import', 'tsx'],
      env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production', ...options.env },
      // Logs go nowhere (writing them is part of the cost, reading them is not); errors show.
      stdio: ['ignore', openSync('/dev/null', 'w'), 'inherit', 'ipc'],
    })
    const url = await new Promise<string>((resolve, reject) => {
      child.on('message', (message: Typed) => message.type === 'listening' && resolve(String(message.url)))
      child.once('exit', (code) => reject(new Error(`the ${options.name ?? 'bench'} server exited with ${code} before listening`)))
    })
    child.removeAllListeners('exit')
    return new BenchServer<Extra, ExtraRequest>(child, url)
  }

  /** Sends a request and waits for the answer of the given type. */
  request<Answer extends ServerMessage | Extra>(message: ServerRequest | ExtraRequest, answer: Answer['type']): Promise<Answer> {
    return new Promise((resolve) => {
      this.waiting.set(answer, (m) => {
        this.waiting.delete(answer)
        resolve(m as Answer)
      })
      this.child.send(message)
    })
  }

  /** The highest RSS the server reported since the last call. */
  takePeakRss() {
    const peak = this.peak
    this.peak = 0
    return peak
  }

  /** Memory after a full GC (when the child runs with --expose-gc): what the process keeps. */
  memory() {
    return this.request<Extract<ServerMessage, { type: 'memory' }>>({ type: 'memory' }, 'memory')
  }

  /** CPU time the server process has used so far (all its threads), in microseconds. */
  async cpuMicros() {
    return (await this.request<Extract<ServerMessage, { type: 'cpu' }>>({ type: 'cpu' }, 'cpu')).micros
  }

  /** Ends the child at once, if it still runs (cleanup after a failed stop). */
  kill() {
    if (this.child.exitCode === null) this.child.kill('SIGKILL')
  }

  async stop() {
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.send({ type: 'stop' })
    await exited
  }
}

/**
 * The child side: serves `app` on a free loopback port, reports its RSS every 250 ms, answers
 * memory and CPU requests (and any that `handle` takes), and on `stop` closes the app, then
 * `close` (its platform), and exits.
 */
export async function serveOverIpc(
  app: FastifyInstance,
  options: { close?: () => Promise<void>; handle?: (message: Typed, send: (answer: Typed) => void) => boolean } = {},
) {
  const send = (message: Typed) => process.send?.(message)
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  const rss = setInterval(() => send({ type: 'rss', rss: process.memoryUsage.rss() }), 250)
  process.on('message', (message: Typed) => {
    if (options.handle?.(message, send)) return
    if (message.type === 'memory') {
      ;(globalThis as { gc?: () => void }).gc?.()
      const m = process.memoryUsage()
      send({ type: 'memory', rss: m.rss, heapUsed: m.heapUsed, external: m.external })
    } else if (message.type === 'cpu') {
      const used = process.cpuUsage()
      send({ type: 'cpu', micros: used.user + used.system })
    } else if (message.type === 'stop') {
      clearInterval(rss)
      void app
        .close()
        .then(() => options.close?.())
        .finally(() => {
          send({ type: 'stopped' })
          process.disconnect()
        })
    }
  })
  process.on('disconnect', () => process.exit(0))
  send({ type: 'listening', url, pid: process.pid })
}
