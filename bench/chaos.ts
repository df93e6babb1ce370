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
// and payment the API said it committed is read back through the API. Under each repetition, the
// steps of the way back in seconds from the return: for a restart, the spawn, each worker
// listening, /ready answering and at 200, the first good answer and 90%.
//
//   npm run chaos -- [--reps N] [--only redis-stop,pg-restart,...] [--rate 40]
//
// --reps N caps each fault's repetitions (a quick run: --reps 2). PG_BIN names PostgreSQL's
// binaries (default /usr/lib/postgresql/15/bin); run as root, the cluster runs as `postgres`.

import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { freePort } from '../test/support/processes.js'
import { LOAD_SETTINGS, Marketplace } from './support/marketplace.js'

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
/** When the service's output said a worker listens (the primary prints one line per worker). */
const listenedAt: number[] = []
let scanned = 0
const noteOutput = (d: Buffer) => {
  serverLog += d
  const lines = serverLog.slice(scanned).split('\n')
  lines.pop() // a line not whole yet is read with the next chunk
  for (const line of lines) {
    scanned += line.length + 1
    if (/^worker \d+ listening/.test(line)) listenedAt.push(now())
  }
}
let spawnedAt = 0
async function startApi(waitFor: 'ready' | 'listening' = 'ready') {
  spawnedAt = now()
  api = spawn(process.execPath, ['dist/src/server.js'], {
    env: {
      ...process.env,
      DATABASE_URL: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      WORKERS: '2',
      PORT: String(apiPort),
      HOST: '127.0.0.1',
      // The load, not the limits, is under test.
      ...LOAD_SETTINGS,
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  api.stdout!.on('data', noteOutput)
  api.stderr!.on('data', noteOutput)
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

const market = new Marketplace(() => apiPort)
const answers = market.answers
type Answer = (typeof answers)[number]
// Sign-ins, searches, location posts, sends; the remaining 15% move jobs from offer to PAID.
const MIX = { signIn: 10, search: 30, location: 25, send: 20, inbox: 0 }
let loadRunning = false
const runLoad = () => {
  loadRunning = true
  return market.run(MIX, RATE, () => loadRunning)
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
    // One worker at a time: the one forked after the last kill listens first (a slow start on a
    // busy machine would otherwise make this a kill of both).
    for (let i = 0; i < 600 && !workerPids().every((pid) => serverLog.includes(`worker ${pid} listening`)); i++) await sleep(100)
    const pids = workerPids()
    const pid = pids[Math.floor(Math.random() * pids.length)]!
    const listened = listenedAt.length
    process.kill(pid, 'SIGKILL')
    const killed = now()
    marks = () => [['the new worker listens', listenedAt[listened]]]
    return killed
  },
  'service-restart': async () => {
    const child = api!
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
    const term = now()
    child.kill('SIGTERM')
    const code = await exited
    if (code !== 0) log(`  the service exited ${code} on SIGTERM`)
    const back = now()
    const listened = listenedAt.length
    await startApi('listening')
    const answered = now()
    let ready: number | undefined
    void waitReady(300_000).then(() => (ready = now()), () => {})
    marks = () => [
      ['SIGTERM', term],
      ['spawned', spawnedAt],
      ['1st worker listens', listenedAt[listened]],
      ['2nd', listenedAt[listened + 1]],
      ['/ready answers', answered],
      ['/ready 200', ready],
    ]
    return back
  },
}
/** What the last fault noted on the way back, for its line (times from performance.now()). */
let marks: () => [string, number | undefined][] = () => []

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
    const firstGood = Math.min(...during.filter((a) => a.end >= backAt && good(a)).map((a) => a.end))
    // A step may come after the recovery (a killed worker's successor listens while the other serves).
    for (let i = 0; i < 300 && marks().some(([, at]) => at === undefined); i++) await sleep(100)
    const steps = [...marks(), ['1st good answer', firstGood] as [string, number], ['90%', backAt + recovery] as [string, number]]
    marks = () => []
    const statuses = new Map<string, number>()
    for (const a of during) if (!good(a)) statuses.set(String(a.status), (statuses.get(String(a.status)) ?? 0) + 1)
    const errorsLogged = serverLog.slice(logBefore).split('\n').filter((line) => /"level":(5|6)\d/.test(line)).length
    results.push({ statuses, longest: Math.max(0, ...during.map((a) => a.end - a.start)), recovery, errorsLogged, withoutRetryAfter: during.filter((a) => a.status === 503 && !a.retryAfter).length })
    const r = results.at(-1)!
    log(`  ${fault} ${i + 1}/${reps}: baseline ${baseline.toFixed(0)}/s, back to 90% ${(recovery / 1000).toFixed(1)} s after the return, longest wait ${(r.longest / 1000).toFixed(1)} s, not 2xx/3xx: ${[...statuses].map(([s, n]) => `${s}×${n}`).join(' ') || 'none'}`)
    // Each step of the way back, in seconds from the return (the fault's own steps first).
    log(`    ${steps.map(([step, at]) => `${step} ${at === undefined || !Number.isFinite(at) ? '-' : `${((at - backAt) / 1000).toFixed(1)}`}`).join(', ')}`)
  }
  return results
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
  await market.setUp(10)
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
  while (market.inFlight > 0) await sleep(100)
  await waitReady(30_000)
  const loss = await market.lost()

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
  const logFile = path.join(tmpdir(), `chaos-server-${Date.now()}.log`)
  writeFileSync(logFile, serverLog)
  log(`the service's log (warnings and errors, and what each start printed): ${logFile}`)
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
