import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, problem, startTestApp, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { waitUntil } from '../../../test/support/wait.js'

// Dead letters as an admin sees them: a task that failed all its retries is listed with its error,
// and put back in line it runs again. Nobody else sees them.

let t: TestApp
let admin: SignedIn
let user: SignedIn

beforeAll(async () => {
  t = await startTestApp()
  admin = await newUser(t.app)
  await t.app.accounts.setAdmin(admin.email, true)
  user = await newUser(t.app)
})
afterAll(async () => t?.close())

describe('failed background tasks', () => {
  it('are listed to admins with their last error, page by page, and run again when an admin retries one', async () => {
    const queue = t.app.platform.queue
    let mended = false
    const ran: string[] = []
    await queue.handle<{ n: number }>('test.mail', async (task) => {
      if (!mended) throw new Error(`the mail server refused mail ${task.data.n}`)
      ran.push(String(task.data.n))
    }, { retryLimit: 0 })
    const ids: string[] = []
    for (const n of [1, 2, 3]) ids.push((await queue.add(t.app.platform.database.db, 'test.mail', { n }))!)

    const list = (query = '', limit = 2) => t.app.inject({ method: 'GET', url: `/admin/tasks/failed?limit=${limit}${query}`, headers: admin.auth })
    await waitUntil(async () => (await list()).json().items.length === 2)
    await waitUntil(async () => {
      const first = (await list()).json()
      return first.next_cursor !== null && (await list(`&cursor=${first.next_cursor}`)).json().items.length === 1
    })
    const first = (await list()).json()
    const second = (await list(`&cursor=${first.next_cursor}`)).json()
    const listed = [...first.items, ...second.items]
    expect(listed.map((i: { id: string }) => i.id).sort()).toEqual([...ids].sort())
    expect(second.next_cursor).toBeNull()
    expect(listed.find((i: { id: string }) => i.id === ids[1])).toMatchObject({ name: 'test.mail', data: { n: 2 }, retries: 0, error: 'the mail server refused mail 2' })

    mended = true
    const retried = await t.app.inject({ method: 'POST', url: `/admin/tasks/${ids[1]}/retry`, headers: admin.auth })
    expect(retried.statusCode).toBe(204)
    // Audited with the retry, in its transaction.
    const audit = (await t.app.inject({ url: `/admin/audit?action=task.retry&target_id=${ids[1]}`, headers: admin.auth })).json().items
    expect(audit).toMatchObject([{ actor_id: admin.id, target_type: 'task', target_id: ids[1], request_id: retried.headers['x-request-id'] }])
    await waitUntil(() => ran.length === 1)
    expect(ran).toEqual(['2'])
    await waitUntil(async () => (await list('', 10)).json().items.length === 2)
    problem(await t.app.inject({ method: 'POST', url: `/admin/tasks/${ids[1]}/retry`, headers: admin.auth }), 404)
    // A retry that found nothing changed nothing, and left no entry.
    expect((await t.app.inject({ url: `/admin/audit?action=task.retry&target_id=${ids[1]}`, headers: admin.auth })).json().items).toHaveLength(1)
  })

  it('are an admin\'s only: anyone else gets 403, and a garbage cursor is a 400', async () => {
    const id = '0190f3c4-0000-7000-8000-000000000001'
    expect(problem(await t.app.inject({ method: 'GET', url: '/admin/tasks/failed', headers: user.auth }), 403).code).toBe('not_an_admin')
    expect(problem(await t.app.inject({ method: 'POST', url: `/admin/tasks/${id}/retry`, headers: user.auth }), 403).code).toBe('not_an_admin')
    problem(await t.app.inject({ method: 'GET', url: '/admin/tasks/failed' }), 401)
    problem(await t.app.inject({ method: 'GET', url: '/admin/tasks/failed?cursor=nonsense', headers: admin.auth }), 400)
    // A well-formed cursor holding a time no Date can hold (a leap second) is a 400 too, not a 500.
    const leap = Buffer.from(JSON.stringify({ at: '2020-01-01T23:59:60Z', id })).toString('base64url')
    expect(problem(await t.app.inject({ method: 'GET', url: `/admin/tasks/failed?cursor=${leap}`, headers: admin.auth }), 400).code).toBe('invalid_cursor')
  })
})
