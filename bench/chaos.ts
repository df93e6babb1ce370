// npm run chaos — faults, again and again, under a steady mixed load.
//
// Starts a PostgreSQL cluster and a redis-server of its own (throwaway, on free ports: never the
// shared ones), the API as `WORKERS=2` (dist/src/server.js) on them, and a client that sends a
// steady mix at a fixed arrival rate (open model: sign-ins, searches, location posts, sends, and
// jobs moved from offer to PAID). Then, for each fault, many times over:
//
//   redis-stop      redis-server stopped, down 2 s, started again (20)
//   redis-pause     redis-server paused with SIGSTOP for 5 s (10)
//   pg-restart      PostgreSQL restarted (pg_ctl restart -m fast) (20)
//   worker-kill     one API worker process SIGKILLed; the primary forks another (10)
//   service-restart SIGTERM to the whole service, then started again (10)
//
// For each it prints what users saw (answers by status from the fault to recovery, 500s, 503s
// without Retry-After, the longest wait), the time from the dependency's return until the rate of
// good answers is back to 90% of before, and, at the end, what was lost: every message, job move
// and payment the API said it committed is read back through the API.
//
//   npm run chaos -- [--reps N] [--only redis-stop,pg-restart,...] [--rate 40]
//
// --reps N caps each fault's repetitions (a quick run: --reps 2). PG_BIN names PostgreSQL's
// binaries (default /usr/lib/postgresql/15/bin); run as root, the cluster runs as `postgres`.

import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chownSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import sharp from 'sharp'
import { freePort } from '../test/support/processes.js'

const { values: flags } = parseArgs({
  options: { reps: { type: 'string' }, only: { type: 'string' }, rate: { type: 'string', default: '40' } },
})
const FAULTS = { 'redis-stop': 20, 'redis-pause': 10, 'pg-restart': 20, 'worker-kill': 10, 'service-restart': 10 } as const
type Fault = keyof typeof FAULTS
const chosen = (flags.only ? flags.only.split(',') : Object.keys(FAULTS)) as Fault[]
for (const name of chosen) if (!(name in FAULTS)) throw new Error(`unknown fault ${name}; one of ${Object.keys(FAULTS).join(', ')}`)
const repsOf = (fault: Fault) => Math.min(FAULTS[fault], flags.reps ? Number(flags.reps) : Infinity)
const RATE = Number(flags.rate)
const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin'
const asRoot = process.getuid?.() === 0

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const now = () => performance.now()
const log = (text: string) => process.stdout.write(`${text}\n`)

// --- the stores, our own -----------------------------------------------------------------------

const work = mkdtempSync(path.join(tmpdir(), 'chaos-'))
if (asRoot) chownSync(work, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()))
const asPostgres = (bin: string, args: string[]) => {
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(PG_BIN, bin), ...args]] : [path.join(PG_BIN, bin), args]
  const result = spawnSync(cmd, argv, { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`${bin} ${args.join(' ')}: ${result.stderr || result.stdout}`)
}
const pgData = path.join(work, 'pg')
let pgPort = 0
const pgCtl = (action: string) =>
  asPostgres('pg_ctl', ['-D', pgData, '-l', path.join(work, 'pg.log'), '-w', '-t', '60', '-m', 'fast', '-o', `-p ${pgPort} -k ${work} -c listen_addresses=127.0.0.1 -c max_connections=100`, action])

let redisPort = 0
let redis: ChildProcess | undefined
async function startRedis() {
  redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', work], { stdio: 'ignore' })
  for (let i = 0; i < 100; i++) {
    if (spawnSync('redis-cli', ['-p', String(redisPort), 'ping'], { encoding: 'utf8' }).stdout.trim() === 'PONG') return
    await sleep(50)
  }
  throw new Error('redis-server did not start')
}
async function stopRedis() {
  const child = redis!
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  await exited
}

// --- the API -----------------------------------------------------------------------------------

let apiPort = 0
let api: ChildProcess | undefined
let serverLog = ''
async function startApi(waitFor: 'ready' | 'listening' = 'ready') {
  api = spawn(process.execPath, ['dist/src/server.js'], {
    env: {
      ...process.env,
      DATABASE_URL: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      WORKERS: '2',
      PORT: String(apiPort),
      HOST: '127.0.0.1',
      BCRYPT_COST: '4',
      // The load, not the limits, is under test.
      RATE_LIMIT_MAX: '1000000',
      AUTH_RATE_LIMIT_MAX: '1000000',
      SEND_RATE_LIMIT: '100000',
      SESSIONS_PER_USER: '1000',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  api.stdout!.on('data', (d) => (serverLog += d))
  api.stderr!.on('data', (d) => (serverLog += d))
  await waitReady(300_000, waitFor)
}
/** Until /ready answers 200 (or, for 'listening', answers at all: the load measures the rest). */
async function waitReady(ms: number, waitFor: 'ready' | 'listening' = 'ready') {
  const until = now() + ms
  let status = 0
  while (now() < until) {
    status = await fetch(`http://127.0.0.1:${apiPort}/ready`, { signal: AbortSignal.timeout(5000) }).then((r) => r.status, () => 0)
    if (status === 200 || (waitFor === 'listening' && status !== 0)) return
    await sleep(50)
  }
  throw new Error(`the API is not ready after ${ms} ms (/ready: ${status || 'no answer'}):\n${serverLog.slice(-1000)}`)
}
const workerPids = () => spawnSync('pgrep', ['-P', String(api!.pid)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number)

// --- the client --------------------------------------------------------------------------------

type Outcome = number | 'timeout' | 'refused' | 'reset'
interface Answer { op: string; start: number; end: number; status: Outcome; retryAfter: boolean }
const answers: Answer[] = []
let inFlight = 0

async function call(op: string, method: string, url: string, token: string | undefined, body?: unknown, headers: Record<string, string> = {}) {
  const start = now()
  inFlight++
  let status: Outcome
  let retryAfter = false
  let json: any
  let etag: string | null = null
  try {
    const res = await fetch(`http://127.0.0.1:${apiPort}${url}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined && !(body instanceof Uint8Array) ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body === undefined ? undefined : body instanceof Uint8Array ? (body as unknown as BodyInit) : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    })
    status = res.status
    retryAfter = res.headers.has('retry-after')
    etag = res.headers.get('etag')
    const text = await res.text()
    json = text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code
    status = (error as Error).name === 'TimeoutError' ? 'timeout' : cause === 'ECONNREFUSED' ? 'refused' : 'reset'
  } finally {
    inFlight--
  }
  answers.push({ op, start, end: now(), status, retryAfter })
  return { status, json, etag, ok: typeof status === 'number' && status < 300 }
}

interface User { id: string; email: string; token: string }
const PASSWORD = 'chaos monkey password'
const clients: User[] = []
const workers: User[] = []
const pick = <T>(list: T[]) => list[Math.floor(Math.random() * list.length)]!
const HOME = { lat: 52.52, lon: 13.405 }
const jitter = () => (Math.random() - 0.5) * 0.05

/** What the API said it committed, to read back at the end. */
const committedMessages: { id: string; to: User }[] = []
const STEPS = ['REQUESTED', 'ACCEPTED', 'STARTED', 'COMPLETED', 'PAID'] as const
interface Job { id?: string; client: User; worker: User; status?: (typeof STEPS)[number]; etag?: string; busy: boolean; stale: boolean; committed: string[] }
const jobs: Job[] = []

async function signUp(roles: string[], n: number) {
  const email = `chaos.${roles[0]!.toLowerCase()}.${n}.${Date.now().toString(36)}@example.com`
  const made = await call('setup', 'POST', '/signup', undefined, { email, password: PASSWORD, first_name: 'Chaos', last_name: `${roles[0]} ${n}`, roles })
  if (!made.ok) throw new Error(`sign-up: ${made.status} ${JSON.stringify(made.json)}`)
  const auth = await call('setup', 'POST', '/authorize', undefined, { email, password: PASSWORD })
  return { id: made.json.id as string, email, token: auth.json.access_token as string }
}

async function setUp(pairs: number) {
  const picture = new Uint8Array(await sharp({ create: { width: 64, height: 64, channels: 3, background: '#3a7' } }).png().toBuffer())
  for (let i = 0; i < pairs; i++) {
    clients.push(await signUp(['CLIENT'], i))
    const worker = await signUp(['WORKER'], i)
    const put = await call('setup', 'PUT', '/user/picture', worker.token, picture, { 'content-type': 'image/png' })
    if (!put.ok) throw new Error(`picture: ${put.status} ${JSON.stringify(put.json)}`)
    workers.push(worker)
  }
}

/** The next step of one job: an offer, a move, or re-reading it after an answer that was not 2xx. */
async function moveJob(job: Job) {
  job.busy = true
  try {
    if (!job.id) {
      const res = await call('job', 'POST', '/job', job.client.token, { worker_id: job.worker.id, title: 'Chaos repair', price: { amount: 5000, currency: 'EUR' } })
      if (res.ok) Object.assign(job, { id: res.json.id, status: 'REQUESTED', etag: res.etag, committed: ['REQUESTED'] })
      return
    }
    if (job.stale) {
      const res = await call('job', 'GET', `/job/${job.id}`, job.client.token)
      if (res.ok) Object.assign(job, { status: res.json.status, etag: res.etag, stale: false })
      return
    }
    const next = STEPS[STEPS.indexOf(job.status!) + 1]!
    const [who, to] = next === 'PAID' ? [job.client, 'PENDING_PAYMENT'] : [job.worker, next]
    const res = await call('job', 'POST', `/job/${job.id}/status`, who.token, { status: to }, job.etag ? { 'if-match': job.etag } : {})
    if (res.ok) {
      job.status = res.json.status
      job.etag = res.etag ?? undefined
      job.committed.push(res.json.status)
    } else job.stale = true
  } finally {
    job.busy = false
  }
}

function oneRequest() {
  const roll = Math.random() * 100
  if (roll < 10) {
    const user = pick([...clients, ...workers])
    void call('sign-in', 'POST', '/authorize', undefined, { email: user.email, password: PASSWORD }).then((r) => {
      if (r.ok) user.token = r.json.access_token
    })
  } else if (roll < 40) {
    void call('search', 'GET', `/search?lat=${HOME.lat + jitter()}&lon=${HOME.lon + jitter()}&radius=10000&role=WORKER&limit=20`, pick(clients).token)
  } else if (roll < 65) {
    void call('location', 'POST', '/location', pick(workers).token, { lat: HOME.lat + jitter(), lon: HOME.lon + jitter(), ttl: 600 })
  } else if (roll < 85) {
    const from = pick(clients)
    const to = pick(workers)
    void call('send', 'POST', '/send', from.token, { to: to.id, text: `chaos ${Date.now()}` }).then((r) => {
      if (r.status === 201) committedMessages.push({ id: r.json.id, to })
    })
  } else {
    // Jobs under way move on; finished ones make room for new offers.
    let job = jobs.find((j) => !j.busy && j.status !== 'PAID' && Math.random() < 0.3)
    if (!job && jobs.filter((j) => j.status !== 'PAID').length < 40) {
      job = { client: pick(clients), worker: pick(workers), busy: false, stale: false, committed: [] }
      jobs.push(job)
    }
    if (job && !job.busy) void moveJob(job)
  }
}

let loadRunning = false
async function runLoad() {
  loadRunning = true
  const interval = 1000 / RATE
  let next = now()
  while (loadRunning) {
    // Open model: requests go out on schedule whatever the answers take (bounded, so a hang can't
    // pile up without end).
    if (inFlight < RATE * 20) oneRequest()
    next += interval
    const wait = next - now()
    if (wait > 0) await sleep(wait)
    else if (wait < -1000) next = now()
  }
}

// --- faults and what they did --------------------------------------------------------------------

const good = (a: Answer) => typeof a.status === 'number' && a.status < 400
const goodRate = (from: number, to: number) => answers.filter((a) => a.end >= from && a.end < to && good(a)).length / ((to - from) / 1000)

async function recoveryAfter(backAt: number, baseline: number) {
  // The first 1 s window after the return whose rate of good answers is 90% of the baseline's.
  const limit = backAt + 60_000
  for (;;) {
    const latest = now()
    for (let t = backAt; t + 1000 <= latest; t += 100) {
      if (goodRate(t, t + 1000) >= 0.9 * baseline) return t + 1000 - backAt
    }
    if (latest > limit) return Infinity
    await sleep(250)
  }
}

const FAULT_DO: Record<Fault, () => Promise<number>> = {
  'redis-stop': async () => {
    await stopRedis()
    await sleep(2000)
    await startRedis()
    return now()
  },
  'redis-pause': async () => {
    redis!.kill('SIGSTOP')
    await sleep(5000)
    redis!.kill('SIGCONT')
    return now()
  },
  'pg-restart': async () => {
    pgCtl('restart')
    return now()
  },
  'worker-kill': async () => {
    const pid = pick(workerPids())
    process.kill(pid, 'SIGKILL')
    return now()
  },
  'service-restart': async () => {
    const child = api!
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
    child.kill('SIGTERM')
    const code = await exited
    if (code !== 0) log(`  the service exited ${code} on SIGTERM`)
    const back = now()
    await startApi('listening')
    return back
  },
}

interface Rep { statuses: Map<string, number>; longest: number; recovery: number; errorsLogged: number; withoutRetryAfter: number }

async function repeat(fault: Fault, reps: number) {
  const results: Rep[] = []
  for (let i = 0; i < reps; i++) {
    await sleep(3000)
    const baseline = goodRate(now() - 3000, now())
    const logBefore = serverLog.length
    const start = now()
    const backAt = await FAULT_DO[fault]()
    const recovery = await recoveryAfter(backAt, baseline)
    const end = backAt + Math.min(recovery, 60_000)
    const during = answers.filter((a) => a.end >= start && a.start <= end)
    const statuses = new Map<string, number>()
    for (const a of during) if (!good(a)) statuses.set(String(a.status), (statuses.get(String(a.status)) ?? 0) + 1)
    const errorsLogged = serverLog.slice(logBefore).split('\n').filter((line) => /"level":(5|6)\d/.test(line)).length
    results.push({ statuses, longest: Math.max(0, ...during.map((a) => a.end - a.start)), recovery, errorsLogged, withoutRetryAfter: during.filter((a) => a.status === 503 && !a.retryAfter).length })
    const r = results.at(-1)!
    log(`  ${fault} ${i + 1}/${reps}: baseline ${baseline.toFixed(0)}/s, back to 90% ${(recovery / 1000).toFixed(1)} s after the return, longest wait ${(r.longest / 1000).toFixed(1)} s, not 2xx/3xx: ${[...statuses].map(([s, n]) => `${s}×${n}`).join(' ') || 'none'}`)
  }
  return results
}

async function lost() {
  // Every message said committed is in its recipient's inbox; every job move said committed is
  // in its job's log; every job said PAID is PAID.
  const seen = new Set<string>()
  for (const worker of workers) {
    let cursor: string | undefined
    do {
      const res = await call('check', 'GET', `/inbox?limit=100${cursor ? `&cursor=${cursor}` : ''}`, worker.token)
      if (!res.ok) throw new Error(`inbox: ${res.status}`)
      for (const m of res.json.items) seen.add(m.id)
      cursor = res.json.next_cursor ?? undefined
    } while (cursor)
  }
  const lostMessages = committedMessages.filter((m) => !seen.has(m.id)).length
  let lostMoves = 0
  let lostPayments = 0
  let paid = 0
  for (const job of jobs.filter((j) => j.id)) {
    const res = await call('check', 'GET', `/job/${job.id}`, job.client.token)
    if (!res.ok) throw new Error(`job: ${res.status}`)
    const logged = new Set<string>(res.json.status_log.map((e: { status: string }) => e.status))
    lostMoves += job.committed.filter((s) => !logged.has(s)).length
    if (job.committed.includes('PAID')) {
      paid++
      if (res.json.status !== 'PAID') lostPayments++
    }
  }
  return { messages: committedMessages.length, lostMessages, moves: jobs.reduce((n, j) => n + j.committed.length, 0), lostMoves, paid, lostPayments }
}

async function main() {
  log(`chaos: WORKERS=2 on a PostgreSQL and a redis-server of its own, ${RATE} requests/s; faults: ${chosen.map((f) => `${f} ×${repsOf(f)}`).join(', ')}`)
  execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' })
  ;[pgPort, redisPort, apiPort] = [await freePort(), await freePort(), await freePort()]
  const initdb = ['-D', pgData, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']
  asPostgres('initdb', initdb)
  pgCtl('start')
  await startRedis()
  await startApi()
  await setUp(10)
  log(`PostgreSQL :${pgPort}, Redis :${redisPort}, API :${apiPort}; 10 clients, 10 workers`)

  const load = runLoad()
  const report: [Fault, Rep[]][] = []
  try {
    await sleep(3000)
    for (const fault of chosen) report.push([fault, await repeat(fault, repsOf(fault))])
    await sleep(3000)
  } finally {
    loadRunning = false
    await load
  }
  while (inFlight > 0) await sleep(100)
  await waitReady(30_000)
  const loss = await lost()

  log('\nfault            reps  answers not 2xx/3xx (all reps)                500s  503 w/o Retry-After  errors logged  longest wait  back to 90%: median / max')
  for (const [fault, reps] of report) {
    const statuses = new Map<string, number>()
    for (const r of reps) for (const [s, n] of r.statuses) statuses.set(s, (statuses.get(s) ?? 0) + n)
    const recoveries = reps.map((r) => r.recovery).sort((a, b) => a - b)
    const sec = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : 'never')
    log(
      `${fault.padEnd(16)} ${String(reps.length).padStart(4)}  ${([...statuses].map(([s, n]) => `${s}×${n}`).join(' ') || 'none').padEnd(44)}  ${String(statuses.get('500') ?? 0).padStart(4)}  ${String(reps.reduce((n, r) => n + r.withoutRetryAfter, 0)).padStart(19)}  ${String(reps.reduce((n, r) => n + r.errorsLogged, 0)).padStart(13)}  ${sec(Math.max(...reps.map((r) => r.longest))).padStart(12)}  ${sec(recoveries[Math.floor(recoveries.length / 2)]!)} / ${sec(recoveries.at(-1)!)}`,
    )
  }
  log(`\ncommitted and read back: ${loss.messages} messages (lost ${loss.lostMessages}), ${loss.moves} job moves (lost ${loss.lostMoves}), ${loss.paid} payments (lost ${loss.lostPayments})`)
  const total = answers.filter((a) => a.op !== 'setup' && a.op !== 'check').length
  log(`${total} requests in all; 'refused' and 'reset' are connections no process took (the service restarting), 'timeout' no answer within 15 s`)
  const failed = loss.lostMessages + loss.lostMoves + loss.lostPayments > 0 || report.some(([, reps]) => reps.some((r) => r.statuses.has('500') || r.withoutRetryAfter > 0))
  process.exitCode = failed ? 1 : 0
}

async function cleanUp() {
  if (api && api.exitCode === null) {
    const exited = new Promise((r) => api!.once('exit', r))
    api.kill('SIGTERM')
    await Promise.race([exited, sleep(15_000)])
    api.kill('SIGKILL')
  }
  if (redis && redis.exitCode === null) {
    redis.kill('SIGCONT')
    redis.kill('SIGTERM')
  }
  try {
    pgCtl('stop')
  } catch {}
  rmSync(work, { recursive: true, force: true })
}

main()
  .catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
  .finally(cleanUp)
