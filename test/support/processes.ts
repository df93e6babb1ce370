import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'

// The service as `npm start` runs it: the code built by `npm run build`, on the project's Node,
// in a process of its own.

export const run = promisify(execFile)

// dist/ is built once before the tests by test/support/global-build.ts.

const dirs: string[] = []
/** A scratch folder, removed by `removeTempDirs` (call it in afterAll). */
export async function tempDir() {
  const dir = await mkdtemp(path.join(tmpdir(), 'freelancer-'))
  dirs.push(dir)
  return dir
}
export const removeTempDirs = () => Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })))

export const freePort = () =>
  new Promise<number>((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

// A server a failed or timed-out test left running goes with the test process.
const started = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of started) child.kill('SIGKILL')
})

/** Starts dist/src/server.js with these settings over the test's environment. */
export function startServer(env: Record<string, string>) {
  const child = spawn(process.execPath, ['dist/src/server.js'], {
    env: { ...process.env, LOG_LEVEL: 'info', DEBUG: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  started.add(child)
  child.once('exit', () => started.delete(child))
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const listening = async () => {
    for (let i = 0; i < 300 && !output.includes('Server listening'); i++) {
      if (child.exitCode !== null) throw new Error(`server exited: ${output}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  return { child, exited, listening, output: () => output }
}
