import { afterAll, describe, expect, it } from 'vitest'
import { DEMO_PASSWORD } from '../src/cli/demo.js'
import { freePort, removeTempDirs, run, startServer, tempDir } from './support/processes.js'

// `npm run seed -- --demo` as a newcomer runs it: twice, then the server, signing in as the
// people it printed.

afterAll(removeTempDirs)

const seed = async (args: string[], env: Record<string, string>) => {
  try {
    const { stdout, stderr } = await run(process.execPath, ['dist/src/cli/seed.js', ...args], { env: { ...process.env, ...env }, timeout: 120_000 })
    return { code: 0, output: stdout + stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, output: failed.stdout + failed.stderr }
  }
}

describe('npm run seed -- --demo', () => {
  it('makes people who sign in, workers with pictures on the map, conversations and jobs in each state; a second run adds nothing', async () => {
    const env = { DATA_DIR: await tempDir(), BCRYPT_COST: '4' }
    const first = await seed(['--demo', '--workers', '30'], env)
    expect(first.code, first.output).toBe(0)
    expect(first.output).toContain('30/30 workers')
    expect(first.output).toContain(`Demo accounts, password "${DEMO_PASSWORD}"`)
    expect(first.output).toContain('camille@demo.example')
    const second = await seed(['--demo', '--workers', '30'], env)
    expect(second.code, second.output).toBe(0)
    expect(second.output).toContain('Demo accounts (already there)')

    const port = await freePort()
    const server = startServer({ ...env, PORT: String(port), HOST: '127.0.0.1' })
    await server.listening()
    try {
      const api = (path: string, token?: string, init: RequestInit = {}) =>
        fetch(`http://127.0.0.1:${port}${path}`, { ...init, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } })
      const signIn = async (email: string) => {
        const res = await api('/authorize', undefined, { method: 'POST', body: JSON.stringify({ email, password: DEMO_PASSWORD }) })
        expect(res.status, email).toBe(200)
        return ((await res.json()) as { access_token: string }).access_token
      }
      const camille = await signIn('camille@demo.example')
      const omar = await signIn('omar@demo.example')
      const statuses = async (token: string) => ((await (await api('/jobs?role=CLIENT&limit=100', token)).json()) as { items: { status: string }[] }).items.map((j) => j.status)
      expect([...(await statuses(camille)), ...(await statuses(omar))].sort()).toEqual(['ACCEPTED', 'COMPLETED', 'DECLINED', 'PAID', 'REQUESTED', 'STARTED'])
      const conversations = (await (await api('/conversations', camille)).json()) as { items: unknown[] }
      expect(conversations.items.length).toBeGreaterThan(0)

      // Every worker on the map has a picture, seeded ones included, and one of those signs in.
      const found: { user: { id: string; picture_url: string | null } }[] = []
      let cursor: string | null = null
      do {
        const page = (await (await api(`/search?lat=48.8566&lon=2.3522&radius=50000&role=WORKER&limit=100${cursor ? `&cursor=${cursor}` : ''}`, camille)).json()) as { items: typeof found; next_cursor: string | null }
        found.push(...page.items)
        cursor = page.next_cursor
      } while (cursor)
      expect(found).toHaveLength(35) // 5 demo workers and 30 seeded ones, each once after two runs
      expect(found.every((f) => f.user.picture_url !== null)).toBe(true)
      const demoIds = new Set<string>()
      for (const email of ['ana', 'ben', 'chloe', 'dmitri', 'eva']) demoIds.add(((await (await api('/user', await signIn(`${email}@demo.example`))).json()) as { id: string }).id)
      const seeded = found.find((f) => !demoIds.has(f.user.id))!
      await signIn(`worker-${seeded.user.id}@seed.example`)
    } finally {
      server.child.kill('SIGTERM')
      await server.exited
    }
  }, 300_000)

  it('is refused in production', async () => {
    const refused = await seed(['--demo', '--workers', '1'], { DATA_DIR: await tempDir(), NODE_ENV: 'production' })
    expect(refused.code).toBe(1)
    expect(refused.output).toContain('refused where NODE_ENV=production')
  })
})
