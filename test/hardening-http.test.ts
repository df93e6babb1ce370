import net, { type AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../src/config.js'
import { WebSocket } from 'ws'
import { newUser, problem, startTestApp, type TestApp } from './support/app.js'

// Routes under the global per-address limit and open to anyone (the signed-in routes answer 401
// before any limit counts).
const PICTURE = '/users/00000000-0000-4000-8000-000000000000/picture'

describe('which address a request comes from (TRUST_PROXY)', () => {
  it('ignores X-Forwarded-For by default: a client can not escape the per-address limit by naming other addresses', async () => {
    const t = await startTestApp({ RATE_LIMIT_MAX: '2' })
    try {
      const from = (forwarded: string) => t.app.inject({ url: PICTURE, remoteAddress: '198.51.100.7', headers: { 'x-forwarded-for': forwarded } })
      expect((await from('203.0.113.1')).statusCode).toBe(404)
      expect((await from('203.0.113.2')).statusCode).toBe(404)
      expect(problem(await from('203.0.113.3'), 429).code).toBe('rate_limited')
    } finally {
      await t.close()
    }
  })

  it('counts the forwarded address when the request comes from a trusted proxy', async () => {
    const t = await startTestApp({ RATE_LIMIT_MAX: '2', TRUST_PROXY: '10.0.0.0/8' })
    try {
      const viaProxy = (forwarded: string) => t.app.inject({ url: PICTURE, remoteAddress: '10.1.2.3', headers: { 'x-forwarded-for': forwarded } })
      expect((await viaProxy('203.0.113.1')).statusCode).toBe(404)
      expect((await viaProxy('203.0.113.1')).statusCode).toBe(404)
      expect(problem(await viaProxy('203.0.113.1'), 429).code).toBe('rate_limited')
      // Another client behind the same proxy has its own allowance.
      expect((await viaProxy('203.0.113.2')).statusCode).toBe(404)
      // A client that is not the proxy can't name another address.
      const direct = (forwarded: string) => t.app.inject({ url: PICTURE, remoteAddress: '198.51.100.7', headers: { 'x-forwarded-for': forwarded } })
      expect((await direct('203.0.113.9')).statusCode).toBe(404)
      expect((await direct('203.0.113.8')).statusCode).toBe(404)
      expect(problem(await direct('203.0.113.7'), 429).code).toBe('rate_limited')
    } finally {
      await t.close()
    }
  })

  it('with a hop count, counts the address that many hops back', async () => {
    const t = await startTestApp({ RATE_LIMIT_MAX: '1', TRUST_PROXY: '1' })
    try {
      const viaProxy = (forwarded: string) => t.app.inject({ url: PICTURE, remoteAddress: '10.1.2.3', headers: { 'x-forwarded-for': forwarded } })
      expect((await viaProxy('192.0.2.1, 203.0.113.1')).statusCode).toBe(404)
      expect((await viaProxy('192.0.2.1, 203.0.113.2')).statusCode).toBe(404)
      expect(problem(await viaProxy('192.0.2.2, 203.0.113.2'), 429).code).toBe('rate_limited')
    } finally {
      await t.close()
    }
  })

  it('takes TRUST_PROXY as true, a hop count or a list of addresses and CIDRs, and refuses anything else by name', () => {
    expect(loadConfig({}).trustProxy).toBe(false)
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).toBe(false)
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(true)
    expect(loadConfig({ TRUST_PROXY: '2' }).trustProxy).toBe(2)
    expect(loadConfig({ TRUST_PROXY: '127.0.0.1, 10.0.0.0/8,::1,fd00::/8, loopback' }).trustProxy).toEqual(['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8', 'loopback'])
    for (const bad of ['yes please', '10.0.0.0/33', '300.1.1.1', '-1', '10.0.0.1,', 'fd00::/129']) {
      expect(() => loadConfig({ TRUST_PROXY: bad }), bad).toThrow(ConfigError)
      expect(() => loadConfig({ TRUST_PROXY: bad }), bad).toThrow(/TRUST_PROXY/)
    }
  })
})

describe('rate limits of routes with their own', () => {
  it('counts each route apart: spending /authorize\'s allowance leaves /signup\'s whole', async () => {
    const t = await startTestApp({ AUTH_RATE_LIMIT_MAX: '2' })
    try {
      const post = (url: string) => t.app.inject({ method: 'POST', url, remoteAddress: '198.51.100.20', payload: {} })
      expect((await post('/authorize')).statusCode).toBe(400)
      expect((await post('/authorize')).statusCode).toBe(400)
      expect(problem(await post('/authorize'), 429).code).toBe('rate_limited')
      expect((await post('/signup')).statusCode).toBe(400)
      expect((await post('/signup')).statusCode).toBe(400)
      expect(problem(await post('/signup'), 429).code).toBe('rate_limited')
      // Another address still has both allowances.
      expect((await t.app.inject({ method: 'POST', url: '/authorize', remoteAddress: '198.51.100.21', payload: {} })).statusCode).toBe(400)
    } finally {
      await t.close()
    }
  })

  it('still counts the global per-address limit across the routes without one of their own', async () => {
    const t = await startTestApp({ RATE_LIMIT_MAX: '3' })
    try {
      const get = (url: string) => t.app.inject({ url, remoteAddress: '198.51.100.30' })
      expect((await get(PICTURE)).statusCode).toBe(404)
      expect((await get('/docs/')).statusCode).toBe(200)
      expect((await get(PICTURE)).statusCode).toBe(404)
      expect(problem(await get('/docs/'), 429).code).toBe('rate_limited')
      expect(problem(await get(PICTURE), 429).code).toBe('rate_limited')
    } finally {
      await t.close()
    }
  })
})

describe('slow clients (HTTP_HEADERS_TIMEOUT, HTTP_REQUEST_TIMEOUT, HTTP_KEEP_ALIVE_TIMEOUT)', () => {
  let t: TestApp
  let port: number
  beforeAll(async () => {
    t = await startTestApp({ HTTP_HEADERS_TIMEOUT: '600', HTTP_REQUEST_TIMEOUT: '1000', HTTP_KEEP_ALIVE_TIMEOUT: '300' })
    await t.app.listen({ port: 0, host: '127.0.0.1' })
    port = (t.app.server.address() as AddressInfo).port
  })
  afterAll(async () => t.close())

  /**
   * Opens a socket, writes `head`, then one byte of `drip` every 50 ms; answers when the server
   * closed it (or `giveUpMs` passed) and what it answered, while /health is asked from another
   * socket every 100 ms.
   */
  async function dribble(head: string, drip: string, giveUpMs = 5000) {
    const started = Date.now()
    const socket = net.connect(port, '127.0.0.1')
    let received = ''
    socket.on('data', (chunk) => (received += String(chunk)))
    socket.on('error', () => {})
    socket.write(head)
    let sent = 0
    const dripping = setInterval(() => {
      if (!socket.destroyed && socket.writable) socket.write(drip[sent++ % drip.length]!)
    }, 50)
    const others: number[] = []
    const asking = setInterval(() => {
      void fetch(`http://127.0.0.1:${port}/health`).then((res) => others.push(res.status), () => others.push(0))
    }, 100)
    const closed = await new Promise<boolean>((resolve) => {
      socket.on('close', () => resolve(true))
      setTimeout(() => resolve(false), giveUpMs)
    })
    clearInterval(dripping)
    clearInterval(asking)
    socket.destroy()
    return { closed, afterMs: Date.now() - started, received, others }
  }

  it('refuses timeouts that contradict each other, by name', () => {
    expect(loadConfig({})).toMatchObject({ httpHeadersTimeout: 20_000, httpRequestTimeout: 120_000, httpKeepAliveTimeout: 5_000 })
    expect(() => loadConfig({ HTTP_HEADERS_TIMEOUT: '30000', HTTP_REQUEST_TIMEOUT: '10000' })).toThrow(/HTTP_HEADERS_TIMEOUT must not be longer than HTTP_REQUEST_TIMEOUT/)
    expect(() => loadConfig({ HTTP_KEEP_ALIVE_TIMEOUT: '0' })).toThrow(/HTTP_KEEP_ALIVE_TIMEOUT must be a whole number/)
  })

  it('answers 408 to a body sent a byte at a time, within the request timeout, and serves others meanwhile', async () => {
    const head = 'POST /signup HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n'
    const result = await dribble(head, '{"email":"x"}')
    expect(result.closed).toBe(true)
    expect(result.afterMs).toBeLessThan(3000)
    // Answered problem+json like every error, then closed.
    expect(result.received).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\nContent-Type: application\/problem\+json[\s\S]*"code":"request_timeout"/)
    expect(result.others.length).toBeGreaterThan(3)
    expect(result.others.every((status) => status === 200)).toBe(true)
  })

  it('closes a connection whose headers come a byte at a time, within the headers timeout', async () => {
    const result = await dribble('GET /health HTTP/1.1\r\nHost: localhost\r\n', 'X-Slow: aaaaaaaaaaaaaaaaa\r\n')
    expect(result.closed).toBe(true)
    expect(result.afterMs).toBeLessThan(2500)
    expect(result.others.every((status) => status === 200)).toBe(true)
  })

  it('closes an idle kept-alive connection after the keep-alive timeout', async () => {
    const socket = net.connect(port, '127.0.0.1')
    socket.on('error', () => {})
    let received = ''
    socket.on('data', (chunk) => (received += String(chunk)))
    const started = Date.now()
    socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n')
    const closed = await new Promise<boolean>((resolve) => {
      socket.on('close', () => resolve(true))
      setTimeout(() => resolve(false), 5000)
    })
    socket.destroy()
    expect(received).toMatch(/^HTTP\/1\.1 200/)
    expect(closed).toBe(true)
    expect(Date.now() - started).toBeLessThan(2000)
  })

  it('leaves a WebSocket open past the request and keep-alive timeouts: it is no longer a request', async () => {
    const user = await newUser(t.app)
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: user.auth })
    let closedAt: number | undefined
    ws.on('close', () => (closedAt = Date.now()))
    await new Promise((resolve, reject) => ws.on('open', resolve).on('error', reject))
    await new Promise((resolve) => setTimeout(resolve, 2500))
    expect(closedAt).toBeUndefined()
    expect(ws.readyState).toBe(WebSocket.OPEN)
    ws.close()
  })
})
