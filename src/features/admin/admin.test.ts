import { sql } from 'kysely'
import { setTimeout as sleep } from 'node:timers/promises'
import { v7 as uuidv7 } from 'uuid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { newUser, problem, signIn, startTestApp, type Inject, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { newAdmin, newWorker, offerJob, paidJob } from '../../../test/support/trust.js'
import { waitUntil } from '../../../test/support/wait.js'

let t: TestApp
let admin: SignedIn
let wsUrl: string

beforeAll(async () => {
  t = await startTestApp()
  admin = await newAdmin(t.app)
  await t.app.listen({ port: 0, host: '127.0.0.1' })
  wsUrl = `ws://127.0.0.1:${(t.app.server.address() as { port: number }).port}/ws`
}, 240_000)
afterAll(async () => t.close())

const inject = (options: Inject) => t.app.inject(options)

const auditOf = async (query: string) => {
  const res = await inject({ url: `/admin/audit?${query}`, headers: admin.auth })
  expect(res.statusCode, res.body).toBe(200)
  return res.json().items as { action: string; actor_id: string; target_id: string; reason: string | null; request_id: string; address: string; details: Record<string, unknown> }[]
}

describe('roles', () => {
  it('the last admin keeps ADMIN; another can take it once there are two', async () => {
    const self = `/admin/users/${admin.id}/roles`
    expect(problem(await inject({ method: 'POST', url: self, headers: admin.auth, payload: { revoke: ['ADMIN'] } }), 409).code).toBe('last_admin')
    const other = await newUser(t.app, { roles: ['WORKER'] })
    const granted = await inject({ method: 'POST', url: `/admin/users/${other.id}/roles`, headers: admin.auth, payload: { grant: ['ADMIN'], reason: 'Joins support' } })
    expect(granted.statusCode, granted.body).toBe(200)
    expect(granted.json().roles).toEqual(['WORKER', 'ADMIN'])
    // The new admin's token works on admin routes at once.
    expect((await inject({ url: '/admin/users', headers: other.auth })).statusCode).toBe(200)
    const revoked = await inject({ method: 'POST', url: `/admin/users/${other.id}/roles`, headers: admin.auth, payload: { revoke: ['ADMIN'] } })
    expect(revoked.json().roles).toEqual(['WORKER'])
    problem(await inject({ url: '/admin/users', headers: other.auth }), 403)
    const [entry] = await auditOf(`target_id=${other.id}&action=user.roles`)
    expect(entry).toMatchObject({ actor_id: admin.id, details: { before: ['WORKER', 'ADMIN'], after: ['WORKER'] } })
  })
})

describe('an admin acting through POST /user and DELETE /user', () => {
  it('is audited in the act\'s transaction: another user\'s change, any change of roles, another user\'s deletion', async () => {
    const other = await newUser(t.app, { roles: ['CLIENT'] })
    const renamed = await inject({ method: 'POST', url: '/user', headers: admin.auth, payload: { id: other.id, first_name: 'Renamed' } })
    expect(renamed.statusCode, renamed.body).toBe(200)
    expect(await auditOf(`target_id=${other.id}`)).toMatchObject([{ action: 'user.update', actor_id: admin.id, request_id: renamed.headers['x-request-id'], address: expect.any(String), details: { fields: ['first_name'] } }])

    const granted = await inject({ method: 'POST', url: '/user', headers: admin.auth, payload: { id: other.id, roles: ['CLIENT', 'ADMIN'] } })
    expect(granted.json().roles).toEqual(['CLIENT', 'ADMIN'])
    expect((await auditOf(`target_id=${other.id}&action=user.roles`))[0]).toMatchObject({ request_id: granted.headers['x-request-id'], details: { fields: ['roles'], before: ['CLIENT'], after: ['CLIENT', 'ADMIN'] } })
    // A new admin dropping its own ADMIN is an admin's act too.
    const dropped = await inject({ method: 'POST', url: '/user', headers: other.auth, payload: { roles: ['CLIENT'] } })
    expect(dropped.json().roles).toEqual(['CLIENT'])
    expect((await auditOf(`target_id=${other.id}&action=user.roles`))[0]).toMatchObject({ actor_id: other.id, request_id: dropped.headers['x-request-id'], details: { before: ['CLIENT', 'ADMIN'], after: ['CLIENT'] } })
    // A user's own change of its roles or name is no admin's act.
    const own = await newUser(t.app, { roles: ['CLIENT'] })
    expect((await inject({ method: 'POST', url: '/user', headers: own.auth, payload: { roles: ['WORKER'], first_name: 'Own' } })).statusCode).toBe(200)
    expect(await auditOf(`target_id=${own.id}`)).toEqual([])

    const gone = await newUser(t.app)
    const deleted = await inject({ method: 'DELETE', url: `/user?id=${gone.id}`, headers: admin.auth, payload: { current_password: admin.password } })
    expect(deleted.statusCode, deleted.body).toBe(204)
    expect(await auditOf(`target_id=${gone.id}`)).toMatchObject([{ action: 'user.delete', actor_id: admin.id, request_id: deleted.headers['x-request-id'] }])
    // Refused acts leave no entry.
    const refused = await newUser(t.app)
    problem(await inject({ method: 'DELETE', url: `/user?id=${refused.id}`, headers: admin.auth, payload: { current_password: 'not the password' } }), 403)
    expect(await auditOf(`target_id=${refused.id}`)).toEqual([])
  })

  it('never leaves the service without an admin', async () => {
    const admins = (await inject({ url: '/admin/users?role=ADMIN&limit=100', headers: admin.auth })).json().items
    expect(admins.map((u: { id: string }) => u.id)).toEqual([admin.id])
    expect(problem(await inject({ method: 'POST', url: '/user', headers: admin.auth, payload: { roles: ['CLIENT'] } }), 409).code).toBe('last_admin')
    expect(problem(await inject({ method: 'DELETE', url: '/user', headers: admin.auth, payload: { current_password: admin.password } }), 409).code).toBe('last_admin')
    expect((await inject({ url: '/user', headers: admin.auth })).json().roles).toContain('ADMIN')
    expect(await auditOf(`target_id=${admin.id}&action=user.roles`)).toEqual([])
  })
})

describe('every /admin route', () => {
  it('answers 401 without a token, 403 to CLIENT and WORKER, and is audited when an ADMIN changes something', async () => {
    const client = await newUser(t.app, { roles: ['CLIENT'] })
    const worker = await newUser(t.app, { roles: ['WORKER'] })
    await t.app.platform.queue.handle('test.walk', async () => {
      throw new Error('fails on purpose')
    }, { retryLimit: 0 })
    const spec = t.app.swagger() as unknown as { paths: Record<string, Record<string, { operationId: string }>> }
    const routes = Object.entries(spec.paths)
      .filter(([path]) => path.startsWith('/admin'))
      .flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method: method.toUpperCase(), operationId: op.operationId })))
    expect(routes.length).toBeGreaterThanOrEqual(15)
    // Nothing under /admin/audit but reading it.
    expect(routes.filter((r) => r.path.startsWith('/admin/audit')).map((r) => r.method)).toEqual(['GET'])

    // What each route's {id} names, made fresh for each request.
    const fixtures: [prefix: string, make: () => Promise<string>][] = [
      ['/admin/users/', async () => (await newUser(t.app, { roles: ['CLIENT'] })).id],
      ['/admin/categories/', async () => (await inject({ method: 'POST', url: '/admin/categories', headers: admin.auth, payload: { name: `Walk ${uuidv7()}` } })).json().id],
      ['/admin/reports/', async () => {
        const [a, b] = await Promise.all([newUser(t.app), newUser(t.app)])
        return (await inject({ method: 'POST', url: '/reports', headers: a.auth, payload: { user_id: b.id, reason: 'Spam' } })).json().id
      }],
      ['/admin/reviews/', async () => {
        const c = await newUser(t.app, { roles: ['CLIENT'] })
        const w = await newWorker(t.app)
        const jobId = await paidJob(t.app, c, w)
        await inject({ method: 'POST', url: `/job/${jobId}/review`, headers: c.auth, payload: { rating: 2 } })
        return (await inject({ method: 'POST', url: `/job/${jobId}/review`, headers: w.auth, payload: { rating: 4 } })).json().id
      }],
      // A job whose client's bank disputes the charge: a dispute to answer.
      ['/admin/jobs/{id}/dispute', async () => {
        const c = await newUser(t.app, { roles: ['CLIENT'] })
        const { id } = await offerJob(t.app, c, await newWorker(t.app), { payment_method: 'pm_card_createDispute' })
        await waitUntil(async () => (await inject({ url: `/job/${id}`, headers: c.auth })).json().payment.status === 'disputed')
        return id
      }],
      // An offer whose money is held: something to read, and to refund.
      ['/admin/jobs/', async () => (await offerJob(t.app, await newUser(t.app, { roles: ['CLIENT'] }), await newWorker(t.app))).id],
      // A task that failed every try: something to retry.
      ['/admin/tasks/', async () => {
        const id = (await t.app.platform.queue.add(t.app.platform.database.db, 'test.walk', {}))!
        await waitUntil(async () => (await t.app.platform.queue.failed({ limit: 100 })).some((f) => f.id === id))
        return id
      }],
    ]
    const bodies: Record<string, unknown> = {
      createCategory: { name: `Walked ${uuidv7()}` },
      updateCategory: { name: `Renamed ${uuidv7()}` },
      setUserRoles: { grant: ['WORKER'], reason: 'walk' },
      resolveReport: { action: 'dismiss', reason: 'walk' },
      suspendUser: { reason: 'walk' },
      hideReview: { reason: 'walk' },
      answerJobDispute: { evidence: 'winning_evidence' },
    }
    const url = async (path: string) => {
      if (!path.includes('{id}')) return path
      const fixture = fixtures.find(([prefix]) => path.startsWith(prefix))
      if (!fixture) throw new Error(`no fixture for ${path}: add one to this test`)
      return path.replace('{id}', await fixture[1]())
    }

    for (const route of routes) {
      const mutating = route.method !== 'GET'
      const payload = mutating ? (bodies[route.operationId] ?? { reason: 'walk' }) : undefined
      const target = await url(route.path)
      const ask = (headers: Record<string, string>) => inject({ method: route.method as Inject['method'], url: target, headers, ...(payload !== undefined ? { payload: payload as object } : {}) })
      expect(problem(await ask({}), 401).code, `${route.method} ${route.path}`).toBe('unauthenticated')
      expect(problem(await ask(client.auth), 403).code, `${route.method} ${route.path} as CLIENT`).toBe('not_an_admin')
      expect(problem(await ask(worker.auth), 403).code, `${route.method} ${route.path} as WORKER`).toBe('not_an_admin')
      const answer = await ask(admin.auth)
      const label = `${route.method} ${route.path} as ADMIN: ${answer.body}`
      expect(answer.statusCode, label).toBeLessThan(300)
      if (!mutating) continue
      const entries = (await auditOf('limit=100')).filter((e) => e.request_id === answer.headers['x-request-id'])
      expect(entries.length, `${label} left no audit entry`).toBeGreaterThanOrEqual(1)
      for (const entry of entries) expect(entry).toMatchObject({ actor_id: admin.id, address: expect.any(String) })
    }
  })
})

describe('suspension', () => {
  it('ends the sessions and sockets at once, refuses sign-in, takes the user off the map and cancels its open offers', async () => {
    const worker = await newWorker(t.app, 'Sven')
    const client = await newUser(t.app, { roles: ['CLIENT'], first_name: 'Clara' })
    const offer = await offerJob(t.app, client, worker)
    expect((await inject({ method: 'POST', url: '/location', headers: worker.auth, payload: { lat: 52.52, lon: 13.405, ttl: 600 } })).statusCode).toBe(200)
    const search = async () => (await inject({ url: '/search?lat=52.52&lon=13.405&radius=5000&role=WORKER', headers: client.auth })).json().items.map((i: { user: { id: string } }) => i.user.id)
    expect(await search()).toContain(worker.id)
    const ws = new WebSocket(wsUrl, { headers: worker.auth })
    let closedAt: number | undefined
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => {
      closedAt = performance.now()
      resolve(code)
    }))
    await new Promise((resolve, reject) => ws.on('open', resolve).on('error', reject))

    const res = await inject({ method: 'POST', url: `/admin/users/${worker.id}/suspend`, headers: admin.auth, payload: { reason: 'Fake reviews' } })
    const answeredAt = performance.now()
    expect(res.statusCode, res.body).toBe(200)
    expect(res.json()).toMatchObject({ id: worker.id, status: 'suspended', suspended_reason: 'Fake reviews', email: worker.email })

    problem(await inject({ url: '/user', headers: worker.auth }), 401)
    expect(await closed).toBe(4401)
    expect(closedAt! - answeredAt).toBeLessThan(1000)
    // Sign-in: 403 with the password, the usual 401 without.
    const signInAnswer = await inject({ method: 'POST', url: '/authorize', payload: { email: worker.email, password: worker.password } })
    expect(problem(signInAnswer, 403).code).toBe('account_suspended')
    expect(problem(await inject({ method: 'POST', url: '/authorize', payload: { email: worker.email, password: 'wrong password!' } }), 401).code).toBe('invalid_credentials')
    expect(await search()).not.toContain(worker.id)
    expect(problem(await inject({ url: `/users/${worker.id}` }), 404).code).toBe('user_not_found')

    const job = (await inject({ url: `/job/${offer.id}`, headers: client.auth })).json()
    expect(job.status).toBe('CANCELED')
    expect(job.status_log.at(-1)).toMatchObject({ status: 'CANCELED', reason: 'The account was suspended' })
    const inbox = (await inject({ url: '/inbox?limit=50', headers: client.auth })).json().items
    expect(inbox.some((m: { kind: string; job_id: string; text: string }) => m.kind === 'system' && m.job_id === offer.id && /cancel/i.test(m.text))).toBe(true)

    const [entry] = await auditOf(`target_id=${worker.id}&action=user.suspend`)
    expect(entry).toMatchObject({ reason: 'Fake reviews', details: { canceled_jobs: [offer.id] }, request_id: res.headers['x-request-id'] })

    const listed = await inject({ url: '/admin/users?status=suspended&limit=100', headers: admin.auth })
    expect(listed.json().items.map((u: { id: string }) => u.id)).toContain(worker.id)
    expect(problem(await inject({ method: 'POST', url: `/admin/users/${admin.id}/suspend`, headers: admin.auth, payload: { reason: 'x' } }), 409).code).toBe('admin_self')

    const restored = await inject({ method: 'POST', url: `/admin/users/${worker.id}/restore`, headers: admin.auth, payload: { reason: 'Appeal granted' } })
    expect(restored.json().status).toBe('active')
    expect(await signIn(t.app, worker.email, worker.password)).toEqual(expect.any(String))
    ws.terminate()
    await sleep(0)
  })

  it('acting on a report can suspend the user reported', async () => {
    const [reporter, rude] = await Promise.all([newUser(t.app), newUser(t.app, { first_name: 'Rude' })])
    const report = (await inject({ method: 'POST', url: '/reports', headers: reporter.auth, payload: { user_id: rude.id, reason: 'Threats' } })).json()
    const open = (await inject({ url: '/admin/reports?limit=100', headers: admin.auth })).json().items.find((r: { id: string }) => r.id === report.id)
    expect(open).toMatchObject({ reason: 'Threats', user: { id: rude.id, email: rude.email }, reporter: { id: reporter.id }, resolved_at: null })
    expect(problem(await inject({ method: 'POST', url: `/admin/reports/${report.id}/resolve`, headers: admin.auth, payload: { action: 'hide', reason: 'x' } }), 409).code).toBe('action_not_applicable')
    expect((await inject({ method: 'POST', url: `/admin/reports/${report.id}/resolve`, headers: admin.auth, payload: { action: 'suspend', reason: 'Threats confirmed' } })).statusCode).toBe(204)
    problem(await inject({ url: '/user', headers: rude.auth }), 401)
    const resolved = (await inject({ url: '/admin/reports?status=resolved&limit=100', headers: admin.auth })).json().items.find((r: { id: string }) => r.id === report.id)
    expect(resolved).toMatchObject({ resolution: 'suspend', user: { status: 'suspended' } })
    const actions = (await auditOf(`limit=100`)).filter((e) => e.target_id === report.id || e.target_id === rude.id).map((e) => e.action)
    expect(actions).toEqual(expect.arrayContaining(['report.suspend', 'user.suspend']))
  })
})

describe('users, jobs and the audit log', () => {
  it('lists and searches users with filters and cursors', async () => {
    const marker = `Zed${Date.now()}`
    const made = []
    for (let i = 0; i < 3; i++) made.push(await newUser(t.app, { roles: ['WORKER'], first_name: marker }))
    const pages = []
    let cursor: string | null = null
    do {
      const res = await inject({ url: `/admin/users?q=${marker.toLowerCase()}&role=WORKER&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, headers: admin.auth })
      expect(res.statusCode, res.body).toBe(200)
      pages.push(...res.json().items)
      cursor = res.json().next_cursor
    } while (cursor)
    expect(pages.map((u) => u.id)).toEqual(made.map((u) => u.id))
    // By email too, and by time.
    const byEmail = (await inject({ url: `/admin/users?q=${encodeURIComponent(made[0]!.email)}`, headers: admin.auth })).json().items
    expect(byEmail.map((u: { id: string }) => u.id)).toEqual([made[0]!.id])
    const future = new Date(Date.now() + 3_600_000).toISOString()
    expect((await inject({ url: `/admin/users?created_from=${future}`, headers: admin.auth })).json().items).toEqual([])
    expect(problem(await inject({ url: '/admin/users?cursor=nope', headers: admin.auth }), 400).code).toBe('invalid_cursor')
  })

  it('deletes a user, audited', async () => {
    const gone = await newUser(t.app)
    const res = await inject({ method: 'DELETE', url: `/admin/users/${gone.id}`, headers: admin.auth, payload: { reason: 'GDPR request' } })
    expect(res.statusCode, res.body).toBe(204)
    problem(await inject({ url: '/user', headers: gone.auth }), 401)
    expect(problem(await inject({ url: `/admin/users/${gone.id}`, headers: admin.auth }), 404).code).toBe('user_not_found')
    expect((await auditOf(`target_id=${gone.id}`))[0]).toMatchObject({ action: 'user.delete', reason: 'GDPR request' })
  })

  it('shows any job with its status log, messages and ledger', async () => {
    const client = await newUser(t.app, { roles: ['CLIENT'] })
    const worker = await newWorker(t.app)
    const jobId = await paidJob(t.app, client, worker)
    const res = await inject({ url: `/admin/jobs/${jobId}`, headers: admin.auth })
    expect(res.statusCode, res.body).toBe(200)
    const { job, messages, ledger } = res.json() as { job: { status_log: { status: string }[] }; messages: unknown[]; ledger: { kind: string; currency: string; entries: { account: string; amount: number }[] }[] }
    expect(job.status_log.map((e) => e.status)).toEqual(['REQUESTED', 'ACCEPTED', 'STARTED', 'COMPLETED', 'PENDING_PAYMENT', 'PAID'])
    expect(messages.length).toBeGreaterThan(0)
    // The client's €25.00 charged into escrow, then the worker's share and the platform's fee moved out of it.
    expect(ledger.map((m) => m.kind).sort()).toEqual(['charge', 'transfer'])
    for (const movement of ledger) {
      expect(movement.currency).toBe('EUR')
      expect(movement.entries.length).toBeGreaterThanOrEqual(2)
      expect(movement.entries.reduce((sum, e) => sum + e.amount, 0), `${movement.kind} sums to zero`).toBe(0)
    }
    const charge = ledger.find((m) => m.kind === 'charge')
    const transfer = ledger.find((m) => m.kind === 'transfer')
    expect(charge!.entries.map((e) => Math.abs(e.amount))).toEqual([2500, 2500])
    // Escrow is empty once the job is paid.
    const escrow = ledger.flatMap((m) => m.entries).filter((e) => e.account.startsWith('escrow:'))
    expect(escrow.length).toBeGreaterThan(0)
    expect(escrow.reduce((sum, e) => sum + e.amount, 0)).toBe(0)
    expect(transfer!.entries.some((e) => e.account.includes(worker.id) && Math.abs(e.amount) === 2250)).toBe(true)
    expect(problem(await inject({ url: `/admin/jobs/${uuidv7()}`, headers: admin.auth }), 404).code).toBe('job_not_found')
  })

  it('is append-only: the database refuses to change or delete an entry', async () => {
    const db = t.app.platform.database.db
    await expect(sql`UPDATE audit_log SET reason = 'rewritten'`.execute(db)).rejects.toThrow(/append-only/)
    await expect(sql`DELETE FROM audit_log`.execute(db)).rejects.toThrow(/append-only/)
    const all = await auditOf('limit=100')
    expect(all.length).toBeGreaterThan(0)
    expect(all.every((e) => e.reason !== 'rewritten')).toBe(true)
    // Filters and cursors.
    const first = await inject({ url: `/admin/audit?actor_id=${admin.id}&limit=2`, headers: admin.auth })
    const next = await inject({ url: `/admin/audit?actor_id=${admin.id}&limit=2&cursor=${encodeURIComponent(first.json().next_cursor)}`, headers: admin.auth })
    expect(next.statusCode).toBe(200)
    const ids = [...first.json().items, ...next.json().items].map((e: { id: string }) => e.id)
    expect(new Set(ids).size).toBe(4)
    expect((await auditOf('action=category.create')).every((e) => e.action === 'category.create')).toBe(true)
  })
})
