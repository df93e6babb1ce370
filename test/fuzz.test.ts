import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, startTestApp, type SignedIn, type TestApp } from './support/app.js'

// Whatever a client sends, the answer is never a 500: every operation in the OpenAPI document
// gets random bodies, query strings and path parameters, signed in, and must answer below 500
// (bad input is the client's problem, and says so).

let t: TestApp
let user: SignedIn
let operations: { method: string; path: string }[]

beforeAll(async () => {
  t = await startTestApp({ JOB_SWEEP_INTERVAL: '0' })
  user = await newUser(t.app, { roles: ['CLIENT', 'WORKER'] })
  const spec = t.app.swagger() as { paths: Record<string, Record<string, unknown>> }
  operations = Object.entries(spec.paths).flatMap(([path, methods]) =>
    Object.keys(methods)
      .filter((m) => ['get', 'post', 'put', 'delete', 'patch'].includes(m))
      .map((method) => ({ method: method.toUpperCase(), path })),
  )
    // These end the caller's session, after which everything else would only see 401.
    .filter((op) => !(op.method === 'DELETE' && (op.path === '/authorize' || op.path === '/user' || op.path === '/sessions')))
})
afterAll(async () => t.close())

const value = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.double(),
  fc.constantFrom('Infinity', 'NaN', '-1', '0', '1e309', 'null', '', ' ', '\u0000', '../..', '0190f3c4-0000-7000-8000-000000000000'),
  fc.boolean(),
  fc.constant(null),
)
const body = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.dictionary(fc.constantFrom('id', 'to', 'text', 'email', 'password', 'lat', 'lon', 'ttl', 'radius', 'status', 'price', 'worker_id', 'title', 'up_to', 'user_id', 'reason', 'roles', 'location', 'expires_in'), value))
const query = fc.dictionary(fc.constantFrom('id', 'q', 'role', 'limit', 'cursor', 'lat', 'lon', 'radius', 'with', 'status', 'since', 'ticket'), fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('-5', '1e3', 'abc', '999999999999', 'WORKER', 'eyJ4IjoxfQ')))

describe('random input', () => {
  it('never gets a 500 from any operation', async () => {
    expect(operations.length).toBeGreaterThan(20)
    const statuses = new Map<number, number>()
    for (const op of operations) {
      await fc.assert(
        fc.asyncProperty(body, query, fc.string({ maxLength: 40 }), async (payload, q, param) => {
          const url = op.path.replace(/\{[^}]+\}/g, encodeURIComponent(param) || 'x') + '?' + new URLSearchParams(q).toString()
          const res = await t.app.inject({
            method: op.method as 'GET',
            url,
            headers: user.auth,
            ...(op.method === 'GET' || op.method === 'DELETE' ? {} : { payload: payload as object }),
          })
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
          if (res.statusCode >= 500) throw new Error(`${op.method} ${url} with ${JSON.stringify(payload)} answered ${res.statusCode}: ${res.body}`)
        }),
        { numRuns: 25 },
      )
    }
    // Still signed in at the end, so the input reached the routes past authentication.
    expect((await t.app.inject({ url: '/user', headers: user.auth })).statusCode).toBe(200)
    expect(statuses.get(401) ?? 0).toBeLessThan(50)
    expect(statuses.get(400)).toBeGreaterThan(100)
  })
})
