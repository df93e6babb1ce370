import pg from 'pg'
import { reconnectDelay, type ReconnectDelays } from '../reconnect.js'

export interface ListenHandlers {
  /** A notification's payload. */
  payload(payload: string): void
  /**
   * The connection dropped and LISTEN holds again: what was notified in between never came (NOTIFY
   * keeps nothing), and the listener catches up its own way.
   */
  resumed?(): void
}

export interface Listener {
  /** Whether the LISTEN holds now: false while its connection is being made again. */
  readonly listening: boolean
  /** Stops listening and closes its connection. */
  stop(): Promise<void>
}

/** Subscribes to a PostgreSQL NOTIFY channel for as long as the listener is not stopped. */
export type Listen = (channel: string, handlers: ListenHandlers) => Promise<Listener>

/**
 * LISTEN on a connection of its own, made again whenever it drops (PostgreSQL restarted, the
 * backend was terminated, the network was cut), with a delay that grows between attempts. The
 * first connection must succeed: a start with no database fails.
 */
export function listenOnServer(connectionString: string, delays: ReconnectDelays): { listen: Listen; stopAll(): Promise<void> } {
  const active = new Set<Listener>()

  const listen: Listen = async (channel, handlers) => {
    let client: pg.Client | undefined
    let listening = false
    let stopped = false
    let attempt = 0
    let timer: NodeJS.Timeout | undefined

    const connect = async () => {
      const next = new pg.Client({ connectionString })
      // An error ends the connection, and 'end' makes it again: nothing to do here.
      next.on('error', () => {})
      next.on('notification', (message) => {
        if (message.channel === channel && message.payload !== undefined) handlers.payload(message.payload)
      })
      try {
        await next.connect()
        await next.query(`LISTEN ${pg.escapeIdentifier(channel)}`)
      } catch (error) {
        await next.end().catch(() => {})
        throw error
      }
      if (stopped) {
        await next.end().catch(() => {})
        return
      }
      client = next
      next.once('end', () => {
        if (client !== next) return
        client = undefined
        listening = false
        if (!stopped) retry()
      })
    }

    const retry = () => {
      timer = setTimeout(() => {
        timer = undefined
        if (stopped) return
        connect().then(
          () => {
            attempt = 0
            if (stopped) return
            // Ready again once the listener has heard that it may have missed notifications.
            try {
              handlers.resumed?.()
            } finally {
              listening = true
            }
          },
          () => {
            if (!stopped) retry()
          },
        )
      }, reconnectDelay(++attempt, delays))
    }

    await connect()
    listening = true
    const listener: Listener = {
      get listening() {
        return listening
      },
      async stop() {
        stopped = true
        listening = false
        clearTimeout(timer)
        active.delete(listener)
        const ending = client
        client = undefined
        await ending?.end().catch(() => {})
      },
    }
    active.add(listener)
    return listener
  }

  return {
    listen,
    async stopAll() {
      await Promise.all([...active].map((listener) => listener.stop()))
    },
  }
}
