import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { manualClock } from '../src/platform/clock.js'
import { newUser, startTestApp, type TestApp } from './support/app.js'

// Every time a feature stamps on what it stores comes from the app's clock, not the wall clock of
// the process or of the database: a clock that stands still shows on every one of them.

// An hour ahead of the wall clock, on a whole second: the stores' own expiry (the wall clock's)
// leaves everything stamped with it alive.
const start = new Date(Math.floor(Date.now() / 1000) * 1000 + 3_600_000)
const clock = manualClock(start)
let t: TestApp

beforeAll(async () => {
  t = await startTestApp({}, { clock })
})
afterAll(async () => t?.close())

describe('the app clock', () => {
  it('stamps sessions, messages, read marks, blocks and reports with its own time', async () => {
    const [alice, bob] = [await newUser(t.app), await newUser(t.app)]
    const at = (ms: number) => clock.advance(ms).toISOString()
    const get = (user: typeof alice, url: string) => t.app.inject({ method: 'GET', url, headers: user.auth })
    const post = (user: typeof alice, url: string, payload: object) => t.app.inject({ method: 'POST', url, headers: user.auth, payload })

    expect((await get(alice, '/user')).json().created_at).toBe(start.toISOString())
    const [signedIn] = (await get(alice, '/sessions')).json().items
    expect(signedIn).toMatchObject({ created_at: start.toISOString(), last_used_at: start.toISOString() })

    // Used again later (past the step by which a session's renewal is written).
    const used = at(5 * 60_000)
    const [renewed] = (await get(alice, '/sessions')).json().items
    expect(renewed).toMatchObject({ created_at: start.toISOString(), last_used_at: used })
    expect(Date.parse(renewed.expires_at)).toBe(Date.parse(used) + t.config.sessionIdleTtl * 1000)

    const sentAt = at(60_000)
    const sent = await post(alice, '/send', { to: bob.id, text: 'hello' })
    expect(sent.statusCode).toBe(201)
    expect(sent.json().created_at).toBe(sentAt)
    const keyedAt = at(1000)
    const keyed = await t.app.inject({ method: 'POST', url: '/send', headers: { ...alice.auth, 'idempotency-key': 'clock-test' }, payload: { to: bob.id, text: 'again' } })
    expect(keyed.json().created_at).toBe(keyedAt)

    const readAt = at(1000)
    expect((await post(bob, '/inbox/read', { up_to: keyed.json().id })).statusCode).toBe(204)
    expect((await get(bob, '/inbox')).json().items.map((m: { read_at: string }) => m.read_at)).toEqual([readAt, readAt])

    const blockedAt = at(1000)
    const block = await post(alice, '/blocks', { user_id: bob.id })
    expect(block.statusCode).toBe(201)
    expect(block.json().created_at).toBe(blockedAt)
    expect((await get(alice, '/blocks')).json().items[0].created_at).toBe(blockedAt)

    const reportedAt = at(1000)
    expect((await post(bob, '/reports', { user_id: alice.id, reason: 'spam' })).json().created_at).toBe(reportedAt)

    const postedAt = at(1000)
    const location = await post(alice, '/location', { lat: 48.85, lon: 2.35, ttl: 600 })
    expect(location.json().expires_at).toBe(new Date(Date.parse(postedAt) + 600_000).toISOString())
  })
})
