import net from 'node:net'

// A TCP proxy on a free loopback port in front of a server, for tests of what a client does when
// the way to the server goes silent: `stall` stops passing bytes either way (connections stay
// open, as behind a network that drops packets), `resume` lets them through again; `cut` closes
// the connections there are (new ones go through).

export interface TcpProxy {
  port: number
  /** `url` with its host and port replaced by the proxy's. */
  through(url: string): string
  stall(): void
  resume(): void
  cut(): void
  close(): Promise<void>
}

type Pair = { client: net.Socket; server: net.Socket }
const flow = (pair: Pair) => {
  pair.client.pipe(pair.server)
  pair.server.pipe(pair.client)
}
const hold = (pair: Pair) => {
  pair.client.unpipe(pair.server)
  pair.server.unpipe(pair.client)
  pair.client.pause()
  pair.server.pause()
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let stalled = false
  const pairs = new Set<Pair>()
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host)
    const pair = { client, server: upstream }
    pairs.add(pair)
    const end = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
    if (stalled) hold(pair)
    else flow(pair)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  return {
    port,
    through(url) {
      const parsed = new URL(url)
      parsed.hostname = '127.0.0.1'
      parsed.port = String(port)
      return parsed.toString()
    },
    stall() {
      stalled = true
      for (const pair of pairs) hold(pair)
    },
    resume() {
      stalled = false
      for (const pair of pairs) flow(pair)
    },
    cut() {
      for (const pair of pairs) {
        pair.client.destroy()
        pair.server.destroy()
      }
    },
    async close() {
      for (const pair of pairs) {
        pair.client.destroy()
        pair.server.destroy()
      }
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
