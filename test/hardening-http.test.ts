import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../src/config.js'
import { problem, startTestApp } from './support/app.js'

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
