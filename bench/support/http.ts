// A benchmark's HTTP client: node:http over kept-alive sockets (far cheaper than fetch, whose own
// cost would count against the server), and signing up users through the API.

import http from 'node:http'

export interface BenchUser { id: string; token: string }

export function benchHttp(maxSockets: number, password: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets })

  function call(base: string, method: string, path: string, token: string | undefined, body?: unknown, contentType = 'application/json', extraHeaders: Record<string, string> = {}): Promise<{ status: number; json: any }> {
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body))
    return new Promise((resolve, reject) => {
      const req = http.request(`${base}${path}`, {
        method,
        agent,
        headers: {
          ...(payload ? { 'content-type': contentType, 'content-length': payload.length } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...extraHeaders,
        },
      }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString()
          resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : null })
        })
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end(payload)
    })
  }

  async function signUp(base: string, tag: string, i: number, roles: string[]): Promise<BenchUser> {
    const email = `bench.${tag}.${i}.${Date.now().toString(36)}@example.com`
    const signup = await call(base, 'POST', '/signup', undefined, { email, password, first_name: 'Bench', last_name: `${tag} ${i}`, roles })
    if (signup.status !== 201) throw new Error(`sign-up failed: ${JSON.stringify(signup.json)}`)
    const login = await call(base, 'POST', '/authorize', undefined, { email, password })
    if (login.status !== 200) throw new Error(`sign-in failed: ${JSON.stringify(login.json)}`)
    return { id: signup.json.id, token: login.json.access_token }
  }

  return { call, signUp, close: () => agent.destroy() }
}
