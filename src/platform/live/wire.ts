import type { LiveEvent } from './types.js'

// An event travels between processes as the JSON of { to, type, data }, keys in that order. Its
// `{ type, data }` part is what a socket gets: written once by the publisher and cut out of the
// payload by each receiver, a message is serialised once in all, not parsed and written again in
// every process. Its data is parsed only when a subscriber reads it (most events are only passed on).

const HEAD = '{"to":['
const TYPE = /^"type":("(?:[^"\\]|\\.)*"),"data":/

/** The event as published: the same text as JSON.stringify(event). */
export function eventToWire(event: LiveEvent): string {
  const frame = event.frame ?? JSON.stringify({ type: event.type, data: event.data })
  return `{"to":${JSON.stringify(event.to)},${frame.slice(1)}`
}

/** The event received; its `frame` is the socket's text, its `data` parsed when first read. */
export function eventFromWire(payload: string): LiveEvent {
  // A user id holds no `]`, and inside a JSON string a quote is escaped: the first `],` ends `to`.
  const end = payload.startsWith(HEAD) ? payload.indexOf('],', HEAD.length - 1) : -1
  const type = end < 0 ? null : TYPE.exec(payload.slice(end + 2, end + 2 + 200))
  if (end < 0 || !type) return JSON.parse(payload) as LiveEvent
  const frame = `{${payload.slice(end + 2)}`
  let data: unknown
  let parsed = false
  const event = {
    to: JSON.parse(payload.slice(HEAD.length - 1, end + 1)) as string[],
    type: JSON.parse(type[1]!) as string,
    get data() {
      if (!parsed) {
        data = (JSON.parse(frame) as { data: unknown }).data
        parsed = true
      }
      return data
    },
  }
  // Not part of the event's value (an event received equals the event sent): its text, kept.
  Object.defineProperty(event, 'frame', { value: frame, enumerable: false })
  return event
}
