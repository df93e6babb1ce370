import type { LiveEvent } from './types.js'

/**
 * The event an event bus hands its own subscribers in this process (it is never published) when
 * it receives events again after its connection to the store dropped: events published
 * meanwhile never reached this process, and each subscriber catches up its own way (caches drop
 * what they hold, sockets are told to replay).
 */
export const EVENTS_RESUMED = 'events.resumed'

export const eventsResumed = (): LiveEvent => ({ to: [], type: EVENTS_RESUMED, data: null })
