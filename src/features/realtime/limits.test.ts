import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'ws'
import { newUser, startTwoApps } from '../../../test/support/app.js'

// The bounds on sockets, on two processes: A keeps at most 2 sockets per user, B at most 2 in all.

let a: string
let b: string
let appA: FastifyInstance
let closeApps: () => Promise<void>

beforeAll(async () => {
  const { apps, close } = await startTwoApps([{ wsMaxPerUser: 2 }, { wsMaxConnections: 2 }])
  closeApps = close
  const listening = async (app: FastifyInstance) => {
    await app.listen({ port: 0, host: '127.0.0.1' })
    return `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws`
  }
  appA = apps[0]
  a = await listening(apps[0])
  b = await listening(apps[1])
})

afterAll(async () => closeApps?.())

interface Client {
  ws: WebSocket
  events: { type: string; data: unknown }[]
  closed: Promise<{ code: number; reason: string }>
}

interface Refusal {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** Opens a socket; rejects with the status, headers and body of a refused upgrade. */
function connect(url: string, token: string): Promise<Client> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } })
  const events: Client['events'] = []
  ws.on('message', (data) => events.push(JSON.parse(String(data))))
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })))
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve({ ws, events, closed }))
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => reject({ status: res.statusCode ?? 0, headers: res.headers, body } satisfies Refusal))
    })
    ws.on('error', reject)
  })
}

describe('WebSocket limits', () => {
  it('closes a user\'s oldest socket with 4008 when the user opens one more than WS_MAX_PER_USER', async () => {
    const [alice, bob] = [await newUser(appA), await newUser(appA)]
    const bobSocket = await connect(a, bob.token)
    const first = await connect(a, alice.token)
    const second = await connect(a, alice.token)
    const third = await connect(a, alice.token)
    const { code, reason } = await Promise.race([first.closed, sleep(5000, { code: 0, reason: 'still open after 5 s' })])
    expect(code).toBe(4008)
    expect(reason).toBe('too many sockets for this user')
    // The newer two, and other users' sockets, stay and still get events.
    await appA.platform.live.events.publish({ to: [alice.id, bob.id], type: 'job.updated', data: { id: 'job-1' } })
    for (const socket of [second, third, bobSocket]) {
      await expect.poll(() => socket.events).toEqual([{ type: 'job.updated', data: { id: 'job-1' } }])
      expect(socket.ws.readyState).toBe(WebSocket.OPEN)
    }
    expect(first.events).toEqual([])
    for (const socket of [second, third, bobSocket]) socket.ws.close()
  })

  it('refuses an upgrade past WS_MAX_CONNECTIONS with 503 problem+json and Retry-After, and takes one again when a socket closes', async () => {
    const [alice, bob, carol] = [await newUser(appA), await newUser(appA), await newUser(appA)]
    const held = [await connect(b, alice.token), await connect(b, bob.token)]
    const refused = (await connect(b, carol.token).then(
      () => expect.unreachable('the third socket was accepted'),
      (error: Refusal) => error,
    )) as Refusal
    expect(refused.status).toBe(503)
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0)
    expect(JSON.parse(refused.body)).toMatchObject({ status: 503, code: 'too_many_sockets' })
    // The sockets held are untouched; once one closes there is room again.
    for (const socket of held) expect(socket.ws.readyState).toBe(WebSocket.OPEN)
    held[0]!.ws.close()
    await held[0]!.closed
    await expect.poll(async () => {
      const socket = await connect(b, carol.token).catch(() => undefined)
      socket?.ws.close()
      return socket !== undefined
    }).toBe(true)
    held[1]!.ws.close()
  })
})
