import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { newUser, problem, startTwoApps, type SignedIn } from './support/app.js'
import { deleteRedisKeys, TEST_REDIS_URL } from './support/backends.js'
import { startRedisCluster, type RedisCluster } from './support/redis-cluster.js'

// Two API processes (two buildApp instances, each listening) whose live store is one Redis
// Cluster of three masters: what one process writes or sends, the other reads or delivers.
// The live store's contract suites run on such a cluster too (test/support/backends.ts).

interface Socket {
  ws: WebSocket
  of(type: string): any[]
}

describe.runIf(TEST_REDIS_URL)('two API processes on a 3-node Redis Cluster', () => {
  let cluster: RedisCluster
  let a: FastifyInstance
  let b: FastifyInstance
  let prefix: string
  let closeApps: (() => Promise<void>) | undefined
  const urls = new Map<FastifyInstance, string>()

  beforeAll(async () => {
    cluster = await startRedisCluster()
    const started = await startTwoApps([{}, {}], { REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' })
    closeApps = started.close
    prefix = started.config.redisPrefix
    ;[a, b] = started.apps
    for (const app of started.apps) {
      await app.listen({ port: 0, host: '127.0.0.1' })
      urls.set(app, `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws`)
    }
  })

  afterAll(async () => {
    try {
      await closeApps?.()
    } finally {
      await cluster?.stop()
    }
  })

  const connect = (app: FastifyInstance, who: SignedIn) =>
    new Promise<Socket>((resolve, reject) => {
      const ws = new WebSocket(urls.get(app)!, { headers: who.auth })
      const events: { type: string; data: any }[] = []
      ws.on('message', (data) => events.push(JSON.parse(String(data))))
      ws.on('open', () => resolve({ ws, of: (type) => events.filter((e) => e.type === type).map((e) => e.data) }))
      ws.on('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)))
      ws.on('error', reject)
    })
  const send = (app: FastifyInstance, from: SignedIn, to: string, text: string) =>
    app.inject({ method: 'POST', url: '/send', headers: from.auth, payload: { to, text } })

  it('delivers messages sent through one process to the receiver\'s socket on the other, in order', async () => {
    const [alice, bob] = [await newUser(a), await newUser(a)]
    const bobSocket = await connect(b, bob)
    const aliceSocket = await connect(a, alice)
    const sent = []
    for (const text of ['Hi! Free on Saturday?', 'It is a leaking tap', 'In Lyon']) {
      const res = await send(a, alice, bob.id, text)
      expect(res.statusCode, res.body).toBe(201)
      sent.push(res.json())
    }
    await expect.poll(() => bobSocket.of('message.created').length).toBe(3)
    expect(bobSocket.of('message.created')).toEqual(sent)
    // And back the other way, with the read receipt.
    const reply = (await send(b, bob, alice.id, 'Saturday works')).json()
    await expect.poll(() => aliceSocket.of('message.created').map((m) => m.id)).toContain(reply.id)
    expect((await b.inject({ method: 'POST', url: '/inbox/read', headers: bob.auth, payload: { up_to: sent[2].id } })).statusCode).toBe(204)
    await expect.poll(() => aliceSocket.of('message.read')).toEqual([expect.objectContaining({ by: bob.id, up_to: sent[2].id })])
    bobSocket.ws.close()
    aliceSocket.ws.close()
  })

  it('finds a worker that went on the map through the other process, until it signs out there', async () => {
    const worker = await newUser(a, { roles: ['WORKER'], first_name: 'Wanda' })
    const client = await newUser(b)
    const at = { lat: 45.764, lon: 4.8357 }
    expect((await a.inject({ method: 'POST', url: '/location', headers: worker.auth, payload: at })).statusCode).toBe(200)
    const search = () => b.inject({ method: 'GET', url: '/search', headers: client.auth, query: { lat: '45.77', lon: '4.84', radius: '5000' } })
    const found = (await search()).json().items
    expect(found).toEqual([expect.objectContaining({ user: expect.objectContaining({ id: worker.id, first_name: 'Wanda' }) })])
    expect(found[0].distance_m).toBeGreaterThan(0)
    expect(found[0].distance_m).toBeLessThan(1500)

    // Signed out through B: the token stops working through A at once, and the worker is off the map.
    expect((await b.inject({ method: 'DELETE', url: '/authorize', headers: worker.auth })).statusCode).toBe(204)
    problem(await a.inject({ method: 'GET', url: '/user', headers: worker.auth }), 401)
    expect((await search()).json().items).toEqual([])
  })

  it('spreads the live state over every master, and its keys go with the prefix', async () => {
    const user = await newUser(a)
    // Sixty tickets: sixty keys in random slots.
    for (let i = 0; i < 60; i++) expect((await b.inject({ method: 'POST', url: '/ws/ticket', headers: user.auth })).statusCode).toBe(201)
    const keysPerMaster = async () =>
      Promise.all(cluster.ports.map(async (port) => {
        const node = new Redis({ host: '127.0.0.1', port, lazyConnect: true })
        try {
          await node.connect()
          const keys: string[] = []
          let cursor = '0'
          do {
            const [next, found] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
            cursor = next
            keys.push(...found)
          } while (cursor !== '0')
          return keys.length
        } finally {
          node.disconnect()
        }
      }))
    for (const count of await keysPerMaster()) expect(count).toBeGreaterThan(0)
    // The apps write in the background (rate-limit counts every 100 ms): they stop first.
    await Promise.all([a.close(), b.close()])
    await deleteRedisKeys(cluster.url, prefix, true)
    expect(await keysPerMaster()).toEqual([0, 0, 0])
  })
})
