import type { FastifyBaseLogger } from 'fastify'
import type { WebSocket } from 'ws'
import type { LiveEvent, LiveStore } from '../../platform/live/index.js'
import { EVENTS_RESUMED } from '../../platform/live/resumed.js'
import type { MessageView } from '../messaging/index.js'

// The sockets of this process. Every process subscribes to the live store's events and hands each
// event to its own sockets of the users it is for; a message is stored before its event is
// published, so a socket that misses one catches up with ?since= or GET /inbox.

/**
 * Close codes: 4401 when the session ended, 4408 when the client reads too slowly, 4008 when its
 * user opened more sockets on this process than `maxPerUser` and this one was the oldest.
 */
export const CLOSE_SESSION_ENDED = 4401
export const CLOSE_TOO_SLOW = 4408
export const CLOSE_TOO_MANY = 4008
const CLOSE_GOING_AWAY = 1001
/** Events may have been missed: reconnect with ?since= to have them replayed. */
export const CLOSE_RECONNECT = 1012

/** Every this many heartbeats, sockets whose session has lapsed (idle or too old) are closed. */
const SESSION_CHECK_EVERY = 10
/** Sockets whose sessions are read in one statement. */
const CHECK_BATCH = 1000

/**
 * The heartbeat pings a tenth of the sockets every tenth of its interval, each socket once an
 * interval: a process holding thousands of sockets never stops for one long loop of pings (each
 * ping is a write to the network; 2,500 at once held every request of a process for ~100 ms).
 */
const HEARTBEAT_SLICES = 10


interface Connection {
  socket: WebSocket
  userId: string
  sessionId: string
  alive: boolean
  /** Which tick of the heartbeat pings this socket. */
  slice: number
  /** While ?since= replays, live events wait here (then duplicates of replayed messages are dropped). */
  pending: LiveEvent[] | null
}

/** What the hub needs of sessions: which stand, and word of those that may have ended. */
export interface HubSessions {
  /** Of these session ids, those that stand now. */
  standing(sessionIds: readonly string[]): Promise<Set<string>>
  /** Called with the users whose sessions may have ended, or undefined for anyone's. */
  onChanged(listener: (userIds: readonly string[] | undefined) => void): void
}

export interface HubOptions {
  live: LiveStore
  sessions: HubSessions
  /** Messages the user sent or received after a message id, oldest first, at most `replayLimit`. */
  since: (userId: string, afterId: string) => Promise<MessageView[]>
  /**
   * The other events a socket missed since that message, given the messages replayed: the jobs
   * they tell of, as they are now (`job.updated`), and reads (`message.read`).
   */
  missedEvents: (userId: string, afterId: string, messages: readonly MessageView[]) => Promise<{ type: string; data: unknown }[]>
  replayLimit: number
  heartbeatMs: number
  maxBufferedBytes: number
  /** Sockets one user may hold on this process; one more closes the user's oldest. */
  maxPerUser: number
  log: FastifyBaseLogger
}

export function createRealtimeHub(options: HubOptions) {
  const { log } = options
  const byUser = new Map<string, Set<Connection>>()
  let unsubscribe: (() => Promise<void>) | undefined
  let closing = false

  const drop = (conn: Connection) => {
    const set = byUser.get(conn.userId)
    if (!set) return
    set.delete(conn)
    if (set.size === 0) byUser.delete(conn.userId)
  }

  /**
   * Sends, unless the socket has more waiting than the bound: then it is closed as too slow. A
   * Buffer goes as text too: an event's bytes are made once for all its sockets, not per socket.
   */
  const send = (conn: Connection, payload: string | Buffer) => {
    const { socket } = conn
    if (socket.readyState !== socket.OPEN) return
    if (socket.bufferedAmount + (typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length) > options.maxBufferedBytes) {
      log.warn({ user_id: conn.userId, buffered: socket.bufferedAmount }, 'websocket closed: the client reads too slowly')
      drop(conn)
      socket.close(CLOSE_TOO_SLOW, 'too slow')
      // A client that reads nothing will not read the close frame either.
      setTimeout(() => socket.terminate(), 1000).unref()
      return
    }
    socket.send(payload, { binary: false })
  }

  const onEvent = (event: LiveEvent) => {
    if (event.type === EVENTS_RESUMED) {
      // This process heard no events for a while (its connection to the live store dropped):
      // every socket may have missed some, and a client catches up by reconnecting with ?since=.
      for (const set of byUser.values()) for (const conn of set) conn.socket.close(CLOSE_RECONNECT, 'events may have been missed; reconnect with since')
      byUser.clear()
      return
    }
    let payload: Buffer | undefined
    for (const userId of event.to) {
      for (const conn of byUser.get(userId) ?? []) {
        if (conn.pending) {
          conn.pending.push(event)
          continue
        }
        payload ??= Buffer.from(event.frame ?? JSON.stringify({ type: event.type, data: event.data }))
        send(conn, payload)
      }
    }
  }

  /** Closes the sockets (of these users, or all) whose session no longer stands, a batch at a time. */
  const closeEnded = async (userIds: readonly string[] | undefined) => {
    const conns = userIds ? userIds.flatMap((userId) => [...(byUser.get(userId) ?? [])]) : [...byUser.values()].flatMap((set) => [...set])
    try {
      for (let i = 0; i < conns.length; i += CHECK_BATCH) {
        const batch = conns.slice(i, i + CHECK_BATCH)
        const standing = await options.sessions.standing([...new Set(batch.map((conn) => conn.sessionId))])
        for (const conn of batch) {
          if (standing.has(conn.sessionId)) continue
          drop(conn)
          conn.socket.close(CLOSE_SESSION_ENDED, 'session ended')
        }
      }
    } catch (error) {
      log.warn({ err: error }, 'could not check the sessions of open websockets')
    }
  }
  // A sign-out, a new password, a deletion... is heard within a second on every process, and the
  // sockets of its users are checked then; a session that just lapses is found by the heartbeat.
  options.sessions.onChanged((userIds) => {
    if (!closing && byUser.size > 0) void closeEnded(userIds)
  })
  let checking = false
  const closeLapsed = async () => {
    if (checking) return
    checking = true
    try {
      await closeEnded(undefined)
    } finally {
      checking = false
    }
  }

  let ticks = 0
  let attached = 0
  const heartbeat = setInterval(() => {
    const slice = ticks++ % HEARTBEAT_SLICES
    if (ticks % (HEARTBEAT_SLICES * SESSION_CHECK_EVERY) === 0) void closeLapsed()
    for (const set of byUser.values()) {
      for (const conn of set) {
        if (conn.slice !== slice) continue
        if (!conn.alive) {
          // No pong since the last ping: the peer is gone without saying so.
          drop(conn)
          conn.socket.terminate()
          continue
        }
        conn.alive = false
        conn.socket.ping()
      }
    }
  }, options.heartbeatMs / HEARTBEAT_SLICES)
  heartbeat.unref()

  return {
    async start() {
      unsubscribe = await options.live.events.subscribe(onEvent)
    },

    /** Takes a socket of a signed-in user; with `since`, replays what the user missed first. */
    async attach(socket: WebSocket, auth: { userId: string; sessionId: string }, since?: string) {
      if (closing) {
        socket.close(CLOSE_GOING_AWAY, 'shutting down')
        return
      }
      const conn: Connection = { socket, userId: auth.userId, sessionId: auth.sessionId, alive: true, slice: attached++ % HEARTBEAT_SLICES, pending: since ? [] : null }
      // Room for this one: the user's oldest go first (a set iterates in insertion order).
      const held = byUser.get(auth.userId) ?? new Set<Connection>()
      for (const old of held) {
        if (held.size < options.maxPerUser) break
        log.info({ user_id: auth.userId }, 'websocket closed: its user opened too many')
        drop(old)
        old.socket.close(CLOSE_TOO_MANY, 'too many sockets for this user')
        // A client that holds sockets open on purpose may not answer the close frame either.
        setTimeout(() => old.socket.terminate(), 1000).unref()
      }
      let set = byUser.get(auth.userId)
      if (!set) byUser.set(auth.userId, (set = new Set()))
      set.add(conn)
      socket.on('pong', () => {
        conn.alive = true
      })
      socket.on('close', () => drop(conn))
      socket.on('error', () => drop(conn))
      // Clients have nothing to say on this socket; anything they send is ignored.
      if (!since) return
      try {
        const missed = await options.since(auth.userId, since)
        const replayed = new Set<string>()
        for (const message of missed) {
          replayed.add(message.id)
          send(conn, JSON.stringify({ type: 'message.created', data: message }))
        }
        const others = await options.missedEvents(auth.userId, since, missed)
        for (const event of others) send(conn, JSON.stringify(event))
        send(conn, JSON.stringify({ type: 'replay.done', data: { count: missed.length, events: others.length, complete: missed.length < options.replayLimit } }))
        for (const event of conn.pending ?? []) {
          if (event.type === 'message.created' && replayed.has((event.data as { id?: string }).id ?? '')) continue
          send(conn, JSON.stringify({ type: event.type, data: event.data }))
        }
      } catch (error) {
        log.error({ err: error }, 'websocket replay failed')
        socket.close(1011, 'replay failed')
      } finally {
        conn.pending = null
      }
    },


    async close() {
      closing = true
      clearInterval(heartbeat)
      await unsubscribe?.()
      for (const set of byUser.values()) for (const conn of set) conn.socket.close(CLOSE_GOING_AWAY, 'shutting down')
      byUser.clear()
    },
  }
}

