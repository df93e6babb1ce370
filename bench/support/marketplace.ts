// A marketplace's users as a load: clients and workers signed up through the API (pictures and
// payouts set up), and the requests they make, one at a time at a caller's pace. Shared by
// `npm run chaos` (a steady mix while faults happen) and `npm run bench:scenario` (a mix at rising
// rates across process counts). Every answer is recorded (route, times, status), and what the API
// said it committed (messages, job moves, payments) is kept to be read back at the end.

import http from 'node:http'
import sharp from 'sharp'
import { WebSocket } from 'ws'

export type Outcome = number | 'timeout' | 'refused' | 'reset'
export interface Answer { op: string; start: number; end: number; status: Outcome; retryAfter: boolean }
export interface User { id: string; email: string; token: string; roles: string[] }

/** What each arrival is, in percent; the rest of 100 moves jobs (offer, accept, start, complete, approve and pay). */
export interface Mix { signIn: number; search: number; location: number; send: number; inbox: number }

const STEPS = ['REQUESTED', 'ACCEPTED', 'STARTED', 'COMPLETED', 'PENDING_PAYMENT'] as const
interface Job { id?: string; client: User; worker: User; status?: string; etag?: string; busy: boolean; stale: boolean; committed: string[] }

const now = () => performance.now()
const pick = <T>(list: T[]) => list[Math.floor(Math.random() * list.length)]!

export const PASSWORD = 'marketplace load password'

/** The settings a load needs of the API: its limits out of the way, mail confirmation off. */
export const LOAD_SETTINGS = {
  BCRYPT_COST: '4',
  RATE_LIMIT_MAX: '10000000',
  AUTH_RATE_LIMIT_MAX: '10000000',
  SEND_RATE_LIMIT: '1000000',
  SESSIONS_PER_USER: '1000',
  EMAIL_CONFIRMATION: 'off',
}

export class Marketplace {
  readonly answers: Answer[] = []
  inFlight = 0
  readonly clients: User[] = []
  readonly workers: User[] = []
  readonly committedMessages: { id: string; to: User }[] = []
  private readonly jobs: Job[] = []
  private readonly sockets: WebSocket[] = []
  /** `message.created` events the users' sockets received. */
  delivered = 0
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 512 })

  /** `port`: the API's (it may change between runs); `home`: the metro area everyone is in. */
  constructor(private readonly port: () => number, private readonly home = { lat: 52.52, lon: 13.405 }) {}

  /** One request over a keep-alive socket (node:http: far cheaper than fetch for a load generator). */
  call(op: string, method: string, url: string, token: string | undefined, body?: unknown, headers: Record<string, string> = {}) {
    const start = now()
    this.inFlight++
    const payload = body === undefined ? undefined : body instanceof Uint8Array ? body : Buffer.from(JSON.stringify(body))
    return new Promise<{ status: Outcome; json: any; etag: string | null; ok: boolean }>((resolve) => {
      const finish = (status: Outcome, json?: any, etag: string | null = null, retryAfter = false) => {
        this.inFlight--
        this.answers.push({ op, start, end: now(), status, retryAfter })
        resolve({ status, json, etag, ok: typeof status === 'number' && status < 300 })
      }
      const req = http.request(
        {
          host: '127.0.0.1',
          port: this.port(),
          path: url,
          method,
          agent: this.agent,
          timeout: 15_000,
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(payload ? { 'content-type': body instanceof Uint8Array ? 'application/octet-stream' : 'application/json', 'content-length': payload.length } : {}),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('error', () => finish('reset'))
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString()
            let json: any
            try {
              json = text && res.headers['content-type']?.includes('json') ? JSON.parse(text) : undefined
            } catch {}
            finish(res.statusCode!, json, (res.headers.etag as string | undefined) ?? null, 'retry-after' in res.headers)
          })
        },
      )
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })))
      req.on('error', (error: NodeJS.ErrnoException) => finish(error.code === 'TIMEOUT' ? 'timeout' : error.code === 'ECONNREFUSED' ? 'refused' : 'reset'))
      req.end(payload)
    })
  }

  private async signUp(role: 'CLIENT' | 'WORKER', n: number, tag: string): Promise<User> {
    const email = `load.${role.toLowerCase()}.${n}.${tag}@example.com`
    const made = await this.call('setup', 'POST', '/signup', undefined, { email, password: PASSWORD, first_name: 'Load', last_name: `${role} ${n}`, roles: [role] })
    if (!made.ok) throw new Error(`sign-up: ${made.status} ${JSON.stringify(made.json)}`)
    const auth = await this.call('setup', 'POST', '/authorize', undefined, { email, password: PASSWORD })
    if (!auth.ok) throw new Error(`sign-in: ${auth.status} ${JSON.stringify(auth.json)}`)
    return { id: made.json.id, email, token: auth.json.access_token, roles: [role] }
  }

  /** `pairs` clients and as many workers, each worker with a picture and payouts enabled. */
  async setUp(pairs: number, onProgress: (done: number) => void = () => {}) {
    const picture = new Uint8Array(await sharp({ create: { width: 64, height: 64, channels: 3, background: '#3a7' } }).png().toBuffer())
    const tag = Date.now().toString(36)
    const one = async (i: number) => {
      this.clients.push(await this.signUp('CLIENT', i, tag))
      const worker = await this.signUp('WORKER', i, tag)
      const put = await this.call('setup', 'PUT', '/user/picture', worker.token, picture, { 'content-type': 'image/png' })
      if (!put.ok) throw new Error(`picture: ${put.status} ${JSON.stringify(put.json)}`)
      const account = await this.call('setup', 'POST', '/payments/account', worker.token)
      if (!account.ok) throw new Error(`payments account: ${account.status} ${JSON.stringify(account.json)}`)
      const onboarding = new URL(account.json.onboarding_url, 'http://127.0.0.1')
      const onboarded = await this.call('setup', 'GET', `${onboarding.pathname}${onboarding.search}`, undefined)
      if (!onboarded.ok) throw new Error(`onboarding: ${onboarded.status}`)
      this.workers.push(worker)
      onProgress(this.workers.length)
    }
    for (let i = 0; i < pairs; i += 8) await Promise.all(Array.from({ length: Math.min(8, pairs - i) }, (_, j) => one(i + j)))
  }

  /** Every user on a socket of its own (/ws), counting the messages it is sent. */
  async connectSockets() {
    await Promise.all(
      [...this.clients, ...this.workers].map(
        (user) =>
          new Promise<void>((resolve, reject) => {
            const ws = new WebSocket(`ws://127.0.0.1:${this.port()}/ws`, { headers: { authorization: `Bearer ${user.token}` }, perMessageDeflate: false })
            ws.on('message', (data) => {
              if (String(data).startsWith('{"type":"message.created"')) this.delivered++
            })
            ws.once('open', () => resolve())
            ws.once('error', reject)
            this.sockets.push(ws)
          }),
      ),
    )
  }

  closeSockets() {
    for (const ws of this.sockets.splice(0)) ws.terminate()
  }

  /** The next step of one job: an offer (paid by the test card), a move, or a re-read after a refusal. */
  private async moveJob(job: Job) {
    job.busy = true
    try {
      if (!job.id) {
        const res = await this.call('job offer', 'POST', '/job', job.client.token, { worker_id: job.worker.id, title: 'Load repair', price: { amount: 5000, currency: 'EUR' }, payment_method: 'pm_card_visa' })
        if (res.ok) Object.assign(job, { id: res.json.id, status: res.json.status, etag: res.etag, committed: [res.json.status] })
        return
      }
      if (job.stale) {
        const res = await this.call('job read', 'GET', `/job/${job.id}`, job.client.token)
        if (res.ok) Object.assign(job, { status: res.json.status, etag: res.etag, stale: false })
        return
      }
      const next = STEPS[STEPS.indexOf(job.status as (typeof STEPS)[number]) + 1]
      if (!next) return
      const who = next === 'PENDING_PAYMENT' ? job.client : job.worker
      const res = await this.call(next === 'PENDING_PAYMENT' ? 'job approve' : 'job move', 'POST', `/job/${job.id}/status`, who.token, { status: next }, job.etag ? { 'if-match': job.etag } : {})
      if (res.ok) {
        job.status = res.json.status
        job.etag = res.etag ?? undefined
        job.committed.push(next)
      } else job.stale = true
    } finally {
      job.busy = false
    }
  }

  private jitter = () => (Math.random() - 0.5) * 0.1

  /** One arrival of the mix, sent without waiting for its answer. */
  oneRequest(mix: Mix) {
    let roll = Math.random() * 100
    const { lat, lon } = this.home
    if ((roll -= mix.signIn) < 0) {
      const user = pick([...this.clients, ...this.workers])
      void this.call('sign-in', 'POST', '/authorize', undefined, { email: user.email, password: PASSWORD }).then((r) => {
        if (r.ok) user.token = r.json.access_token
      })
    } else if ((roll -= mix.search) < 0) {
      void this.call('search', 'GET', `/search?lat=${(lat + this.jitter()).toFixed(5)}&lon=${(lon + this.jitter()).toFixed(5)}&radius=5000&role=WORKER&limit=20`, pick(this.clients).token)
    } else if ((roll -= mix.location) < 0) {
      void this.call('location', 'POST', '/location', pick(this.workers).token, { lat: lat + this.jitter(), lon: lon + this.jitter(), ttl: 600 })
    } else if ((roll -= mix.send) < 0) {
      const [from, to] = Math.random() < 0.5 ? [pick(this.clients), pick(this.workers)] : [pick(this.workers), pick(this.clients)]
      void this.call('send', 'POST', '/send', from.token, { to: to.id, text: `hello ${Date.now()}` }).then((r) => {
        if (r.status === 201) this.committedMessages.push({ id: r.json.id, to })
      })
    } else if ((roll -= mix.inbox) < 0) {
      void this.call('inbox', 'GET', '/inbox?limit=20', pick([...this.clients, ...this.workers]).token)
    } else {
      // Jobs under way move on; finished ones make room for new offers.
      let job = this.jobs.find((j) => !j.busy && j.status !== 'PAID' && j.status !== 'PENDING_PAYMENT' && Math.random() < 0.3)
      if (!job && this.jobs.filter((j) => j.status !== 'PAID' && j.status !== 'PENDING_PAYMENT').length < this.workers.length) {
        job = { client: pick(this.clients), worker: pick(this.workers), busy: false, stale: false, committed: [] }
        this.jobs.push(job)
      }
      if (job && !job.busy) void this.moveJob(job)
    }
  }

  /**
   * Sends the mix at `rate` arrivals a second until `running()` is false. Open model: arrivals go
   * out on schedule whatever the answers take (bounded, so a hang can't pile up without end).
   */
  async run(mix: Mix, rate: number, running: () => boolean) {
    const interval = 1000 / rate
    let next = now()
    while (running()) {
      if (this.inFlight < rate * 20) this.oneRequest(mix)
      next += interval
      const wait = next - now()
      if (wait > 1) await new Promise((r) => setTimeout(r, wait))
      else if (wait < -1000) next = now()
    }
  }

  /**
   * What was lost: every message said committed is in its recipient's inbox, every job move said
   * committed is in its job's log, and every approved job is paid.
   */
  async lost(waitPaidMs = 30_000) {
    const seen = new Set<string>()
    for (const user of [...new Set(this.committedMessages.map((m) => m.to))]) {
      let cursor: string | undefined
      do {
        const res = await this.call('check', 'GET', `/inbox?limit=100${cursor ? `&cursor=${cursor}` : ''}`, user.token)
        if (!res.ok) throw new Error(`inbox: ${res.status}`)
        for (const m of res.json.items) seen.add(m.id)
        cursor = res.json.next_cursor ?? undefined
      } while (cursor)
    }
    const lostMessages = this.committedMessages.filter((m) => !seen.has(m.id)).length
    let lostMoves = 0
    let lostPayments = 0
    let paid = 0
    const until = now() + waitPaidMs
    for (const job of this.jobs.filter((j) => j.id)) {
      let res = await this.call('check', 'GET', `/job/${job.id}`, job.client.token)
      // Approval pays through the queue: PAID follows when the provider confirms.
      while (res.ok && job.committed.includes('PENDING_PAYMENT') && res.json.status !== 'PAID' && now() < until) {
        await new Promise((r) => setTimeout(r, 250))
        res = await this.call('check', 'GET', `/job/${job.id}`, job.client.token)
      }
      if (!res.ok) throw new Error(`job: ${res.status}`)
      const logged = new Set<string>(res.json.status_log.map((e: { status: string }) => e.status))
      lostMoves += job.committed.filter((s) => !logged.has(s)).length
      if (job.committed.includes('PENDING_PAYMENT')) {
        paid++
        if (res.json.status !== 'PAID') lostPayments++
      }
    }
    return { messages: this.committedMessages.length, lostMessages, moves: this.jobs.reduce((n, j) => n + j.committed.length, 0), lostMoves, paid, lostPayments }
  }
}
