import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { v7 as uuidv7 } from 'uuid'
import type { LiveEvent, LiveStore, SessionRecord } from '../src/platform/live/index.js'
import { localFirstCounters } from '../src/platform/live/local-first-counters.js'
import { createSharedCache, type SharedCache } from '../src/platform/live/shared-cache.js'
import { liveBackends } from './support/backends.js'

// One contract, every implementation of the live store this run can reach.
describe.each(liveBackends())('$name', (backend) => {
  let live: LiveStore
  let close: () => Promise<void>

  beforeAll(async () => {
    ;({ live, close } = await backend.open())
  })
  afterAll(async () => close())

  const session = (userId: string, overrides: Partial<SessionRecord> = {}): SessionRecord => {
    const now = new Date()
    return {
      id: uuidv7(),
      userId,
      userAgent: 'test-agent',
      createdAt: now,
      lastUsedAt: now,
      expiresAt: new Date(now.getTime() + 60_000),
      maxExpiresAt: new Date(now.getTime() + 3_600_000),
      ...overrides,
    }
  }

  describe('sessions', () => {
    it('finds a session by its token hash and renews its idle expiry, never past the absolute one', async () => {
      const user = uuidv7()
      const s = session(user, { maxExpiresAt: new Date(Date.now() + 90_000) })
      await live.sessions.create('hash-a', s, 10)
      const touched = await live.sessions.touch('hash-a', new Date(), 60)
      expect(touched).toMatchObject({ id: s.id, userId: user, userAgent: 'test-agent' })
      expect(touched!.expiresAt.getTime()).toBeGreaterThan(Date.now() + 55_000)
      const later = await live.sessions.touch('hash-a', new Date(), 3600)
      expect(later!.expiresAt.getTime()).toBe(s.maxExpiresAt.getTime())
    })

    it('writes a renewal only when it moves the expiry by min(60 s, 0.1% of the idle TTL)', async () => {
      const s = session(uuidv7(), { expiresAt: new Date(Date.now() + 3_600_000), maxExpiresAt: new Date(Date.now() + 7_200_000) })
      await live.sessions.create('hash-renew', s, 10)
      // Moving the expiry by under 3.6 s (0.1% of an hour): read, not written.
      const read = await live.sessions.touch('hash-renew', new Date(s.createdAt.getTime() + 2_000), 3600)
      expect(read!.expiresAt.getTime()).toBe(s.expiresAt.getTime())
      expect(read!.lastUsedAt.getTime()).toBe(s.lastUsedAt.getTime())
      // By 5 s: written, and kept.
      const at = new Date(s.createdAt.getTime() + 5_000)
      const renewed = await live.sessions.touch('hash-renew', at, 3600)
      expect(renewed!.expiresAt.getTime()).toBe(at.getTime() + 3_600_000)
      expect(renewed!.lastUsedAt.getTime()).toBe(at.getTime())
      const listed = (await live.sessions.list(s.userId)).find((x) => x.id === s.id)
      expect(listed).toMatchObject({ expiresAt: renewed!.expiresAt, lastUsedAt: at })
    })

    it('answers null for an unknown token and for a session past its idle expiry', async () => {
      expect(await live.sessions.touch('no-such-hash', new Date(), 60)).toBeNull()
      const s = session(uuidv7(), { expiresAt: new Date(Date.now() + 300) })
      await live.sessions.create('hash-short', s, 10)
      await sleep(450)
      expect(await live.sessions.touch('hash-short', new Date(), 60)).toBeNull()
    })

    it('lists a user\'s sessions oldest first and ends the oldest past the cap', async () => {
      const user = uuidv7()
      const made: SessionRecord[] = []
      for (let i = 0; i < 4; i++) {
        const s = session(user)
        made.push(s)
        await live.sessions.create(`cap-${user}-${i}`, s, 3)
      }
      const listed = await live.sessions.list(user)
      expect(listed.map((s) => s.id)).toEqual(made.slice(1).map((s) => s.id))
      expect(await live.sessions.touch(`cap-${user}-0`, new Date(), 60)).toBeNull()
    })

    it('ends one session by token, by id (only its owner\'s), or all but one', async () => {
      const user = uuidv7()
      const other = uuidv7()
      const [a, b, c] = [session(user), session(user), session(user)]
      await live.sessions.create(`end-a-${user}`, a, 10)
      await live.sessions.create(`end-b-${user}`, b, 10)
      await live.sessions.create(`end-c-${user}`, c, 10)

      expect((await live.sessions.end(`end-a-${user}`))?.id).toBe(a.id)
      expect(await live.sessions.end(`end-a-${user}`)).toBeNull()
      expect(await live.sessions.touch(`end-a-${user}`, new Date(), 60)).toBeNull()

      expect(await live.sessions.endById(other, b.id)).toBe(false)
      expect(await live.sessions.endById(user, b.id)).toBe(true)
      expect(await live.sessions.touch(`end-b-${user}`, new Date(), 60)).toBeNull()

      const d = session(user)
      await live.sessions.create(`end-d-${user}`, d, 10)
      expect(await live.sessions.endAll(user, d.id)).toEqual([c.id])
      expect((await live.sessions.list(user)).map((s) => s.id)).toEqual([d.id])
      expect(await live.sessions.endAll(user)).toEqual([d.id])
      expect(await live.sessions.list(user)).toEqual([])
    })

    it('ends many sessions of a user at once, as a new password does', async () => {
      const user = uuidv7()
      const made = Array.from({ length: 6 }, () => session(user))
      for (const [i, s] of made.entries()) await live.sessions.create(`many-${user}-${i}`, s, 10)
      const kept = made[2]!
      expect((await live.sessions.endAll(user, kept.id)).sort()).toEqual(made.filter((s) => s !== kept).map((s) => s.id).sort())
      for (const i of [0, 1, 3, 4, 5]) expect(await live.sessions.touch(`many-${user}-${i}`, new Date(), 60)).toBeNull()
      expect((await live.sessions.touch(`many-${user}-2`, new Date(), 60))?.id).toBe(kept.id)
      expect((await live.sessions.list(user)).map((s) => s.id)).toEqual([kept.id])
    })
  })

  describe('counters', () => {
    it('counts hits within a window and starts again after it', async () => {
      const key = `k-${uuidv7()}`
      expect((await live.counters.hit(key, 400)).count).toBe(1)
      const second = await live.counters.hit(key, 400)
      expect(second.count).toBe(2)
      expect(second.resetMs).toBeGreaterThan(0)
      expect(second.resetMs).toBeLessThanOrEqual(400)
      expect((await live.counters.peek(key)).count).toBe(2)
      await sleep(500)
      expect((await live.counters.peek(key)).count).toBe(0)
      expect((await live.counters.hit(key, 400)).count).toBe(1)
    })

    it('adds many hits at once', async () => {
      const key = `b-${uuidv7()}`
      expect((await live.counters.hit(key, 10_000, 5)).count).toBe(5)
      expect((await live.counters.hit(key, 10_000)).count).toBe(6)
      expect((await live.counters.hit(key, 10_000, 3)).count).toBe(9)
      expect((await live.counters.peek(key)).count).toBe(9)
    })

    it('counts rate limits in each process first, exactly there, and loses no hit on the way to the shared count', async () => {
      const key = `l-${uuidv7()}`
      const [a, b] = [localFirstCounters(live.counters), localFirstCounters(live.counters)]
      try {
        // Within one process: exact, one at a time or many at once.
        for (let i = 1; i <= 3; i++) expect((await a.hit(key, 10_000)).count).toBe(i)
        const many = await Promise.all(Array.from({ length: 7 }, () => a.hit(key, 10_000)))
        expect(many.map((h) => h.count).sort((x, y) => x - y)).toEqual([4, 5, 6, 7, 8, 9, 10])
        // Within a flush, the shared count holds them all; another process's window starts from it.
        await sleep(300)
        expect((await live.counters.peek(key)).count).toBe(10)
        expect((await b.hit(key, 10_000)).count).toBe(11)
        await b.hit(key, 10_000, 4)
        // Hits still counted only here reach the shared count when a process stops.
        await Promise.all([a.close(), b.close()])
        expect((await live.counters.peek(key)).count).toBe(15)
      } finally {
        await Promise.all([a.close(), b.close()])
      }
    })

    it('counts the hits on their way to a slow shared store', async () => {
      const key = `s-${uuidv7()}`
      // The live store behind a slow network: each addition takes 300 ms.
      const slow = { ...live.counters, hit: async (k: string, w: number, by?: number) => (await sleep(300), live.counters.hit(k, w, by)) }
      const a = localFirstCounters(slow)
      try {
        expect((await a.hit(key, 10_000)).count).toBe(1)
        for (let i = 2; i <= 6; i++) expect((await a.hit(key, 10_000)).count).toBe(i)
        // A flush is now on its way with those five; they still count.
        await sleep(150)
        expect((await a.hit(key, 10_000)).count).toBe(7)
      } finally {
        await a.close()
      }
      expect((await live.counters.peek(key)).count).toBe(7)
    })

    it('starts a new window of a local-first counter when the last one ends', async () => {
      const key = `w-${uuidv7()}`
      const a = localFirstCounters(live.counters)
      try {
        for (let i = 1; i <= 3; i++) expect((await a.hit(key, 300)).count).toBe(i)
        await sleep(450)
        expect((await a.hit(key, 300)).count).toBe(1)
      } finally {
        await a.close()
      }
    })

    it('counts concurrent hits exactly and resets on demand', async () => {
      const key = `c-${uuidv7()}`
      const hits = await Promise.all(Array.from({ length: 25 }, () => live.counters.hit(key, 10_000)))
      expect(hits.map((h) => h.count).sort((x, y) => x - y)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1))
      await live.counters.reset(key)
      expect((await live.counters.peek(key)).count).toBe(0)
    })
  })

  describe('events', () => {
    it('delivers a published event to every subscriber', async () => {
      const got: LiveEvent[][] = [[], []]
      const stops = await Promise.all(got.map((list) => live.events.subscribe((e) => list.push(e))))
      const event = { to: [uuidv7()], type: 'test.ping', data: { n: 1, text: 'héllo' } }
      await live.events.publish(event)
      await expect.poll(() => got.map((l) => l.length), { timeout: 3000 }).toEqual([1, 1])
      expect(got[0]![0]).toEqual(event)
      await Promise.all(stops.map((stop) => stop()))
    })

    it('delivers events far larger than one NOTIFY payload, whole and in order', async () => {
      const got: LiveEvent[] = []
      const stop = await live.events.subscribe((e) => got.push(e))
      // 4000 characters of 4-byte UTF-8 (plus 3-byte ones) is over 16 kB: twice PostgreSQL's 8000-byte NOTIFY limit.
      const big = (n: number) => ({ to: [uuidv7()], type: 'test.big', data: { n, text: '😀€'.repeat(2000 + n) } })
      const sent = [big(0), { to: [uuidv7()], type: 'test.small', data: { n: 1 } }, big(2), big(3)]
      for (const event of sent) await live.events.publish(event)
      await expect.poll(() => got.length, { timeout: 5000 }).toBe(sent.length)
      expect(got).toEqual(sent)
      await stop()
    })

    it('delivers the events one process publishes in the order it published them', async () => {
      // A message and then its read receipt must not arrive the other way round.
      const got: number[] = []
      const stop = await live.events.subscribe((e) => got.push((e.data as { n: number }).n))
      const to = [uuidv7()]
      for (let n = 0; n < 300; n++) await live.events.publish({ to, type: 'test.order', data: { n } })
      await expect.poll(() => got.length, { timeout: 5000 }).toBe(300)
      expect(got).toEqual(Array.from({ length: 300 }, (_, n) => n))
      await stop()
    })
  })

  describe('tickets', () => {
    it('answers a ticket\'s value once, then never again', async () => {
      const key = `t-${uuidv7()}`
      await live.tickets.put(key, 'value-1', 10_000)
      const takes = await Promise.all([live.tickets.take(key), live.tickets.take(key), live.tickets.take(key)])
      expect(takes.filter((v) => v !== null)).toEqual(['value-1'])
      expect(await live.tickets.take(key)).toBeNull()
      expect(await live.tickets.take(`t-${uuidv7()}`)).toBeNull()
    })

    it('forgets a ticket past its time', async () => {
      const key = `t-${uuidv7()}`
      await live.tickets.put(key, 'value-2', 300)
      await sleep(450)
      expect(await live.tickets.take(key)).toBeNull()
    })
  })

  describe('shared cache', () => {
    // Two caches of one name on the store's events: two processes' caches.
    const pair = async () => {
      const name = `test-${uuidv7()}`
      const caches = [0, 1].map(() => createSharedCache<string>({ events: live.events, name, max: 100, ttlMs: 60_000 }))
      for (const cache of caches) await cache.start()
      return { caches: caches as [SharedCache<string>, SharedCache<string>], close: () => Promise.all(caches.map((c) => c.close())) }
    }

    it('reads through, and drops an entry in every process when one says it changed', async () => {
      const { caches: [a, b], close } = await pair()
      const loads: string[][] = []
      const load = async (missing: string[]) => {
        loads.push(missing)
        return new Map(missing.filter((k) => k !== 'gone').map((k) => [k, `v${loads.length}`]))
      }
      expect(await a.getMany(['x', 'y', 'gone'], load)).toEqual(new Map([['x', 'v1'], ['y', 'v1']]))
      expect(await a.getMany(['x', 'y'], load)).toEqual(new Map([['x', 'v1'], ['y', 'v1']]))
      expect(loads).toEqual([['x', 'y', 'gone']])
      await b.changed(['x'])
      await expect.poll(async () => (await a.getMany(['x', 'y'], load)).get('x'), { timeout: 5000 }).not.toBe('v1')
      expect(loads.slice(1).every((keys) => keys.length === 1 && keys[0] === 'x')).toBe(true)
      await close()
    })

    it('does not keep a value read while a change was made', async () => {
      const { caches: [a, b], close } = await pair()
      let release!: () => void
      const loading = a.get('k', async () => {
        await new Promise<void>((resolve) => (release = resolve))
        return 'read before the change'
      })
      await b.changed(['k'])
      // The change reaches A while its read is under way.
      await sleep(200)
      release()
      expect(await loading).toBe('read before the change')
      expect(await a.get('k', async () => 'read after')).toBe('read after')
      await close()
    })
  })

  it('answers a ping', async () => {
    await expect(live.ping()).resolves.toBeUndefined()
  })
})
