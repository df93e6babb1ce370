import { readdir } from 'node:fs/promises'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { freePort, removeTempDirs, run, startServer, tempDir } from './support/processes.js'

// Two processes on one PGlite folder break it for good: the second one must refuse, say what to
// do, and leave the folder as it was.

afterAll(removeTempDirs)

const cli = async (script: string, args: string[], env: Record<string, string>) => {
  try {
    const { stdout, stderr } = await run(process.execPath, [`dist/src/cli/${script}.js`, ...args], { env: { ...process.env, ...env }, timeout: 60_000 })
    return { code: 0, output: stdout + stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, output: failed.stdout + failed.stderr }
  }
}

describe('the embedded database folder', () => {
  it('is opened by one process: admin, seed and a second server refuse while a server runs, and the data survives', async () => {
    const dataDir = await tempDir()
    const env = { DATA_DIR: dataDir, BCRYPT_COST: '4' }
    const port = await freePort()
    let server = startServer({ ...env, PORT: String(port), HOST: '127.0.0.1' })
    await server.listening()
    const base = `http://127.0.0.1:${port}`
    const account = { email: 'owner@example.com', password: 'a good password', first_name: 'Ona', last_name: 'Owner' }
    expect((await fetch(`${base}/signup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(account) })).status).toBe(201)
    const filesBefore = (await readdir(path.join(dataDir, 'pglite'), { recursive: true })).sort()

    for (const [script, args] of [['admin', ['grant', account.email]], ['seed', ['--workers', '3']]] as const) {
      const refused = await cli(script, [...args], env)
      expect(refused.code, refused.output).toBe(1)
      expect(refused.output).toContain(`The embedded database in ${dataDir} is open in another process (pid ${server.child.pid}`)
      expect(refused.output).toContain('stop that one first')
      expect(refused.output).not.toMatch(/\n\s+at /) // a message, not a stack trace
    }
    const second = startServer({ ...env, PORT: String(await freePort()), HOST: '127.0.0.1' })
    expect(await second.exited).toBe(1)
    expect(second.output()).toContain('is open in another process')

    // The running server never noticed, and its files are the ones it had.
    expect((await fetch(`${base}/health`)).status).toBe(200)
    expect((await readdir(path.join(dataDir, 'pglite'), { recursive: true })).sort()).toEqual(filesBefore)

    server.child.kill('SIGTERM')
    expect(await server.exited).toBe(0)
    const granted = await cli('admin', ['grant', account.email], env)
    expect(granted, granted.output).toMatchObject({ code: 0 })
    expect(granted.output).toContain(`${account.email} is an admin`)

    // Restarted: the account is there, with the role granted while the server was stopped.
    server = startServer({ ...env, PORT: String(port), HOST: '127.0.0.1' })
    await server.listening()
    const signIn = await fetch(`${base}/authorize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: account.email, password: account.password }) })
    expect(signIn.status).toBe(200)
    const { user } = (await signIn.json()) as { user: { roles: string[] } }
    expect(user.roles).toContain('ADMIN')

    // A server killed outright leaves its lock behind; the next start takes it over.
    server.child.kill('SIGKILL')
    await server.exited
    server = startServer({ ...env, PORT: String(port), HOST: '127.0.0.1' })
    await server.listening()
    expect((await fetch(`${base}/health`)).status).toBe(200)
    server.child.kill('SIGTERM')
    expect(await server.exited).toBe(0)
  }, 120_000)
})
