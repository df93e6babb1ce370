import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import type { DB, Listen, Listener } from '../../db/index.js'
import { eventsResumed } from '../resumed.js'
import { eventFromWire, eventToWire } from '../wire.js'
import type { EventBus, LiveEvent } from '../types.js'

const CHANNEL = 'live_events'
/**
 * NOTIFY refuses payloads of 8000 bytes or more. A larger event (a 4000-character message is up to
 * 16 kB of UTF-8) goes as several notifications in ONE statement: PostgreSQL delivers a
 * transaction's notifications together and in order, so a listener gets all parts or none.
 */
export const MAX_NOTIFY_BYTES = 7900
const PART_BYTES = 7000
/** Parts of an event that never completes (a listener that reconnected midway) are dropped after this. */
const PARTIAL_TTL_MS = 30_000

/** Splits text into pieces of at most maxBytes of UTF-8 each, never inside a character. */
export function splitUtf8(text: string, maxBytes: number): string[] {
  const parts: string[] = []
  let start = 0
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    let size: number
    let width = 1
    if (code < 0x80) size = 1
    else if (code < 0x800) size = 2
    else if (code >= 0xd800 && code < 0xdc00 && i + 1 < text.length) {
      size = 4
      width = 2
    } else size = 3
    if (bytes + size > maxBytes) {
      parts.push(text.slice(start, i))
      start = i
      bytes = 0
    }
    bytes += size
    i += width - 1
  }
  parts.push(text.slice(start))
  return parts
}

/**
 * Events travel by NOTIFY on one channel; each process LISTENs and hands them to its sockets.
 * A payload is the event's JSON, or for a large event one part of it: `~<id>:<index>:<count>:<text>`.
 * When the LISTEN connection drops it is made again, and the subscribers are told (EVENTS_RESUMED).
 */
export function createPostgresEventBus(db: DB, listen: Listen): EventBus & { listening(): boolean } {
  let listener: Promise<Listener> | undefined
  /** The listener once it listened, for readiness. */
  let started: Listener | undefined
  const handlers = new Set<(event: LiveEvent) => void>()
  const partial = new Map<string, { parts: string[]; got: number; since: number }>()

  const deliver = (json: string) => {
    const event = eventFromWire(json)
    for (const h of handlers) h(event)
  }

  const receive = (payload: string) => {
    if (!payload.startsWith('~')) return deliver(payload)
    const match = /^~([0-9a-f-]{36}):(\d+):(\d+):/.exec(payload)
    if (!match) return
    const [head, id, index, count] = match as unknown as [string, string, string, string]
    const now = Date.now()
    let entry = partial.get(id)
    if (!entry) {
      for (const [key, value] of partial) if (now - value.since > PARTIAL_TTL_MS) partial.delete(key)
      entry = { parts: new Array<string>(Number(count)), got: 0, since: now }
      partial.set(id, entry)
    }
    if (entry.parts[Number(index)] === undefined) {
      entry.parts[Number(index)] = payload.slice(head.length)
      entry.got++
    }
    if (entry.got === entry.parts.length) {
      partial.delete(id)
      deliver(entry.parts.join(''))
    }
  }

  return {
    async publish(event) {
      const json = eventToWire(event)
      if (Buffer.byteLength(json, 'utf8') <= MAX_NOTIFY_BYTES) {
        await sql`SELECT pg_notify(${CHANNEL}, ${json})`.execute(db)
        return
      }
      const id = randomUUID()
      const parts = splitUtf8(json, PART_BYTES)
      const payloads = parts.map((part, i) => `~${id}:${i}:${parts.length}:${part}`)
      // One statement, one transaction: the parts are delivered together, in this order.
      await sql`SELECT pg_notify(${CHANNEL}, p) FROM unnest(${payloads}::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n`.execute(db)
    },
    async subscribe(handler) {
      if (!listener) {
        const starting = listen(CHANNEL, {
          payload: receive,
          resumed() {
            // Parts of an event whose other parts went by while the connection was down never complete.
            partial.clear()
            const event = eventsResumed()
            for (const h of handlers) h(event)
          },
        })
        listener = starting
        starting.then((l) => (started = l), () => (listener = undefined))
      }
      await listener
      handlers.add(handler)
      return async () => {
        handlers.delete(handler)
        if (handlers.size === 0 && listener) {
          const stopping = listener
          listener = undefined
          started = undefined
          await (await stopping).stop()
        }
      }
    },

    /** False while events can't arrive: the LISTEN connection dropped and is being made again. */
    listening: () => started?.listening ?? true,
  }
}
