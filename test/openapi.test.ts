import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { Validator } from '@seriousme/openapi-schema-validator'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, startTestApp, type TestApp } from './support/app.js'
import { CONTRACT_ROUTES } from './support/contract.js'

// The spec at /openapi.json is what clients and the /docs page read: it must be valid OpenAPI 3,
// and every operation in it must say what it does and every answer it can give, errors included.

interface Operation {
  summary?: string
  security?: unknown[]
  parameters?: unknown[]
  requestBody?: unknown
  responses: Record<string, { description?: string; content?: Record<string, { schema?: unknown }> }>
}

let t: TestApp
let spec: { openapi: string; paths: Record<string, Record<string, Operation>> }
const operations: { name: string; op: Operation }[] = []

beforeAll(async () => {
  t = await startTestApp()
  const res = await t.app.inject({ method: 'GET', url: '/openapi.json' })
  expect(res.statusCode).toBe(200)
  expect(res.headers['content-type']).toMatch(/^application\/json/)
  spec = res.json()
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) operations.push({ name: `${method.toUpperCase()} ${path}`, op })
  }
})

afterAll(async () => {
  await t?.close()
})

const errorStatuses = (op: Operation) => Object.keys(op.responses).filter((status) => Number(status) >= 400)

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3 document', async () => {
    expect(spec.openapi).toMatch(/^3\./)
    const result = await new Validator().validate(spec as unknown as Record<string, unknown>)
    expect(result.errors ?? []).toEqual([])
    expect(result.valid).toBe(true)
  })

  it('lists the routes of the contract', () => {
    const names = operations.map((o) => o.name)
    for (const route of CONTRACT_ROUTES) expect(names).toContain(route)
    // Its own address and the docs page are plumbing, not part of the API.
    expect(names.some((n) => n.includes('/openapi.json') || n.includes('/docs'))).toBe(false)
  })

  it('gives every operation a summary and a success answer', () => {
    for (const { name, op } of operations) {
      expect(op.summary?.trim(), `${name} has no summary`).toBeTruthy()
      // A WebSocket's success is 101 Switching Protocols; sending a browser on to a provider, 302.
      expect(Object.keys(op.responses).some((s) => /^(2\d\d|101|302)$/.test(s)), `${name} has no 2xx answer`).toBe(true)
    }
  })

  it('declares the errors each operation can answer, as problem+json', () => {
    for (const { name, op } of operations) {
      const errors = errorStatuses(op)
      // Any route can fail unexpectedly.
      expect(errors, `${name} does not declare 500`).toContain('500')
      // A route that needs a token answers 401 without one.
      if (op.security && op.security.length > 0) expect(errors, `${name} does not declare 401`).toContain('401')
      // A route that takes input answers 400 when it is wrong.
      if ((op.parameters?.length ?? 0) > 0 || op.requestBody) expect(errors, `${name} does not declare 400`).toContain('400')
      for (const status of errors) {
        const answer = op.responses[status]!
        expect(answer.description, `${name} ${status} has no description`).toBeTruthy()
        expect(Object.keys(answer.content ?? {}), `${name} ${status} is not problem+json`).toEqual(['application/problem+json'])
        expect(answer.content!['application/problem+json']!.schema, `${name} ${status} has no schema`).toBeTruthy()
      }
    }
  })

  it('declares 429 on the routes under the rate limit', () => {
    for (const { name, op } of operations) {
      if (name === 'GET /health') continue // never limited: load balancers poll it
      expect(errorStatuses(op), `${name} does not declare 429`).toContain('429')
    }
  })

  it('marks the authenticated routes with the bearer scheme', () => {
    const secured = operations.filter((o) => o.op.security?.length).map((o) => o.name)
    for (const route of ['GET /user', 'POST /user', 'DELETE /user', 'GET /users', 'PUT /user/picture', 'DELETE /authorize', 'GET /sessions', 'DELETE /sessions/{id}']) {
      expect(secured).toContain(route)
    }
    for (const route of ['POST /signup', 'POST /authorize', 'GET /health']) expect(secured).not.toContain(route)
  })

  it('documents the headers the answers carry: the rate limit\'s on success, Retry-After with 429', async () => {
    const user = await newUser(t.app)
    const res = await t.app.inject({ method: 'GET', url: '/user', headers: user.auth })
    const documented = (spec.paths['/user']!.get as unknown as { responses: Record<string, { headers?: Record<string, unknown> }> }).responses
    for (const header of Object.keys(documented['200']!.headers ?? {})) expect(res.headers, header).toHaveProperty(header)
    expect(Object.keys(documented['200']!.headers ?? {})).toContain('x-ratelimit-remaining')
    expect(Object.keys(documented['429']!.headers ?? {})).toEqual(['retry-after'])
  })

  it('passes Redocly\'s recommended rules with no error and no warning but the exceptions .redocly.lint-ignore.yaml explains', async () => {
    // client/openapi.json is this document (test/client.test.ts checks it is current).
    const { stdout } = await promisify(execFile)(process.execPath, ['node_modules/@redocly/cli/bin/cli.js', 'lint', 'client/openapi.json', '--format=json'], {
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      timeout: 60_000,
    })
    const report = JSON.parse(stdout) as { totals: { errors: number; warnings: number }; problems: { ruleId: string; message: string }[] }
    expect(report.problems.map((p) => `${p.ruleId}: ${p.message}`)).toEqual([])
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 })
  })

  it('gives every operation an operationId, unique', () => {
    const ids = operations.map((o) => (o.op as { operationId?: string }).operationId)
    expect(ids.every(Boolean)).toBe(true)
    expect(new Set(ids).size).toBe(ids.length)
  })
})
