import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, startTestApp, type TestApp } from './support/app.js'

// DEBUG=true (the brief's note 7): readable logs that show each SQL statement with its time,
// under the request that ran it, and never a secret.

let debug: TestApp
let quiet: TestApp
beforeAll(async () => {
  debug = await startTestApp({ DEBUG: 'true' })
  quiet = await startTestApp({ DEBUG: 'false', LOG_LEVEL: 'debug' })
})
afterAll(async () => {
  await debug.close()
  await quiet.close()
})

const lines = (t: TestApp) => t.logs.map((l) => JSON.parse(l) as Record<string, unknown>)

describe('DEBUG=true', () => {
  it('logs each SQL statement with its duration under the caller\'s request id, and no secret', async () => {
    const user = await newUser(debug.app)
    const res = await debug.app.inject({ method: 'GET', url: '/user', headers: { ...user.auth, 'x-request-id': 'trace-4711' } })
    expect(res.statusCode).toBe(200)
    expect(res.headers['x-request-id']).toBe('trace-4711')
    const sql = lines(debug).filter((l) => l.msg === 'sql')
    expect(sql.length).toBeGreaterThan(0)
    for (const line of sql) {
      expect(typeof line.sql).toBe('string')
      expect(typeof line.duration_ms).toBe('number')
    }
    // The sign-up's statements are the sign-up's: under its request id.
    expect(sql.some((l) => typeof l.request_id === 'string' && /insert into "users"/i.test(l.sql as string))).toBe(true)
    const all = debug.logs.join('\n')
    expect(all).not.toContain(user.password)
    expect(all).not.toContain(user.token)
  })

  it('is what turns them on: a debug level alone logs no SQL', async () => {
    const user = await newUser(quiet.app)
    await quiet.app.inject({ method: 'GET', url: '/user', headers: user.auth })
    expect(lines(quiet).some((l) => l.msg === 'request completed')).toBe(true)
    expect(lines(quiet).filter((l) => l.msg === 'sql')).toEqual([])
  })
})

describe('request logs', () => {
  it('name the request on every line a request writes, and give its id on every answer (a 404, a refused body, a refused token)', async () => {
    const user = await newUser(quiet.app)
    await quiet.app.inject({ method: 'GET', url: '/user', headers: { ...user.auth, 'x-request-id': 'trace-0815' } })
    // At debug level the request writes its incoming line through its own logger, then the access line.
    const mine = lines(quiet).filter((l) => l.request_id === 'trace-0815')
    expect(mine.map((l) => l.msg)).toEqual(['incoming request', 'request completed'])
    expect(mine[1]).toMatchObject({ req: { method: 'GET', url: '/user' }, res: { statusCode: 200 } })
    for (const answer of [
      await quiet.app.inject({ method: 'GET', url: '/no-such-route' }),
      await quiet.app.inject({ method: 'POST', url: '/signup', headers: { 'content-type': 'application/json' }, payload: '{"email":' }),
      await quiet.app.inject({ method: 'GET', url: '/user', headers: { authorization: 'Bearer not-a-token-we-made-ever' } }),
    ]) {
      expect(answer.statusCode).toBeGreaterThanOrEqual(400)
      expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
      expect(answer.headers['x-content-type-options']).toBe('nosniff')
      expect(lines(quiet).some((l) => l.request_id === answer.headers['x-request-id'] && l.msg === 'request completed')).toBe(true)
    }
  })
})
