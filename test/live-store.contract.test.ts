import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { v7 as uuidv7 } from 'uuid'
import type { LiveEvent, LiveStore } from '../src/platform/live/index.js'
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
        // Within a flush, the shared count holds them all. Another process counts its first hits
        // without a round trip, and from its first flush on counts on top of everyone's.
        await sleep(300)
        expect((await live.counters.peek(key)).count).toBe(10)
        expect((await b.hit(key, 10_000)).count).toBe(1)
        await sleep(300)
        expect((await b.hit(key, 10_000)).count).toBe(12)
        await b.hit(key, 10_000, 3)
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
