import type { FastifyInstance } from 'fastify'
import { expect } from 'vitest'
import { WebSocket } from 'ws'
import { waitUntil } from './wait.js'

// What the tests of failing servers share: sockets to follow, answers that must come soon, and
// the log lines that say something went wrong.

export interface Socket {
  ws: WebSocket
  events: { type: string; data: any }[]
  /** The close code once the server closed the socket; undefined while it is open. */
  closedWith(): number | undefined
}

/** Opens /ws on a listening app as the holder of `token`, with `since` when given. */
export function openSocket(app: FastifyInstance, token: string, since?: string): Promise<Socket> {
  const { port } = app.server.address() as { port: number }
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws${since ? `?since=${since}` : ''}`, { headers: { authorization: `Bearer ${token}` } })
  const events: Socket['events'] = []
  let code: number | undefined
  ws.on('message', (data) => events.push(JSON.parse(String(data))))
  ws.on('close', (closeCode) => (code = closeCode))
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve({ ws, events, closedWith: () => code }))
    ws.on('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)))
    ws.on('error', reject)
  })
}

/**
 * What `work` answers, or a failure once `ms` have passed: for what must answer soon rather than
 * wait for a server to come back (the bound is loose; answers come well within it).
 */
export async function answeredWithin<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)))
  try {
    return await Promise.race([work, late])
  } finally {
    clearTimeout(timer)
  }
}

/** Asks `ask` every 50 ms until its answer has `status`, and answers that one. */
export async function answerWith<T extends { statusCode: number }>(status: number, ask: () => Promise<T>): Promise<T> {
  let answer: T | undefined
  await waitUntil(async () => (answer = await ask()).statusCode === status)
  return answer!
}

/** The log lines at level error or above (pino: 50 and up). */
export const errorLines = (logs: string[]) => logs.map((line) => JSON.parse(line)).filter((line) => line.level >= 50)

/**
 * What a socket that may have missed events sees once the events flow again: a message sent while
 * they were down, then the close (1012) telling it to reconnect, the replay of that message after
 * `sinceId`, and new messages as they come; nothing logged as an error.
 */
export async function expectCaughtUp(
  t: { app: FastifyInstance; logs: string[] },
  from: { auth: { authorization: string } },
  to: { id: string; token: string },
  socket: Socket,
  sinceId: string,
  ready: () => Promise<{ statusCode: number }>,
) {
  const send = (text: string) => t.app.inject({ method: 'POST', url: '/send', headers: from.auth, payload: { to: to.id, text } })
  expect((await send('while it was down')).statusCode).toBe(201)
  // Listening again, the process closes the sockets that may have missed events...
  await waitUntil(() => socket.closedWith() === 1012)
  expect((await ready()).statusCode).toBe(200)
  // ...and one that reconnects with since gets what it missed, then new events as they come.
  const again = await openSocket(t.app, to.token, sinceId)
  await waitUntil(() => again.events.some((e) => e.type === 'replay.done'))
  expect(again.events.filter((e) => e.type === 'message.created').map((e) => e.data.text)).toEqual(['while it was down'])
  await send('after')
  await waitUntil(() => again.events.some((e) => e.data?.text === 'after'))
  again.ws.close()
  expect(errorLines(t.logs)).toEqual([])
}
