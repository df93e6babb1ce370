// npm run bench:messaging — instant messaging end to end, on PostgreSQL and Redis.
//
// Two API processes (bench/app-server.ts, each the whole app) share one scratch database and
// one Redis. The benchmark connects BENCH_CLIENTS WebSocket clients (signed-in users, spread over
// both processes), sends BENCH_RATE messages a second for BENCH_DURATION seconds through
// POST /send (through either process, to a random user, so half cross processes), after
// BENCH_WARMUP seconds of the same sends unrecorded (pools grown, statements prepared, code
// compiled, as in servers already in service), and measures:
//   - the rate held, and POST /send latency;
//   - CPU time a message in the API processes, PostgreSQL (a local server: all its processes, and
//     those of the scratch database's connections alone, which other work on the server leaves out),
//     Redis and the load generator; the app's statements and the server's commits a message;
//   - delivery latency: from the send call to the receiver's socket (p50/p99), and messages lost;
//   - server memory per 1,000 idle connections (RSS after a full GC, before and after connecting);
//   - GET /inbox latency (p50/p99, req/s) for a user with BENCH_INBOX_MESSAGES messages.
// Baselines in the same run: a raw Redis pub/sub round trip at the same rate (ioredis), and the
// inbox's SQL run raw through `pg` at the same concurrency.
//
// Settings (environment): BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/postgres),
// BENCH_REDIS_URL (redis://127.0.0.1:6379), BENCH_CLIENTS (5000), BENCH_RATE (1000),
// BENCH_DURATION (20 s), BENCH_WARMUP (5 s), BENCH_INBOX_MESSAGES (100000), BENCH_INBOX_DURATION (10 s),
// BENCH_INBOX_CONNECTIONS (10), BENCH_DB_POOL_SIZE (20, per API process); BENCH_CPU_PROF=<dir> writes the API processes' CPU profiles there.

import { randomBytes } from 'node:crypto'
import os from 'node:os'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import autocannon from 'autocannon'
import cliProgress from 'cli-progress'
import { Redis } from 'ioredis'
import { sql } from 'kysely'
import pg from 'pg'
import { v7 as uuidv7 } from 'uuid'
import { WebSocket } from 'ws'
import '../src/features/accounts/store.js'
import '../src/features/messaging/store.js'
import { encodeCursor } from '../src/http/cursor.js'
import { openDatabase } from '../src/platform/db/index.js'
import { createRedisLiveStore } from '../src/platform/live/redis/index.js'
import { hashToken } from '../src/features/sessions/service.js'
import { createScratchDatabase, deleteRedisKeys } from '../test/support/backends.js'
import { commandMicros, processMicros } from './support/cpu.js'
import { BenchServer, cpuProfileArgs, redisCpuSeconds } from './support/server.js'
import { positiveSetting } from './support/settings.js'

const env = process.env
const DATABASE_URL = env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const REDIS_URL = env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const CLIENTS = positiveSetting('BENCH_CLIENTS', 5000)
const RATE = positiveSetting('BENCH_RATE', 1000)
const DURATION = positiveSetting('BENCH_DURATION', 20)
const WARMUP = positiveSetting('BENCH_WARMUP', 5)
const INBOX_MESSAGES = positiveSetting('BENCH_INBOX_MESSAGES', 100_000)
const INBOX_DURATION = positiveSetting('BENCH_INBOX_DURATION', 10)
const INBOX_CONNECTIONS = positiveSetting('BENCH_INBOX_CONNECTIONS', 10)
/** The inbox user has read all but the newest this many (a user who keeps up). */
const INBOX_UNREAD = 100

const REDIS_PREFIX = `fl_bench_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}:`

// ---------------------------------------------------------------------------------------------
// Figures

const percentile = (values: number[], p: number) => {
  if (values.length === 0) return NaN
  const sorted = Float64Array.from(values).sort()
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}
const ms = (n: number) => (Number.isFinite(n) ? `${n.toFixed(1)} ms` : 'n/a')
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`

const bars = new cliProgress.MultiBar(
  { format: '  {label} |{bar}| {value}/{total} {unit}  {info}', barsize: 24, hideCursor: true, clearOnComplete: false, noTTYOutput: true, notTTYSchedule: 2_000 },
  cliProgress.Presets.shades_classic,
)
const bar = (label: string, total: number, unit: string) => bars.create(total, 0, { label: label.padEnd(40), unit, info: '' })

/** A bar that fills with time over `seconds`, showing `info()`. */
function timed(label: string, seconds: number, info: () => string) {
  const b = bar(label, Math.round(seconds), 's')
  const started = Date.now()
  const timer = setInterval(() => b.update(Math.min(Math.round((Date.now() - started) / 1000), Math.round(seconds)), { info: info() }), 500)
  return () => {
    clearInterval(timer)
    b.update(Math.round(seconds), { info: info() })
    b.stop()
  }
}

// ---------------------------------------------------------------------------------------------
// CPU time spent so far, in microseconds, by each part: the API processes, PostgreSQL's processes
// (read from /proc, so only for a server on this machine: null elsewhere), Redis, and this one.

function postgresMicros(): number | null {
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(new URL(DATABASE_URL).hostname)) return null
  return commandMicros('postgres')
}

/** CPU so far of each server process connected to the scratch database, in microseconds, by pid: what other databases' work on a shared server does not reach. */
async function backendMicros(pool: pg.Pool): Promise<Map<number, number>> {
  const byPid = new Map<number, number>()
  if (postgresMicros() === null) return byPid
  const { rows } = await pool.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database()')
  for (const { pid } of rows) {
    const micros = processMicros(pid)
    if (micros !== undefined) byPid.set(pid, micros)
  }
  return byPid
}

async function cpuNow(servers: AppServer[], redis: Redis) {
  const redisSeconds = await redisCpuSeconds(redis)
  const own = process.cpuUsage()
  return {
    api: (await Promise.all(servers.map((s) => s.cpuMicros()))).reduce((a, b) => a + b, 0),
    postgres: postgresMicros(),
    redis: redisSeconds * 1e6,
    generator: own.user + own.system,
  }
}

// ---------------------------------------------------------------------------------------------
// The two API processes

type Statements = Record<string, { count: number; ms: number }>
type AppServer = BenchServer<{ type: 'statements'; statements: Statements }, { type: 'statements' }>
/** The statements a process ran through the app's Kysely so far, by first word (the queue's own are not among them). */
const statementsSoFar = async (server: AppServer) => (await server.request<{ type: 'statements'; statements: Statements }>({ type: 'statements' }, 'statements')).statements
/** Transactions the server ended in the scratch database (a statement outside one counts as one), the queue's included; its statistics lag up to a second. */
const commitsSoFar = async (pool: pg.Pool) => Number((await pool.query<{ n: string }>('SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()')).rows[0]!.n)
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ')

const startServer = (settings: Record<string, string>) =>
  BenchServer.start<{ type: 'statements'; statements: Statements }, { type: 'statements' }>(new URL('./app-server.ts', import.meta.url), {
    name: 'API',
    env: settings,
    execArgv: ['--expose-gc', ...cpuProfileArgs()],
  })

// ---------------------------------------------------------------------------------------------

async function main() {
  const loadBefore = load()
  console.log(`bench:messaging — ${CLIENTS} WebSocket clients over 2 API processes, ${RATE} msg/s for ${DURATION} s, inbox of ${INBOX_MESSAGES} messages`)
  // Scratch database, migrated by opening it.
  const scratch = await createScratchDatabase(DATABASE_URL)
  const dbUrl = new URL(scratch.url)
  console.log(`PostgreSQL ${dbUrl.host}, Redis ${REDIS_URL}; database ${dbUrl.pathname.slice(1)}, key prefix ${REDIS_PREFIX}\n`)
  const database = await openDatabase({ databaseUrl: scratch.url, dataDir: '', poolSize: 10 })
  const { db } = database
  const live = await createRedisLiveStore(REDIS_URL, REDIS_PREFIX)
  const servers: AppServer[] = []
  const sockets: WebSocket[] = []

  try {
    // ---- Users, signed in (sessions written straight to the database, as /authorize would).
    const users: { id: string; token: string }[] = Array.from({ length: CLIENTS + 1 }, () => ({ id: uuidv7(), token: randomBytes(32).toString('base64url') }))
    const seeding = bar('users and sessions', users.length, '')
    for (let i = 0; i < users.length; i += 2000) {
      await db
        .insertInto('users')
        .values(users.slice(i, i + 2000).map((u, j) => ({ id: u.id, email: `bench${i + j}@example.com`, first_name: 'Bench', last_name: `User ${i + j}`, password_hash: null, roles: ['CLIENT' as const], email_confirmed_at: new Date() })))
        .execute()
    }
    const now = Date.now()
    for (let i = 0; i < users.length; i += 2000) {
      await db
        .insertInto('sessions')
        .values(
          users.slice(i, i + 2000).map((u) => ({
            token_hash: hashToken(u.token),
            id: uuidv7(),
            user_id: u.id,
            user_agent: 'bench',
            created_at: new Date(now),
            last_used_at: new Date(now),
            expires_at: new Date(now + 3_600_000),
            max_expires_at: new Date(now + 3_600_000),
            sessions_version: 0,
          })),
        )
        .execute()
      seeding.update(Math.min(i + 2000, users.length))
    }
    seeding.stop()
    const inboxUser = users[CLIENTS]!
    const clients = users.slice(0, CLIENTS)

    // ---- The inbox user's history: INBOX_MESSAGES messages from 100 senders, all but the newest read.
    const filling = bar('inbox history', INBOX_MESSAGES, 'messages')
    const senders = clients.slice(0, Math.min(100, clients.length))
    const last = new Map<string, string>()
    const historyIds: string[] = []
    const started = Date.now() - INBOX_MESSAGES * 1000
    for (let i = 0; i < INBOX_MESSAGES; i += 5000) {
      const rows = Array.from({ length: Math.min(5000, INBOX_MESSAGES - i) }, (_, j) => {
        const sender = senders[(i + j) % senders.length]!.id
        const id = uuidv7()
        last.set(sender, id)
        historyIds.push(id)
        return { id, sender_id: sender, recipient_id: inboxUser.id, text: `History message ${i + j}: see you at nine at the usual place.`, kind: 'user' as const, job_id: null, created_at: new Date(started + (i + j) * 1000), read_at: null }
      })
      await db.insertInto('messages').values(rows).execute()
      filling.update(i + rows.length)
    }
    filling.stop()
    await db
      .insertInto('conversations')
      .values([...last].flatMap(([sender, id]) => [{ user_id: inboxUser.id, peer_id: sender, last_message_id: id }, { user_id: sender, peer_id: inboxUser.id, last_message_id: id }]))
      .execute()
    const readUpTo = historyIds[Math.max(0, historyIds.length - INBOX_UNREAD - 1)]!
    await db.updateTable('messages').set({ read_at: new Date() }).where('recipient_id', '=', inboxUser.id).where('id', '<=', readUpTo).execute()
    // The history's notifications went out long ago: its events (recorded by the messages' insert
    // trigger) are not left for the relay to work through during the measured sends.
    await sql`DELETE FROM notification_events`.execute(db)
    await sql`VACUUM ANALYZE messages`.execute(db)

    // ---- Two API processes.
    const settings = {
      DATABASE_URL: dbUrl.toString(),
      REDIS_URL,
      REDIS_PREFIX,
      LOG_LEVEL: 'warn',
      RATE_LIMIT_MAX: '10000000',
      SEND_RATE_LIMIT: '1000000',
      DB_POOL_SIZE: env.BENCH_DB_POOL_SIZE ?? '20',
      BCRYPT_COST: '4',
    }
    servers.push(await startServer(settings), await startServer(settings))
    // Warm both processes up (JIT, pools, caches) so that the memory baseline is a working server's.
    const warming = bar('warm-up', 400, 'requests')
    for (let i = 0; i < 400; i++) {
      const server = servers[i % 2]!
      const headers = { authorization: `Bearer ${clients[i % clients.length]!.token}`, 'content-type': 'application/json' }
      if (i % 4 === 3) await fetch(`${server.url}/inbox?limit=20`, { headers })
      else await fetch(`${server.url}/send`, { method: 'POST', headers, body: JSON.stringify({ to: clients[(i + 1) % clients.length]!.id, text: 'warm-up' }) })
      warming.update(i + 1)
    }
    warming.stop()
    await sleep(1000)
    const [memBefore0, memBefore1] = await Promise.all(servers.map((s) => s.memory()))

    // ---- Connect every client (even ones to the first process, odd ones to the second).
    const delivery: number[] = []
    const sentAt = new Map<number, number>()
    let delivered = 0
    const connecting = bar('WebSocket clients', CLIENTS, 'connected')
    let connected = 0
    for (let i = 0; i < CLIENTS; i += 250) {
      await Promise.all(
        clients.slice(i, i + 250).map(
          (user, j) =>
            new Promise<void>((resolve, reject) => {
              const server = servers[(i + j) % 2]!
              const ws = new WebSocket(`${server.url.replace('http', 'ws')}/ws`, { headers: { authorization: `Bearer ${user.token}` }, perMessageDeflate: false })
              ws.on('message', (raw) => {
                const event = JSON.parse(String(raw)) as { type: string; data: { to: string; text: string } }
                if (event.type !== 'message.created' || event.data.to !== user.id) return
                const seq = Number(event.data.text.slice(2))
                const t0 = sentAt.get(seq)
                if (t0 === undefined) return
                sentAt.delete(seq)
                delivery.push(performance.now() - t0)
                delivered++
              })
              ws.once('open', () => {
                sockets.push(ws)
                connecting.update(++connected)
                resolve()
              })
              ws.once('error', reject)
            }),
        ),
      )
    }
    connecting.stop()
    await sleep(3000)
    const [memAfter0, memAfter1] = await Promise.all(servers.map((s) => s.memory()))
    const rssPerConn = (memAfter0!.rss - memBefore0!.rss + memAfter1!.rss - memBefore1!.rss) / CLIENTS
    const js = (m: { heapUsed: number; external: number }) => m.heapUsed + m.external
    const heapPerConn = (js(memAfter0!) - js(memBefore0!) + js(memAfter1!) - js(memBefore1!)) / CLIENTS

    const redisCpu = new Redis(REDIS_URL)
    redisCpu.on('error', () => {})

    // ---- Steady sends through POST /send, open loop: each tick sends what the schedule owes.
    const agents = servers.map(() => new http.Agent({ keepAlive: true, maxSockets: 64 }))
    const sendLatency: number[] = []
    let sent = 0
    let ok = 0
    let failed = 0
    let inFlight = 0
    let skipped = 0
    let lastAnswer = 0
    const post = (serverIndex: number, token: string, body: string) =>
      new Promise<number>((resolve) => {
        const url = new URL('/send', servers[serverIndex]!.url)
        const req = http.request(url, { method: 'POST', agent: agents[serverIndex], headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
        })
        req.on('error', () => resolve(0))
        req.end(body)
      })
    /** `seconds` of sends at RATE, open loop: each tick sends what the schedule owes. Recorded unless warming up. */
    const sendLoad = async (seconds: number, record: boolean) => {
      const total = Math.round(RATE * seconds)
      const first = sent
      const stop = timed(record ? `POST /send at ${RATE}/s` : `warm-up: POST /send at ${RATE}/s`, seconds, () => (record ? `${ok} ok, ${failed} failed, ${delivered} delivered` : ''))
      const started = performance.now()
      await new Promise<void>((resolve) => {
        const tick = () => {
          const due = first + Math.min(total, Math.floor(((performance.now() - started) / 1000) * RATE))
          while (sent < due) {
            const seq = sent++
            if (inFlight > 5000) {
              if (record) skipped++
              continue
            }
            const from = Math.floor(Math.random() * CLIENTS)
            let to = Math.floor(Math.random() * (CLIENTS - 1))
            if (to >= from) to++
            const startedAt = performance.now()
            if (record) sentAt.set(seq, startedAt)
            inFlight++
            void post(seq % 2, clients[from]!.token, JSON.stringify({ to: clients[to]!.id, text: `b:${seq}` })).then((status) => {
              inFlight--
              if (!record) return
              lastAnswer = performance.now()
              sendLatency.push(lastAnswer - startedAt)
              if (status === 201) ok++
              else {
                failed++
                sentAt.delete(seq)
              }
            })
          }
          if (sent >= first + total) resolve()
          else setTimeout(tick, 1)
        }
        tick()
      })
      // Let the last ones land.
      const deadline = Date.now() + 10_000
      while ((inFlight > 0 || delivered < ok) && Date.now() < deadline) await sleep(50)
      stop()
      return started
    }
    // The servers warm first at the same rate (their pools grow to size, each connection prepares
    // its statements, the code paths get compiled), as servers in service are; then the measurement.
    await sendLoad(WARMUP, false)
    const statsPool = new pg.Pool({ connectionString: dbUrl.toString(), max: 1 })
    // The statistics of the warm-up's last transactions reach pg_stat_database within a second.
    await sleep(1000)
    const commitsBefore = await commitsSoFar(statsPool)
    const statementsBefore = await Promise.all(servers.map(statementsSoFar))
    const backendsBefore = await backendMicros(statsPool)
    const cpuBefore = await cpuNow(servers, redisCpu)
    const t0 = await sendLoad(DURATION, true)
    const cpuAfter = await cpuNow(servers, redisCpu)
    const backendsAfter = await backendMicros(statsPool)
    // Backends that ended meanwhile are missed; ones that began count from zero.
    const backendsCpu = backendsAfter.size === 0 ? null : [...backendsAfter].reduce((sum, [pid, micros]) => sum + micros - (backendsBefore.get(pid) ?? 0), 0)
    const statementsAfter = await Promise.all(servers.map(statementsSoFar))
    await sleep(1000)
    const commits = (await commitsSoFar(statsPool)) - commitsBefore
    await statsPool.end()
    const statementKinds = new Map<string, number>()
    servers.forEach((_, i) => {
      for (const [kind, s] of Object.entries(statementsAfter[i]!)) statementKinds.set(kind, (statementKinds.get(kind) ?? 0) + s.count - (statementsBefore[i]![kind]?.count ?? 0))
    })
    // Held: answered sends over the time from the first send to the last answer.
    const sendSeconds = (lastAnswer - t0) / 1000
    const lost = ok - delivered

    // ---- GET /inbox for the user with the long history, and a page deep inside it.
    // The statistics a live database's autovacuum keeps: the table now holds everyone's sends too.
    await sql`ANALYZE messages`.execute(db)
    const inboxLoad = (label: string, path: string, seconds: number) =>
      new Promise<autocannon.Result>((resolve, reject) => {
        const stop = timed(label, seconds, () => '')
        autocannon(
          { url: `${servers[0]!.url}${path}`, connections: INBOX_CONNECTIONS, duration: seconds, headers: { authorization: `Bearer ${inboxUser.token}` } },
          (error, result) => {
            stop()
            if (error) reject(error)
            else resolve(result)
          },
        )
      })
    const firstPage = await inboxLoad('GET /inbox (first page)', '/inbox?limit=20', INBOX_DURATION)
    const deepCursor = encodeCursor({ id: historyIds[Math.floor(historyIds.length / 2)] })
    const deepPage = await inboxLoad('GET /inbox (page at 50,000)', `/inbox?limit=20&cursor=${deepCursor}`, Math.max(3, Math.round(INBOX_DURATION / 2)))

    // ---- Baseline: the inbox's two statements as the app sends them (prepared), raw through pg, at the same concurrency.
    const INBOX_PAGE = `select "m".*, "u"."first_name" as "s_first_name", "u"."last_name" as "s_last_name", "u"."picture_etag" as "s_picture_etag", "u"."deleted_at" as "s_deleted_at"
      from (select "p".* from "users" as "owner" inner join lateral (select "id", "sender_id", "recipient_id", "text", "kind", "job_id", "created_at", "read_at" from "messages"
        where "messages"."recipient_id" = "owner"."id" order by "messages"."id" desc limit $1) as "p" on true where "owner"."id" = $2) as "m"
      left join "users" as "u" on "u"."id" = "m"."sender_id" order by "m"."id" desc`
    const INBOX_UNREAD_SQL = `select coalesce(sum("count"), 0) as "n" from "unread_counts" where "user_id" = $1`
    const pool = new pg.Pool({ connectionString: dbUrl.toString(), max: INBOX_CONNECTIONS })
    const rawInbox: number[] = []
    const stopRaw = timed('raw pg: inbox page + unread count', INBOX_DURATION, () => `${rawInbox.length} queries`)
    const rawEnd = performance.now() + INBOX_DURATION * 1000
    await Promise.all(
      Array.from({ length: INBOX_CONNECTIONS }, async () => {
        while (performance.now() < rawEnd) {
          const s = performance.now()
          await Promise.all([
            pool.query({ name: 'page', text: INBOX_PAGE, values: [21, inboxUser.id] }),
            pool.query({ name: 'unread', text: INBOX_UNREAD_SQL, values: [inboxUser.id] }),
          ])
          rawInbox.push(performance.now() - s)
        }
      }),
    )
    stopRaw()
    await pool.end()

    // ---- Baseline: raw Redis pub/sub round trip at the same rate, with a message-sized payload.
    const pub = new Redis(REDIS_URL)
    const subscriber = new Redis(REDIS_URL)
    pub.on('error', () => {})
    subscriber.on('error', () => {})
    const channel = `${REDIS_PREFIX}baseline`
    const rawRtt: number[] = []
    const rawSentAt = new Map<number, number>()
    subscriber.on('message', (_c: string, payload: string) => {
      const seq = (JSON.parse(payload) as { data: { seq: number } }).data.seq
      const s = rawSentAt.get(seq)
      if (s !== undefined) rawRtt.push(performance.now() - s)
    })
    await subscriber.subscribe(channel)
    const sample = { to: [clients[0]!.id, clients[1]!.id], type: 'message.created', data: { id: uuidv7(), from: clients[1]!.id, to: clients[0]!.id, text: 'b:0', kind: 'user', job_id: null, created_at: new Date().toISOString(), read_at: null, sender: { id: clients[1]!.id, first_name: 'Bench', last_name: 'User 1', picture_url: null, deleted: false } } }
    const baselineSeconds = Math.min(DURATION, 10)
    const stopBaseline = timed(`raw Redis pub/sub at ${RATE}/s`, baselineSeconds, () => `${rawRtt.length} round trips`)
    const baseTotal = Math.round(RATE * baselineSeconds)
    let baseSent = 0
    const b0 = performance.now()
    await new Promise<void>((resolve) => {
      const tick = () => {
        const due = Math.min(baseTotal, Math.floor(((performance.now() - b0) / 1000) * RATE))
        while (baseSent < due) {
          const seq = baseSent++
          rawSentAt.set(seq, performance.now())
          void pub.publish(channel, JSON.stringify({ ...sample, data: { ...sample.data, seq } }))
        }
        if (baseSent >= baseTotal) resolve()
        else setTimeout(tick, 1)
      }
      tick()
    })
    const baseDeadline = Date.now() + 5000
    while (rawRtt.length < baseTotal && Date.now() < baseDeadline) await sleep(20)
    stopBaseline()
    pub.disconnect()
    subscriber.disconnect()
    bars.stop()

    // ---- Report.
    redisCpu.disconnect()
    const perMessage = (before: number | null, after: number | null) => (before === null || after === null ? 'n/a' : `${Math.round((after - before) / Math.max(1, ok))} µs`)
    const cpuLine = [
      `API processes ${perMessage(cpuBefore.api, cpuAfter.api)}`,
      `PostgreSQL ${perMessage(cpuBefore.postgres, cpuAfter.postgres)} (this database's backends ${perMessage(0, backendsCpu)})`,
      `Redis ${perMessage(cpuBefore.redis, cpuAfter.redis)}`,
      `load generator ${perMessage(cpuBefore.generator, cpuAfter.generator)}`,
    ].join(', ')
    const heldRate = ok / sendSeconds
    const lines: [string, string, string][] = [
      ['sends answered 201', `${ok} of ${Math.round(RATE * DURATION)} (${failed} failed, ${skipped} not sent: over 5000 in flight)`, ''],
      ['rate held', `${heldRate.toFixed(0)} msg/s`, `target ${RATE} msg/s`],
      ['POST /send latency p50 / p99', `${ms(percentile(sendLatency, 50))} / ${ms(percentile(sendLatency, 99))}`, ''],
      ['delivery (send call -> socket) p50 / p99', `${ms(percentile(delivery, 50))} / ${ms(percentile(delivery, 99))}`, 'target p99 < 50 ms at 1,000 msg/s'],
      ['  baseline: raw Redis pub/sub p50 / p99', `${ms(percentile(rawRtt, 50))} / ${ms(percentile(rawRtt, 99))}`, `${rawRtt.length} of ${baseTotal} at ${RATE}/s`],
      ['messages lost (201 but never delivered)', String(lost), ''],
      ['CPU a message, during the sends', cpuLine, `machine: ${os.cpus().length} cores`],
      [
        'statements a message (app\'s Kysely)',
        [...statementKinds].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]).map(([kind, n]) => `${kind} ${(n / Math.max(1, ok)).toFixed(3)}`).join(', '),
        `${(commits / Math.max(1, ok)).toFixed(3)} commits a message at the server (the queue's included)`,
      ],
      ['server memory per idle connection', `${(rssPerConn / 1024).toFixed(1)} KB RSS, ${(heapPerConn / 1024).toFixed(1)} KB heap + buffers`, 'target < 64 KB'],
      ['  per 1,000 idle connections', `${mb(rssPerConn * 1000)} RSS, ${mb(heapPerConn * 1000)} heap + buffers`, `both processes: ${mb(memBefore0!.rss + memBefore1!.rss)} -> ${mb(memAfter0!.rss + memAfter1!.rss)}`],
      [`GET /inbox first page, ${INBOX_MESSAGES} messages`, `p50 ${firstPage.latency.p50} ms / p99 ${firstPage.latency.p99} ms, ${Math.round(firstPage.requests.average)} req/s`, `target p99 < 20 ms; ${INBOX_CONNECTIONS} connections, ${firstPage.non2xx} non-2xx`],
      ['GET /inbox page at 50,000 (cursor)', `p50 ${deepPage.latency.p50} ms / p99 ${deepPage.latency.p99} ms, ${Math.round(deepPage.requests.average)} req/s`, `${deepPage.non2xx} non-2xx`],
      ['  baseline: raw pg page + count', `p50 ${ms(percentile(rawInbox, 50))} / p99 ${ms(percentile(rawInbox, 99))}, ${Math.round(rawInbox.length / INBOX_DURATION)} q/s`, `${INBOX_CONNECTIONS} in flight`],
    ]
    console.log(`\nResults (load average ${loadBefore} at the start, ${load()} at the end)`)
    for (const [name, value, note] of lines) console.log(`  ${name.padEnd(44)} ${value.padEnd(48)} ${note}`)
  } finally {
    bars.stop()
    // Each step on its own: a dependency that stopped answering must not leave the rest behind. A
    // minute for the API processes: one that is killed instead writes no CPU profile.
    const step = async (what: string, run: () => Promise<unknown>) => {
      try {
        await Promise.race([run(), sleep(60_000).then(() => Promise.reject(new Error('timed out')))])
      } catch (error) {
        console.error(`cleanup: ${what}: ${(error as Error).message}`)
      }
    }
    for (const ws of sockets) ws.terminate()
    await step('stop the API processes', () => Promise.all(servers.map((s) => s.stop())))
    for (const server of servers) server.kill()
    await step('close the live store', () => live.close())
    await step('close the database', () => database.close())
    await step('drop the scratch database', () => scratch.drop())
    await step('delete the Redis keys', async () => {
      await deleteRedisKeys(REDIS_URL, REDIS_PREFIX)
    })
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  },
)
