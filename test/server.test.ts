import { spawn } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { ConfigError, loadConfig } from '../src/config.js'
import { openDatabase } from '../src/platform/db/index.js'
import { waitUntil } from './support/wait.js'
import { freePort, removeTempDirs, startServer, tempDir } from './support/processes.js'

afterAll(removeTempDirs)

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

describe('WORKERS', () => {
  it('stops with 1, instead of starting workers again and again, when they die before listening', async () => {
    // Nothing listens on port 1: every worker fails to reach its database and exits.
    const server = startServer({ WORKERS: '2', PORT: String(await freePort()), HOST: '127.0.0.1', DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' })
    expect(await server.exited).toBe(1)
    expect(server.output()).toContain('3 workers in a row exited with 1 before listening; stopping')
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

/** Sends the head of a sign-up and the first bytes of its body: a request in flight until `finish`. */
async function halfSentSignUp(port: number, email: string) {
  const body = JSON.stringify({ email, password: 'a good password', first_name: 'Slow', last_name: 'Sender' })
  const socket = net.connect(port, '127.0.0.1')
  await new Promise((r) => socket.once('connect', r))
  let answer = ''
  socket.on('data', (d) => (answer += d))
  const closed = new Promise((r) => socket.once('close', r))
  socket.write(`POST /signup HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body.slice(0, 20)}`)
  return {
    finish: () => socket.write(body.slice(20)),
    closed,
    answer: () => answer,
  }
}

describe('graceful shutdown, sockets and its bound', () => {
  it('closes WebSockets with 1001 (going away) and still answers the request in flight', async () => {
    const port = await freePort()
    const server = startServer({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: await tempDir(), BCRYPT_COST: '4' })
    await server.listening()
    const signUp = await fetch(`http://127.0.0.1:${port}/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'listener@example.com', password: 'a good password', first_name: 'Lis', last_name: 'Tener' }) })
    expect(signUp.status).toBe(201)
    const signIn = await fetch(`http://127.0.0.1:${port}/authorize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'listener@example.com', password: 'a good password' }) })
    const { access_token: token } = (await signIn.json()) as { access_token: string }
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { authorization: `Bearer ${token}` } })
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)))
    const closeCode = new Promise<number>((r) => ws.once('close', (code) => r(code)))
    const slow = await halfSentSignUp(port, 'slow@example.com')
    await new Promise((r) => setTimeout(r, 200))

    server.child.kill('SIGTERM')
    expect(await closeCode).toBe(1001)
    // The socket went at once; the half-sent request is still served once its body comes.
    slow.finish()
    await slow.closed
    expect(slow.answer()).toMatch(/^HTTP\/1\.1 201/)
    expect(await server.exited).toBe(0)
  })

  it('gives up on a request still in flight at SHUTDOWN_TIMEOUT and exits 1, saying so', async () => {
    const port = await freePort()
    const server = startServer({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: await tempDir(), BCRYPT_COST: '4', SHUTDOWN_TIMEOUT: '300' })
    await server.listening()
    const stuck = await halfSentSignUp(port, 'stuck@example.com')
    await new Promise((r) => setTimeout(r, 200))

    server.child.kill('SIGTERM')
    // The body never comes: the process doesn't wait for it beyond its bound.
    expect(await server.exited).toBe(1)
    expect(server.output()).toContain('requests still in flight at the shutdown timeout')
    await stuck.closed
    expect(stuck.answer()).toBe('')
  })
})

describe('npm start', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('stops the server when %s reaches the npm process', async (signal) => {
    const port = await freePort()
    const npm = spawn('npm', ['start', '--silent'], { env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: await tempDir(), LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    npm.stdout.on('data', (d) => (output += d))
    npm.stderr.on('data', (d) => (output += d))
    await waitUntil(() => output.includes('Server listening'), 120_000)
    npm.kill(signal)
    await new Promise((r) => npm.once('exit', r))
    // The server went with it: nothing is left answering on the port.
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/health`).then(() => false, () => true)), 10_000)
    expect(output).toContain('shut down')
  }, 150_000)
})
