import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newUser, startTestApp, type TestApp } from './support/app.js'
import { waitUntil } from './support/wait.js'

// What follows a committed change is a task of the outbox: run at once after the commit, and run
// again by a worker when that first run fails. A failing effect never changes the answer.

let t: TestApp
beforeAll(async () => {
  // Workers take a task whose first run failed after 1 s, and look for work every 0.5 s.
  t = await startTestApp({ QUEUE_INLINE_GRACE: '1', QUEUE_POLL_INTERVAL: '500' })
})
afterAll(async () => t?.close())

describe('effects after a commit', () => {
  it('a deletion whose clean-up fails at first answers 204, and the clean-up runs again until it is done', async () => {
    const user = await newUser(t.app, { roles: ['WORKER'] })
    const seen: string[] = []
    let failures = 1
    t.app.accounts.onDeleted(async (userId) => {
      if (userId !== user.id) return
      seen.push(userId)
      if (failures-- > 0) throw new Error('the live store is down')
    })
    const answer = await t.app.inject({ method: 'DELETE', url: '/user', headers: user.auth, payload: { current_password: user.password } })
    expect(answer.statusCode).toBe(204)
    expect(seen).toEqual([user.id])
    await waitUntil(() => seen.length === 2)
    // The task is done: it does not run a third time.
    await new Promise((r) => setTimeout(r, 1500))
    expect(seen).toEqual([user.id, user.id])
    expect(t.logs.some((line) => line.includes('a background task failed') && line.includes('the live store is down'))).toBe(true)
  })

  it('a change whose effects fail at first answers 200, and the other features hear of it later', async () => {
    const user = await newUser(t.app)
    const heard: string[] = []
    let failures = 1
    t.app.accounts.onChanged(async (changed) => {
      if (changed.id !== user.id) return
      heard.push(changed.first_name)
      if (failures-- > 0) throw new Error('the map is down')
    })
    const answer = await t.app.inject({ method: 'POST', url: '/user', headers: user.auth, payload: { first_name: 'Renamed' } })
    expect(answer.statusCode).toBe(200)
    expect(answer.json().first_name).toBe('Renamed')
    await waitUntil(() => heard.length === 2)
    expect(heard).toEqual(['Renamed', 'Renamed'])
  })
})
