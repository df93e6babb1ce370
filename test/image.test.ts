import { execFile, spawn, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createScratchDatabase, deleteRedisKeys, TEST_DATABASE_URL, TEST_REDIS_URL, uniqueName } from './support/backends.js'
import { freePort } from './support/processes.js'
import { waitUntil } from './support/wait.js'

// The Dockerfile, built without a container engine (`podman build --isolation chroot`), looked
// into, and its entry command run from the image's own file system (`podman image mount`, then
// chroot with the host's kernel) against the test PostgreSQL and Redis.
//
// Docker Hub can't be reached from every machine: unless IMAGE_BASE names a base to use (the
// official node:24-bookworm-slim where it can be pulled), the image builds on a local stand-in of
// it, scripts/image-base.sh (Debian bookworm plus the project's Node 24), made once and kept.

const run = promisify(execFile)
const STAND_IN = 'localhost/node-standin:24-bookworm-slim'
const BASE = process.env.IMAGE_BASE || STAND_IN
const TAG = 'localhost/freelancer-api:test'

const hasPodman = spawnSync('podman', ['--version']).status === 0
const skipReason = !hasPodman
  ? 'podman is not installed (apt-get install -y podman)'
  : process.getuid?.() !== 0
    ? 'building on chroot isolation and mounting the image need root'
    : !TEST_DATABASE_URL || !TEST_REDIS_URL
      ? 'the image runs against TEST_DATABASE_URL and TEST_REDIS_URL'
      : undefined

if (skipReason) {
  // CI installs podman and runs as root: there a skip would hide a broken image.
  if (process.env.CI === 'true' && TEST_DATABASE_URL && TEST_REDIS_URL) {
    it('the image test runs in CI', () => {
      throw new Error(`the image test can't run: ${skipReason}`)
    })
  } else {
    console.warn(`skipped test/image.test.ts (the image): ${skipReason}`)
  }
}

const podman = (...args: string[]) => run('podman', args, { maxBuffer: 64 * 1024 * 1024, timeout: 900_000 })

describe.skipIf(skipReason)('the image', () => {
  let rootfs = ''
  let config: { User: string; Cmd: string[]; Entrypoint: string[] | null; WorkingDir: string; Env: string[]; Healthcheck?: { Test: string[] } }

  beforeAll(async () => {
    if (BASE === STAND_IN && (await podman('image', 'exists', STAND_IN).then(() => false, () => true))) {
      console.log(`building the stand-in base ${STAND_IN} (once; kept in podman's storage)`)
      await run('scripts/image-base.sh', [STAND_IN], { timeout: 900_000 })
    }
    const started = Date.now()
    // --format docker keeps HEALTHCHECK (the OCI format has no field for it).
    await podman('build', '--isolation', 'chroot', '--network', 'host', '--format', 'docker', '--build-arg', `NODE_IMAGE=${BASE}`, '-t', TAG, '.')
    const [inspected] = JSON.parse((await podman('image', 'inspect', TAG)).stdout)
    // podman answers HEALTHCHECK beside Config; docker inside it.
    config = { ...inspected.Config, Healthcheck: inspected.Healthcheck ?? inspected.Config.Healthcheck }
    console.log(`built ${TAG} on ${BASE} in ${((Date.now() - started) / 1000).toFixed(0)} s: ${(inspected.Size / 1e6).toFixed(0)} MB`)
    rootfs = (await podman('image', 'mount', TAG)).stdout.trim()
  }, 1_800_000)

  afterAll(async () => {
    if (rootfs) await podman('image', 'unmount', TAG)
  })

  const inImage = (...parts: string[]) => path.join(rootfs, ...parts)

  it('runs as the unprivileged node user, from code it cannot rewrite', () => {
    expect(config.User).toBe('node')
    const passwd = readFileSync(inImage('etc/passwd'), 'utf8')
    expect(passwd).toMatch(/^node:x:1000:1000:/m)
    expect(statSync(inImage('app/dist/src/server.js')).uid).toBe(0)
    expect(statSync(inImage('app/node_modules')).uid).toBe(0)
  })

  it('holds production dependencies only, and no second Node', () => {
    // What the lockfile marks dev only: needed by no production dependency (ws, say, is both).
    const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, { dev?: boolean }> }
    const devOnly = Object.entries(lock.packages).filter(([where, entry]) => entry.dev && where.startsWith('node_modules/')).map(([where]) => where)
    expect(devOnly).toContain('node_modules/vitest')
    expect(devOnly.filter((where) => existsSync(inImage('app', where)))).toEqual([])
    expect(existsSync(inImage('app/node_modules/fastify'))).toBe(true)
    // The npm `node` package (a 100 MB binary) is how the repository pins Node; the image has its own.
    expect(existsSync(inImage('app/node_modules/node'))).toBe(false)
  })

  it('holds the built code, without sources of tests, benchmarks or TypeScript', () => {
    expect(readdirSync(inImage('app')).sort()).toEqual(['dist', 'node_modules', 'package.json'])
    const files: string[] = []
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name)
        if (entry.isDirectory()) walk(full)
        else files.push(path.relative(inImage('app/dist'), full))
      }
    }
    walk(inImage('app/dist'))
    expect(files).toContain('src/server.js')
    expect(files.filter((f) => /\.test\.|(^|\/)(test|bench)\//.test(f))).toEqual([])
    expect(files.filter((f) => f.endsWith('.ts'))).toEqual([])
  })

  it('starts Node itself as its entry, checks /ready as its health, and stops on SIGTERM', async () => {
    expect(config.Entrypoint ?? []).toEqual([])
    expect(config.Cmd).toEqual(['node', 'dist/src/server.js'])
    expect(config.Healthcheck?.Test.slice(0, 2)).toEqual(['CMD', 'node'])

    const database = await createScratchDatabase(TEST_DATABASE_URL!)
    const prefix = `${uniqueName()}:`
    const port = await freePort()
    const env = [...config.Env, `DATABASE_URL=${database.url}`, `REDIS_URL=${TEST_REDIS_URL}`, `REDIS_PREFIX=${prefix}`, `PORT=${port}`, 'HOST=127.0.0.1', 'WORKERS=2']
    // The image's file system as root, the image's user, working folder, environment and command:
    // what a container engine would run, less the namespaces.
    const inContainer = (command: string[]) => ['--userspec=1000:1000', rootfs, '/usr/bin/env', '-i', '-C', config.WorkingDir, ...env, ...command]
    const server = spawn('chroot', inContainer(config.Cmd), { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    server.stdout.on('data', (d) => (output += d))
    server.stderr.on('data', (d) => (output += d))
    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)))
    try {
      await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.status, () => 0)) === 200, 120_000).catch((error: Error) => {
        throw new Error(`${error.message}; the server printed:\n${output.slice(-4000)}`)
      })
      const ready = await (await fetch(`http://127.0.0.1:${port}/ready`)).json()
      expect(ready).toMatchObject({ status: 'ready', database: 'postgres', live_store: 'redis' })
      expect(output).toContain('starting 2 workers')
      await waitUntil(() => (output.match(/worker \d+ listening/g) ?? []).length === 2, 60_000)

      // The HEALTHCHECK, as the engine runs it in the container.
      const health = spawnSync('chroot', inContainer(config.Healthcheck!.Test.slice(1)), { timeout: 30_000 })
      expect(health.status).toBe(0)

      server.kill('SIGTERM')
      expect(await exited).toBe(0)
      expect(output).toContain('shut down')
    } finally {
      server.kill('SIGKILL')
      await database.drop()
      await deleteRedisKeys(TEST_REDIS_URL!, prefix)
    }
  }, 180_000)
})
