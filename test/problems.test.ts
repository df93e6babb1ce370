import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PROBLEM_CODES } from '../src/problem-codes.js'
import { newUser, problem, startTestApp, type SignedIn, type TestApp } from './support/app.js'

// A refused input tells the client what the field may be, once, and where it is.

let t: TestApp
let client: SignedIn
beforeAll(async () => {
  t = await startTestApp()
  client = await newUser(t.app, { roles: ['CLIENT'] })
})
afterAll(() => t.close())

const signup = (extra: Record<string, unknown>) =>
  t.app.inject({ method: 'POST', url: '/signup', payload: { email: 'new@example.com', password: 'a good password', first_name: 'N', last_name: 'U', ...extra } })

describe('validation problems', () => {
  it('name the allowed values of a field that takes one of a set, in one error with its JSON pointer', async () => {
    const refused = problem(await signup({ roles: ['CLIENT', 'BOSS'] }), 400)
    expect(refused.detail).toBe('Invalid body: body/roles/1 must be one of: "CLIENT", "WORKER"')
    expect(refused.errors).toEqual([{ field: 'body/roles/1', in: 'body', pointer: '/roles/1', message: 'must be one of: "CLIENT", "WORKER"', allowed: ['CLIENT', 'WORKER'] }])

    const query = problem(await t.app.inject({ method: 'GET', url: '/jobs?role=BOSS', headers: client.auth }), 400)
    expect(query.errors).toEqual([{ field: 'querystring/role', in: 'querystring', pointer: '/role', message: 'must be one of: "CLIENT", "WORKER"', allowed: ['CLIENT', 'WORKER'] }])
  })

  it('tell a value-or-null field by what the value broke, not one line per alternative', async () => {
    const worker = await newUser(t.app, { roles: ['WORKER'] })
    const offer = { worker_id: worker.id, title: 'Fix the sink' }
    const wrongType = problem(await t.app.inject({ method: 'POST', url: '/job', headers: client.auth, payload: { ...offer, price: 'cheap' } }), 400)
    expect(wrongType.errors).toEqual([{ field: 'body/price', in: 'body', pointer: '/price', message: 'must be an object or null' }])
    const tooLow = problem(await t.app.inject({ method: 'POST', url: '/job', headers: client.auth, payload: { ...offer, price: { amount: 0, currency: 'EUR' } } }), 400)
    expect(tooLow.errors).toEqual([{ field: 'body/price/amount', in: 'body', pointer: '/price/amount', message: 'must be >= 1' }])
  })

  it('say which field is missing and which is unknown', async () => {
    const missing = problem(await t.app.inject({ method: 'POST', url: '/signup', payload: { password: 'a good password', first_name: 'N', last_name: 'U' } }), 400)
    expect(missing.errors).toEqual([{ field: 'body/email', in: 'body', pointer: '/email', message: 'is required' }])
    const unknown = problem(await signup({ is_admin: true }), 400)
    expect(unknown.errors).toEqual([{ field: 'body/is_admin', in: 'body', pointer: '/is_admin', message: 'is not a known field' }])
  })
})

describe('problem codes', () => {
  it('are one documented list: the OpenAPI Problem schema names each with its meaning, and answers use no other', async () => {
    const spec = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { components: { schemas: Record<string, { properties: Record<string, { enum?: string[]; description?: string }> }> } }
    const code = spec.components.schemas.Problem!.properties.code!
    expect(code.enum).toEqual(Object.keys(PROBLEM_CODES))
    for (const [name, meaning] of Object.entries(PROBLEM_CODES)) expect(code.description).toContain(`\`${name}\`: ${meaning}`)
    // Answers Fastify itself makes (no route, a wrong method, a malformed body) use the list too.
    const answers = [
      await t.app.inject({ method: 'GET', url: '/no-such-route' }),
      await t.app.inject({ method: 'POST', url: '/signup', headers: { 'content-type': 'application/json' }, payload: '{"email":' }),
      await t.app.inject({ method: 'POST', url: '/signup', headers: { 'content-type': 'text/plain' }, payload: 'hello' }),
      await t.app.inject({ method: 'GET', url: '/user' }),
    ]
    for (const answer of answers) expect(Object.keys(PROBLEM_CODES)).toContain(answer.json().code)
  })
})

describe('a multipart body', () => {
  it('is refused 415 by every route but the picture upload, which alone reads multipart', async () => {
    const body = '--x\r\nContent-Disposition: form-data; name="email"\r\n\r\na@example.com\r\n--x--\r\n'
    const answer = await t.app.inject({ method: 'POST', url: '/signup', headers: { 'content-type': 'multipart/form-data; boundary=x' }, payload: body })
    expect(problem(answer, 415).code).toBe('unsupported_media_type')
  })
})

describe('a missing or malformed Authorization header', () => {
  it('is answered 401 with what to send instead', async () => {
    const detail = async (authorization?: string) =>
      problem(await t.app.inject({ method: 'GET', url: '/user', headers: authorization === undefined ? {} : { authorization } }), 401).detail
    const expected = 'send `Authorization: Bearer <access_token>`, the access_token that POST /authorize answers'
    expect(await detail()).toBe(`Sign in first: ${expected}`)
    expect(await detail('Token abc')).toBe(`The Authorization header uses the "Token" scheme: ${expected}`)
    expect(await detail('Bearer')).toBe(`The Authorization header has no token after "Bearer": ${expected}`)
    expect(await detail('Bearer two tokens')).toContain('is not "Bearer" and one token')
    expect(await detail(`Bearer ${'x'.repeat(43)}`)).toBe('The access token is unknown or has expired: sign in again (POST /authorize)')
  })
})
