import { randomUUID } from 'node:crypto'
import { sql, type Kysely, type Transaction } from 'kysely'
import type { Database, Listen } from '../../platform/db/index.js'

// How every process hears that sessions changed, and knows whether it can rely on hearing it.
//
// A change is told by NOTIFY in the transaction that makes it, so it reaches every process's
// LISTEN if and only if the change commits, in commit order. Each process also sends itself a
// probe every PROBE_MS through the same channel: a probe that comes back says that everything
// committed before it was sent has been heard. So a process relies on what it cached only while
// its last probe came back within TRUST_MS of being sent, and while no message of any sender is
// missing. A change is thus heard, or the cache left alone, within TRUST_MS (plus a probe's way
// through the database) of its commit, whatever fails.
//
// A channel that was only slow (a busy process, a stalled connection) loses nothing: what it
// held back comes, in order, before the probe that brings trust back, so the cache is kept. A
// message that never comes is another matter: each sender numbers its messages, and one missing
// for TRUST_MS (or a silence of the channel longer than LOST_AFTER_MS) means some change may
// have gone unheard, and nothing cached before is relied on again.

const CHANNEL = 'sessions_changed'
/** How often each process sends itself a probe. */
export const PROBE_MS = 200
/** How old the last probe that came back may be while the cache is relied on. */
export const TRUST_MS = 700
/**
 * A change committed is heard by every process, or the process stops trusting the channel and
 * tells of it (onDown, or onLost for a message gone missing), within this of its commit: past
 * TRUST_MS, the next tick finds the channel down or the gap overdue.
 */
export const CHANGES_HEARD_WITHIN_MS = TRUST_MS + 2 * PROBE_MS
/** A channel silent this long may have lost its connection (and what was sent meanwhile) on the way. */
const LOST_AFTER_MS = 5_000
/** A sender not heard from for this long is forgotten (a process that stopped). */
const FORGET_SENDER_MS = 5 * 60_000
/** Past this many messages missing from one sender, they are taken as lost at once. */
const MAX_GAP = 1000

interface Message {
  /** The sending process, and the number of this message among its own. */
  from: string
  seq: number
  /** Users whose sessions, or what their authentication carries, changed. */
  users?: string[]
  /** A probe: when its sender sent it, on its own clock. */
  probe?: number
}

interface Sender {
  seq: number
  heard: number
  /** Numbers not received yet although later ones were, and since when. */
  missing: Map<number, number>
}

export interface ChannelOptions {
  db: Kysely<Database>
  listen: Listen
  /**
   * The database runs in this process (PGlite): its notifications can't be lost on the way, and
   * every process that uses it is this one. No probes then (they would only wait in line behind
   * the queries of the one connection).
   */
  inProcess: boolean
  /** Users whose cached authentications must go. */
  onChanged: (userIds: string[]) => void
  /** Messages may have been lost: nothing cached before can be relied on. */
  onLost: () => void
  /** The channel can't be relied on for now (its probes come back late, or not at all). */
  onDown: () => void
  onError: (error: unknown) => void
}

export function createSessionsChannel(options: ChannelOptions) {
  const id = randomUUID()
  let seq = 0
  let up = false
  let upSince = 0
  let lastEcho = -Infinity
  /** Moves whenever what was cached may have missed a change: entries of an older epoch are not relied on. */
  let epoch = 0
  const senders = new Map<string, Sender>()
  let missing = 0
  let unlisten: (() => Promise<void>) | undefined
  let timer: NodeJS.Timeout | undefined

  const lost = () => {
    epoch++
    options.onLost()
  }

  let downSince = 0
  const goDown = () => {
    up = false
    downSince = performance.now()
    options.onDown()
  }

  /** Notes a message's number; a sender's gap is held open for TRUST_MS (NOTIFYs commit in any order). */
  const track = (m: Message, now: number) => {
    const sender = senders.get(m.from)
    if (!sender) {
      // A sender's first message is number 1. A later one from a sender never heard while the
      // channel stood means messages of it went missing.
      if (m.seq > 1 && up && now - upSince > 2 * PROBE_MS + TRUST_MS) lost()
      senders.set(m.from, { seq: m.seq, heard: now, missing: new Map() })
      return
    }
    sender.heard = now
    if (m.seq > sender.seq) {
      if (m.seq - sender.seq - 1 > MAX_GAP) lost()
      else for (let n = sender.seq + 1; n < m.seq; n++, missing++) sender.missing.set(n, now)
      sender.seq = m.seq
    } else if (sender.missing.delete(m.seq)) {
      missing--
    }
  }

  const receive = (payload: string) => {
    let m: Message
    try {
      m = JSON.parse(payload) as Message
    } catch {
      return
    }
    const now = performance.now()
    track(m, now)
    if (m.users && m.users.length > 0) options.onChanged(m.users)
    if (m.from === id && m.probe !== undefined && m.probe > lastEcho) {
      lastEcho = m.probe
      if (!up && now - lastEcho <= TRUST_MS) {
        up = true
        upSince = now
        if (now - downSince > LOST_AFTER_MS) lost()
      }
    }
  }

  const notify = async (executor: Kysely<Database> | Transaction<Database>, body: Omit<Message, 'from' | 'seq'>) => {
    const message: Message = { from: id, seq: ++seq, ...body }
    await sql`SELECT pg_notify(${CHANNEL}, ${JSON.stringify(message)})`.execute(executor)
  }

  /**
   * LISTENs again on a connection of its own: the last one may have gone without a word (the
   * server restarted, the network dropped it). What was sent meanwhile is lost, and the silence
   * already counts as such (see LOST_AFTER_MS).
   */
  /** LISTENs on the channel; answers how to stop. */
  const subscribe = async () => {
    const listener = await options.listen(CHANNEL, {
      payload: receive,
      // The connection dropped and was made again by itself: nothing was heard in between, so
      // what was cached may be stale, and the channel is down until its probes echo again.
      resumed: () => {
        goDown()
        lost()
      },
    })
    return () => listener.stop()
  }

  let relistenedAt = -Infinity
  let relistening = false
  let closed = false
  const relisten = async () => {
    relistening = true
    relistenedAt = performance.now()
    try {
      const old = unlisten
      unlisten = undefined
      await old?.().catch(() => {})
      const next = await subscribe()
      if (closed) await next()
      else unlisten = next
    } catch (error) {
      options.onError(error)
    } finally {
      relistening = false
    }
  }

  const tick = () => {
    const now = performance.now()
    if (!options.inProcess) void notify(options.db, { probe: now }).catch(options.onError)
    channel.trusted()
    if (!up && !options.inProcess && !relistening && now - downSince > LOST_AFTER_MS && now - relistenedAt > LOST_AFTER_MS) void relisten()
    for (const [from, sender] of senders) {
      let overdue = false
      for (const [n, since] of sender.missing) {
        if (now - since <= TRUST_MS) continue
        sender.missing.delete(n)
        missing--
        overdue = true
      }
      if (overdue) lost()
      if (now - sender.heard > FORGET_SENDER_MS) {
        missing -= sender.missing.size
        senders.delete(from)
      }
    }
  }

  const channel = {
    /** Whether what was cached in the current epoch can be relied on now. */
    trusted(): boolean {
      if (up && !options.inProcess && performance.now() - lastEcho > TRUST_MS) goDown()
      return up && missing === 0
    },

    get epoch() {
      return epoch
    },

    /** Tells every process, when `executor`'s transaction commits, that these users changed. */
    async changed(executor: Kysely<Database> | Transaction<Database>, userIds: readonly string[]): Promise<void> {
      if (userIds.length > 0) await notify(executor, { users: [...new Set(userIds)] })
    },

    async start() {
      unlisten = await subscribe()
      downSince = performance.now()
      if (options.inProcess) {
        up = true
        epoch++
      }
      timer = setInterval(tick, PROBE_MS)
      timer.unref()
      tick()
    },

    async close() {
      closed = true
      clearInterval(timer)
      up = false
      epoch++
      await unlisten?.()
      unlisten = undefined
    },
  }
  return channel
}

export type SessionsChannel = ReturnType<typeof createSessionsChannel>
