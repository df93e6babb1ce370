import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SCHEMA_FILE, SPEC_FILE, specText, typesOf } from '../client/generate.js'
import { createFreelancerClient } from '../client/index.js'
import { startTestApp, uniqueEmail, type TestApp } from './support/app.js'

let t: TestApp
let baseUrl: string
beforeAll(async () => {
  t = await startTestApp()
  await t.app.listen({ port: 0, host: '127.0.0.1' })
  const address = t.app.server.address()
  baseUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
})
afterAll(async () => t.close())

describe('the typed client', () => {
  it('is generated from the current OpenAPI document (run `npm run client:generate` after changing a route)', async () => {
    expect(await readFile(SPEC_FILE, 'utf8')).toBe(specText(t.app.swagger()))
    const current = await typesOf(t.app.swagger())
    expect(await readFile(SCHEMA_FILE, 'utf8')).toBe(current)
  })

  it('signs up, signs in and reads the user over HTTP, typed end to end', async () => {
    const anonymous = createFreelancerClient(baseUrl)
    const email = uniqueEmail('client')
    const signup = await anonymous.POST('/signup', { body: { email, password: 'a good password', first_name: 'Typed', last_name: 'Client' } })
    expect(signup.response.status).toBe(201)
    expect(signup.data?.email).toBe(email)

    const wrong = await anonymous.POST('/authorize', { body: { email, password: 'not the password' } })
    expect(wrong.response.status).toBe(401)
    expect(wrong.response.headers.get('content-type')).toContain('application/problem+json')

    const signin = await anonymous.POST('/authorize', { body: { email, password: 'a good password' } })
    const token = signin.data!.access_token
    const api = createFreelancerClient(baseUrl, token)
    const me = await api.GET('/user', { params: { query: {} } })
    expect(me.data).toMatchObject({ email, first_name: 'Typed', last_name: 'Client' })

    const out = await api.DELETE('/authorize', {})
    expect(out.response.status).toBe(204)
    expect((await api.GET('/user', { params: { query: {} } })).response.status).toBe(401)
  })
})
