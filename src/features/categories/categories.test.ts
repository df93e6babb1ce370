import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, problem, startTestApp, type Inject, type SignedIn, type TestApp } from '../../../test/support/app.js'

let t: TestApp
let admin: SignedIn

beforeAll(async () => {
  t = await startTestApp()
  admin = await newUser(t.app, { roles: ['CLIENT'], first_name: 'Ada', last_name: 'Admin' })
  await t.app.accounts.setAdmin(admin.email, true)
}, 240_000)
afterAll(async () => t.close())

const inject = (options: Inject) => t.app.inject(options)

async function create(body: Record<string, unknown>) {
  const res = await inject({ method: 'POST', url: '/admin/categories', headers: admin.auth, payload: body })
  expect(res.statusCode, res.body).toBe(201)
  return res.json()
}

const tree = async () => {
  const res = await inject({ url: '/categories' })
  expect(res.statusCode, res.body).toBe(200)
  return { body: res.json(), etag: String(res.headers.etag) }
}

describe('categories', () => {
  it('admins build a tree of two levels that anyone reads, with an ETag that changes with it', async () => {
    const before = await tree()
    expect((await inject({ url: '/categories', headers: { 'if-none-match': before.etag } })).statusCode).toBe(304)
    const plumbing = await create({ name: 'Plumbing' })
    const leaks = await create({ name: 'Leaks', parent_id: plumbing.id })
    const boilers = await create({ name: 'Boilers', parent_id: plumbing.id, position: 0 })
    expect(leaks).toMatchObject({ parent_id: plumbing.id, name: 'Leaks', retired_at: null })
    // Two levels only: a subcategory takes no children.
    expect(problem(await inject({ method: 'POST', url: '/admin/categories', headers: admin.auth, payload: { name: 'Drips', parent_id: leaks.id } }), 409).code).toBe('category_depth')
    // Siblings' names are unique, any case.
    expect(problem(await inject({ method: 'POST', url: '/admin/categories', headers: admin.auth, payload: { name: 'leaks', parent_id: plumbing.id } }), 409).code).toBe('category_name_taken')

    const after = await tree()
    expect(after.etag).not.toBe(before.etag)
    expect(String((await inject({ url: '/categories' })).headers['cache-control'])).toContain('max-age')
    const node = after.body.items.find((c: { id: string }) => c.id === plumbing.id)
    expect(node.children.map((c: { name: string }) => c.name)).toEqual(['Boilers', 'Leaks'])
    expect(boilers.position).toBe(0)

    // Rename and reorder.
    const renamed = await inject({ method: 'PATCH', url: `/admin/categories/${leaks.id}`, headers: admin.auth, payload: { name: 'Leaks and drips', position: 0 } })
    expect(renamed.statusCode, renamed.body).toBe(200)
    const reordered = await inject({ method: 'PATCH', url: `/admin/categories/${boilers.id}`, headers: admin.auth, payload: { position: 5 } })
    expect(reordered.statusCode).toBe(200)
    const again = (await tree()).body.items.find((c: { id: string }) => c.id === plumbing.id)
    expect(again.children.map((c: { name: string }) => c.name)).toEqual(['Leaks and drips', 'Boilers'])
    expect(problem(await inject({ method: 'PATCH', url: `/admin/categories/${plumbing.id}`, headers: admin.auth, payload: { parent_id: boilers.id } }), 409).code).toBe('category_depth')
  })

  it('a retired category leaves the tree and new jobs and profiles, and stays where it was', async () => {
    const gardening = await create({ name: `Gardening ${Date.now()}` })
    const hedges = await create({ name: 'Hedges', parent_id: gardening.id })
    const worker = await newUser(t.app, { roles: ['WORKER'] })
    const client = await newUser(t.app, { roles: ['CLIENT'] })
    const set = await inject({ method: 'POST', url: '/user/profile', headers: worker.auth, payload: { category_ids: [hedges.id] } })
    expect(set.statusCode, set.body).toBe(200)
    const job = await inject({ method: 'POST', url: '/job', headers: client.auth, payload: { worker_id: worker.id, title: 'Trim the hedge', category_id: hedges.id } })
    expect(job.statusCode, job.body).toBe(201)
    expect(job.json().category_id).toBe(hedges.id)

    const retired = await inject({ method: 'DELETE', url: `/admin/categories/${gardening.id}`, headers: admin.auth, payload: { reason: 'Merged into Outdoors' } })
    expect(retired.statusCode, retired.body).toBe(200)
    expect(retired.json().retired_at).not.toBeNull()
    const ids = JSON.stringify((await tree()).body)
    expect(ids).not.toContain(gardening.id)
    expect(ids).not.toContain(hedges.id)

    // Old job and profile keep it; new ones can't take it.
    expect((await inject({ url: `/job/${job.json().id}`, headers: client.auth })).json().category_id).toBe(hedges.id)
    const profile = (await inject({ url: `/users/${worker.id}` })).json().profile
    expect(profile.categories).toEqual([{ id: hedges.id, name: 'Hedges', retired: true }])
    expect(problem(await inject({ method: 'POST', url: '/job', headers: client.auth, payload: { worker_id: worker.id, title: 'Again', category_id: hedges.id } }), 409).code).toBe('category_retired')
    const other = await newUser(t.app, { roles: ['WORKER'] })
    expect(problem(await inject({ method: 'POST', url: '/user/profile', headers: other.auth, payload: { category_ids: [hedges.id] } }), 409).code).toBe('category_retired')
    // The worker who has it keeps it when editing.
    expect((await inject({ method: 'POST', url: '/user/profile', headers: worker.auth, payload: { category_ids: [hedges.id], bio: 'Still here' } })).statusCode).toBe(200)
    // Unknown ids are 400.
    expect(problem(await inject({ method: 'POST', url: '/job', headers: client.auth, payload: { worker_id: worker.id, title: 'X', category_id: '01938d0e-0000-7000-8000-00000000abcd' } }), 400).code).toBe('category_not_found')
  })

  it('every category change is in the audit log', async () => {
    const res = await inject({ url: '/admin/audit?limit=100', headers: admin.auth })
    expect(res.statusCode).toBe(200)
    const actions = res.json().items.map((e: { action: string }) => e.action)
    expect(actions).toEqual(expect.arrayContaining(['category.create', 'category.update', 'category.retire']))
    const retire = res.json().items.find((e: { action: string }) => e.action === 'category.retire')
    expect(retire).toMatchObject({ actor_id: admin.id, target_type: 'category', reason: 'Merged into Outdoors', request_id: expect.any(String), address: expect.any(String) })
  })
})

describe('worker profiles', () => {
  it('are validated, and shown publicly with the rating and jobs done, never the email', async () => {
    const worker = await newUser(t.app, { roles: ['WORKER'], first_name: 'Wanda' })
    const bad = async (payload: Record<string, unknown>, status: number) => problem(await inject({ method: 'POST', url: '/user/profile', headers: worker.auth, payload }), status)
    expect((await bad({ bio: 'x'.repeat(2001) }, 400)).code).toBe('invalid_input')
    expect((await bad({ languages: ['en_US'] }, 400)).code).toBe('invalid_language')
    expect((await bad({ languages: ['not a tag'] }, 400)).code).toBe('invalid_language')
    expect((await bad({ hourly_rate: { amount: 100, currency: 'XYZ' } }, 400)).code).toBe('unknown_currency')
    expect((await bad({ hourly_rate: { amount: 1.5, currency: 'EUR' } }, 400)).code).toBe('invalid_input')
    expect((await bad({ service_radius_m: -1 }, 400)).code).toBe('invalid_input')

    const ok = await inject({ method: 'POST', url: '/user/profile', headers: worker.auth, payload: { bio: 'Plumber.', hourly_rate: { amount: 4500, currency: 'EUR' }, service_radius_m: 10_000, languages: ['EN-gb', 'fr', 'fr'] } })
    expect(ok.statusCode, ok.body).toBe(200)
    expect(ok.json()).toMatchObject({ bio: 'Plumber.', hourly_rate: { amount: 4500, currency: 'EUR' }, service_radius_m: 10_000, languages: ['en-GB', 'fr'] })
    // Partial: what is not named stays.
    const partial = await inject({ method: 'POST', url: '/user/profile', headers: worker.auth, payload: { service_radius_m: null } })
    expect(partial.json()).toMatchObject({ bio: 'Plumber.', service_radius_m: null })

    const shown = await inject({ url: `/users/${worker.id}` })
    expect(shown.statusCode).toBe(200)
    expect(shown.json()).toMatchObject({ user: { id: worker.id, first_name: 'Wanda' }, profile: { bio: 'Plumber.' }, rating: { average: null, count: 0 }, jobs_done: 0 })
    expect(shown.body).not.toContain(worker.email)
    expect(shown.json().user.email).toBeUndefined()

    const client = await newUser(t.app, { roles: ['CLIENT'] })
    expect(problem(await inject({ method: 'POST', url: '/user/profile', headers: client.auth, payload: { bio: 'hi' } }), 403).code).toBe('forbidden')
    expect((await inject({ url: `/users/${client.id}` })).json().profile).toBeNull()
    expect(problem(await inject({ url: '/users/01938d0e-0000-7000-8000-00000000abcd' }), 404).code).toBe('user_not_found')
  })
})
