import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../src/config.js'
import { openDatabase } from '../src/platform/db/index.js'

const dirs: string[] = []
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))))
const tempDir = async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'freelancer-'))
  dirs.push(dir)
  return dir
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

// The server as `npm start` runs it: the code built once by `npm run build`, on the project's Node.
beforeAll(async () => {
  await promisify(execFile)('npm', ['run', 'build', '--silent'], { timeout: 120_000 })
}, 120_000)

function startServer(env: Record<string, string>) {
  const child = spawn(process.execPath, ['dist/src/server.js'], {
    env: { ...process.env, LOG_LEVEL: 'info', DEBUG: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
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

describe('the runtime', () => {
  it('is the Node 24 the project installs, for the suite and for the server', async () => {
    // npm scripts put node_modules/.bin first on PATH, where the `node` package puts Node 24.
    expect(process.versions.node.split('.')[0]).toBe('24')
    expect(process.execPath).toContain(path.join('node_modules', 'node'))
    const port = await freePort()
    const server = startServer({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: await tempDir() })
    await server.listening()
    const health = await fetch(`http://127.0.0.1:${port}/health`)
    expect(health.status).toBe(200)
    expect(server.output()).toContain(`node ${process.version}`)
    server.child.kill('SIGTERM')
    expect(await server.exited).toBe(0)
  })
})

describe('configuration', () => {
  it('refuses bad values at start with a readable message naming each', () => {
    expect(() => loadConfig({ PORT: 'abc', BCRYPT_COST: '99', DATABASE_URL: 'mysql://x' })).toThrow(ConfigError)
    try {
      loadConfig({ PORT: 'abc', BCRYPT_COST: '99', DATABASE_URL: 'mysql://x' })
    } catch (error) {
      const message = (error as Error).message
      expect(message).toContain('PORT must be a whole number')
      expect(message).toContain('BCRYPT_COST must be a whole number from 4 to 31')
      expect(message).toContain('DATABASE_URL must start with postgres:// or postgresql://')
    }
  })

  it('takes REDIS_CLUSTER as true or false, only with a REDIS_URL on database 0', () => {
    expect(loadConfig({ REDIS_URL: 'redis://10.0.0.5:7000' }).redisCluster).toBe(false)
    expect(loadConfig({ REDIS_URL: 'redis://10.0.0.5:7000', REDIS_CLUSTER: 'true' })).toMatchObject({ redisUrl: 'redis://10.0.0.5:7000', redisCluster: true })
    expect(loadConfig({ REDIS_URL: 'redis://10.0.0.5:7000/0', REDIS_CLUSTER: 'true' }).redisCluster).toBe(true)
    expect(() => loadConfig({ REDIS_URL: 'redis://10.0.0.5:7000', REDIS_CLUSTER: 'cluster' })).toThrow('REDIS_CLUSTER must be true or false (got "cluster")')
    expect(() => loadConfig({ REDIS_CLUSTER: 'true' })).toThrow('REDIS_CLUSTER needs REDIS_URL')
    expect(() => loadConfig({ REDIS_URL: 'redis://10.0.0.5:7000/2', REDIS_CLUSTER: 'true' })).toThrow('REDIS_URL must not name a database with REDIS_CLUSTER')
  })

  it('the server exits with that message instead of starting', async () => {
    const server = startServer({ PORT: 'not-a-port' })
    expect(await server.exited).toBe(2)
    expect(server.output()).toContain('PORT must be a whole number')
  })
})

describe('the embedded database', () => {
  it('keeps its data in DATA_DIR across restarts', async () => {
    const dataDir = await tempDir()
    const first = await openDatabase({ databaseUrl: undefined, dataDir, poolSize: 1 })
    await first.db.insertInto('users').values({ id: '0190f3c4-0000-7000-8000-000000000001', email: 'kept@example.com', first_name: 'K', last_name: 'P', password_hash: null, roles: ['CLIENT'] }).execute()
    await first.close()
    const second = await openDatabase({ databaseUrl: undefined, dataDir, poolSize: 1 })
    const row = await second.db.selectFrom('users').select('email').executeTakeFirst()
    await second.close()
    expect(row?.email).toBe('kept@example.com')
  })
})

describe('graceful shutdown', () => {
  it('on SIGTERM stops accepting, finishes the request in flight, and exits 0', async () => {
    const port = await freePort()
    const server = startServer({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: await tempDir(), BCRYPT_COST: '4' })
    await server.listening()

    // A sign-up whose body is only half sent when the signal arrives.
    const body = JSON.stringify({ email: 'late@example.com', password: 'a good password', first_name: 'Late', last_name: 'Comer' })
    const socket = net.connect(port, '127.0.0.1')
    await new Promise((r) => socket.once('connect', r))
    let answer = ''
    socket.on('data', (d) => (answer += d))
    socket.write(`POST /signup HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body.slice(0, 20)}`)
    await new Promise((r) => setTimeout(r, 200))

    server.child.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 300))
    socket.write(body.slice(20))
    await new Promise((r) => socket.once('close', r))

    expect(answer).toMatch(/^HTTP\/1\.1 201/)
    expect(await server.exited).toBe(0)
    expect(server.output()).toContain('shut down')
    // And nothing listens any more.
    await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow()
  })
})
