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
