import { createECDH, randomBytes, type ECDH } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { Agent, createServer, type Server } from 'node:https'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
// The package web-push encrypts with: here it decrypts, as a browser would.
import ece from 'http_ece'
import sharp from 'sharp'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mailsTo, newUser, problem, startTestApp, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { waitUntil } from '../../../test/support/wait.js'
import { removeTempDirs, run, tempDir } from '../../../test/support/processes.js'
import { manualClock } from '../../platform/clock.js'
import type { LiveEvent } from '../../platform/live/index.js'
import { logOnlySmsProvider, type SmsMessage, type SmsProvider } from './index.js'
import { checkPushEndpoint } from './push.js'

// A Tokyo evening: 23:00 there is 14:00 UTC.
const clock = manualClock(new Date('2026-05-04T09:00:00Z'))

/** SMS as a gateway would take them; numbers in `failing` make it fail. */
const smsSent: (SmsMessage & { key: string })[] = []
const sms: SmsProvider = {
  name: 'test',
  async send(message, key) {
    smsSent.push({ ...message, key })
  },
}

/** A push service on a loopback port: it answers by path, and keeps what it was sent. */
interface Received {
  path: string
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}
const received: Received[] = []
let pushService: Server
let pushBase: string
const ANSWERS: Record<string, number> = { ok: 201, gone: 410, missing: 404, broken: 500 }

let t: TestApp
const events: LiveEvent[] = []
let picture: Buffer

beforeAll(async () => {
  // Push services speak https only: this one has a certificate of its own, which the app is told to trust.
  const dir = await tempDir()
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')])
  const [key, cert] = await Promise.all([readFile(join(dir, 'key.pem')), readFile(join(dir, 'cert.pem'))])
  pushService = createServer({ key, cert }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const path = req.url ?? ''
      received.push({ path, headers: req.headers, body: Buffer.concat(chunks) })
      res.writeHead(ANSWERS[path.split('/')[1] ?? ''] ?? 500).end()
    })
  })
  await new Promise<void>((resolve) => pushService.listen(0, '127.0.0.1', resolve))
  pushBase = `https://127.0.0.1:${(pushService.address() as AddressInfo).port}`
  // The local push service listens on loopback, which endpoints may name only by this setting.
  t = await startTestApp({ JOB_SWEEP_INTERVAL: '0', NOTIFICATION_SWEEP_INTERVAL: '0', QUEUE_POLL_INTERVAL: '500', PUSH_ENDPOINT_ALLOW: '127.0.0.1' }, { clock, sms, pushAgent: new Agent({ ca: cert }) })
  await t.app.platform.live.events.subscribe((event) => events.push(event))
  picture = await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 9, g: 9, b: 9 } } }).jpeg().toBuffer()
}, 180_000)
afterAll(async () => {
  await t?.close()
  pushService?.close()
  await removeTempDirs()
})

interface Device {
  ecdh: ECDH
  auth: string
  endpoint: string
  id: string
}

/** Subscribes a user's "browser": its own P-256 key pair and auth secret, at a path of the push service. */
async function subscribe(user: SignedIn, kind: keyof typeof ANSWERS): Promise<Device> {
  const ecdh = createECDH('prime256v1')
  ecdh.generateKeys()
  const auth = randomBytes(16).toString('base64url')
  const endpoint = `${pushBase}/${kind}/${user.id}/${randomBytes(4).toString('hex')}`
  const res = await t.app.inject({ method: 'POST', url: '/push/subscriptions', headers: { ...user.auth, 'user-agent': 'TestBrowser/1' }, payload: { endpoint, keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth } } })
  expect(res.statusCode, res.body).toBe(201)
  return { ecdh, auth, endpoint, id: res.json().id }
}

/** What a device's push service was sent, decrypted with the device's keys. */
const pushesTo = (device: Device) =>
  received
    .filter((r) => `${pushBase}${r.path}` === device.endpoint)
    .map((r) => ({ headers: r.headers, payload: JSON.parse(ece.decrypt(r.body, { version: 'aes128gcm', privateKey: device.ecdh, authSecret: device.auth }).toString('utf8')) }))

/** A job move, a second after whatever came before it (each move's log entry has its own time, as in life). */
const moveJob = (user: SignedIn, jobId: string, payload: Record<string, unknown>, headers: Record<string, string> = {}) => {
  clock.advance(1000)
  return t.app.inject({ method: 'POST', url: `/job/${jobId}/status`, headers: { ...user.auth, ...headers }, payload })
}
const send = (from: SignedIn, to: SignedIn, text: string) => t.app.inject({ method: 'POST', url: '/send', headers: from.auth, payload: { to: to.id, text } })
const settle = () => t.app.notifications.runDueWork()
const deliveriesOf = (notificationId: string) =>
  t.app.platform.database.db.selectFrom('notification_deliveries').select(['channel', 'state', 'detail']).where('notification_id', '=', notificationId).orderBy('channel').execute()

async function confirmPhone(user: SignedIn, number: string) {
  expect((await t.app.inject({ method: 'POST', url: '/user/phone', headers: user.auth, payload: { number } })).statusCode).toBe(202)
  const code = /(\d{6})/.exec(smsSent.filter((s) => s.to === number).at(-1)!.text)![1]
  const res = await t.app.inject({ method: 'POST', url: '/user/phone/confirm', headers: user.auth, payload: { code } })
  expect(res.json()).toEqual({ number, confirmed: true })
}

async function acceptedJob() {
  const c = await newUser(t.app, { roles: ['CLIENT'], first_name: 'Carla' })
  const w = await newUser(t.app, { roles: ['WORKER'], first_name: 'Wanda' })
  expect((await t.app.inject({ method: 'PUT', url: '/user/picture', headers: { ...w.auth, 'content-type': 'image/jpeg' }, payload: picture })).statusCode).toBe(200)
  const offered = await t.app.inject({ method: 'POST', url: '/job', headers: c.auth, payload: { worker_id: w.id, title: 'Fix the tap', description: 'Drips' } })
  expect(offered.statusCode, offered.body).toBe(201)
  return { c, w, job: offered.json(), etag: String(offered.headers.etag) }
}

describe('preferences', () => {
  it('answers defaults, changes what the body names, and refuses a time zone that is not one', async () => {
    const u = await newUser(t.app)
    const defaults = (await t.app.inject({ url: '/user/notifications', headers: u.auth })).json()
    expect(defaults).toMatchObject({ time_zone: 'UTC', quiet_hours: null, events: { message: { in_app: true, email: false, push: true, sms: false }, job_update: { email: true } } })
    const put = await t.app.inject({ method: 'PUT', url: '/user/notifications', headers: u.auth, payload: { time_zone: 'Asia/Tokyo', quiet_hours: { start: '22:00', end: '07:00' }, events: { message: { push: false } } } })
    expect(put.statusCode, put.body).toBe(200)
    expect(put.json()).toMatchObject({ time_zone: 'Asia/Tokyo', quiet_hours: { start: '22:00', end: '07:00' }, events: { message: { in_app: true, push: false }, job_offer: { push: true } } })
    // Left out: kept.
    const again = await t.app.inject({ method: 'PUT', url: '/user/notifications', headers: u.auth, payload: { events: { message: { sms: true } } } })
    expect(again.json()).toMatchObject({ time_zone: 'Asia/Tokyo', events: { message: { push: false, sms: true } } })
    expect(problem(await t.app.inject({ method: 'PUT', url: '/user/notifications', headers: u.auth, payload: { time_zone: 'Mars/Olympus' } }), 400).code).toBe('invalid_time_zone')
    problem(await t.app.inject({ method: 'PUT', url: '/user/notifications', headers: u.auth, payload: { quiet_hours: { start: '25:00', end: '07:00' } } }), 400)
    problem(await t.app.inject({ method: 'PUT', url: '/user/notifications', headers: u.auth, payload: { events: { nonsense: { push: true } } } }), 400)
    // Another user's preferences are their own.
    expect((await t.app.inject({ url: '/user/notifications', headers: (await newUser(t.app)).auth })).json().time_zone).toBe('UTC')
  })
})

describe('Web Push', () => {
  it('delivers a message as a push the subscription\'s keys decrypt, signed with the public key apps are given', async () => {
    const a = await newUser(t.app, { first_name: 'Ana' })
    const b = await newUser(t.app, { first_name: 'Bob', last_name: 'Builder' })
    const device = await subscribe(a, 'ok')
    expect((await send(b, a, 'Are you free on Friday?')).statusCode).toBe(201)
    await settle()
    await waitUntil(() => pushesTo(device).length > 0)
    const [push] = pushesTo(device)
    expect(push!.payload).toMatchObject({ event: 'message', title: 'New message from Bob Builder', body: 'Are you free on Friday?', count: 1, peer_id: b.id })
    expect(push!.headers['content-encoding']).toBe('aes128gcm')
    expect(push!.headers.ttl).toBeDefined()
    const key = (await t.app.inject({ url: '/push/vapid-public-key' })).json().public_key
    expect(String(push!.headers.authorization)).toContain(`k=${key}`)
    // The in-app channel: a notification event on the recipient's sockets.
    await waitUntil(() => events.some((e) => e.type === 'notification' && e.to[0] === a.id))
  })

  it('drops a subscription its push service answers 404 or 410 for, and keeps delivering to the others', async () => {
    const a = await newUser(t.app)
    const b = await newUser(t.app)
    const good = await subscribe(a, 'ok')
    await subscribe(a, 'gone')
    await subscribe(a, 'missing')
    expect((await t.app.inject({ url: '/push/subscriptions', headers: a.auth })).json().items).toHaveLength(3)
    await send(b, a, 'Hello')
    await settle()
    await waitUntil(() => pushesTo(good).length > 0)
    await waitUntil(async () => (await t.app.inject({ url: '/push/subscriptions', headers: a.auth })).json().items.length === 1)
    expect((await t.app.inject({ url: '/push/subscriptions', headers: a.auth })).json().items.map((s: { endpoint: string }) => s.endpoint)).toEqual([good.endpoint])
  })

  it('keeps each user\'s subscriptions their own: another user\'s id is 404 and stays', async () => {
    const a = await newUser(t.app)
    const b = await newUser(t.app)
    const device = await subscribe(a, 'ok')
    expect(problem(await t.app.inject({ method: 'DELETE', url: `/push/subscriptions/${device.id}`, headers: b.auth }), 404).code).toBe('push_subscription_not_found')
    expect((await t.app.inject({ url: '/push/subscriptions', headers: b.auth })).json().items).toEqual([])
    expect((await t.app.inject({ url: '/push/subscriptions', headers: a.auth })).json().items).toHaveLength(1)
    expect((await t.app.inject({ method: 'DELETE', url: `/push/subscriptions/${device.id}`, headers: a.auth })).statusCode).toBe(204)
    expect((await t.app.inject({ url: '/push/subscriptions', headers: a.auth })).json().items).toEqual([])
  })

  it('refuses an endpoint that is not an https URL and keys that are not keys', async () => {
    const a = await newUser(t.app)
    problem(await t.app.inject({ method: 'POST', url: '/push/subscriptions', headers: a.auth, payload: { endpoint: 'nope', keys: { p256dh: 'x', auth: 'y' } } }), 400)
    const plain = await t.app.inject({ method: 'POST', url: '/push/subscriptions', headers: a.auth, payload: { endpoint: 'http://push.example/x', keys: { p256dh: 'x', auth: 'y' } } })
    expect(problem(plain, 400).code).toBe('invalid_push_endpoint')
    const bad = await t.app.inject({ method: 'POST', url: '/push/subscriptions', headers: a.auth, payload: { endpoint: `${pushBase}/ok/x`, keys: { p256dh: 'AAAA', auth: 'AAAA' } } })
    expect(problem(bad, 400).code).toBe('invalid_push_keys')
  })

  it('refuses endpoints that are, or resolve to, private, loopback or link-local addresses (SSRF), unless the setting allows the host', async () => {
    const a = await newUser(t.app)
    const key = createECDH('prime256v1')
    key.generateKeys()
    const keys = { p256dh: key.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') }
    const post = (endpoint: string) => t.app.inject({ method: 'POST', url: '/push/subscriptions', headers: a.auth, payload: { endpoint, keys } })
    for (const endpoint of [
      'https://10.1.2.3/push/x', 'https://192.168.0.10/x', 'https://172.16.5.4/x', 'https://100.64.0.1/x', // private, carrier-grade NAT
      'https://127.0.0.2:8443/x', 'https://localhost/x', 'https://[::1]/x', 'https://0.0.0.0/x', // loopback, unspecified
      'https://169.254.169.254/latest/meta-data', 'https://[fe80::1]/x', 'https://[fd00::1]/x', // link-local (cloud metadata), unique local
      'https://[::ffff:192.168.1.1]/x', 'https://224.0.0.1/x', // an IPv4 private address written as IPv6, multicast
      'https://push.invalid/x', 'https://user:pw@8.8.8.8/x', // a name that resolves nowhere, credentials
    ]) {
      const res = await post(endpoint)
      expect(problem(res, 400).code, endpoint).toBe('invalid_push_endpoint')
    }
    expect((await t.app.inject({ url: '/push/subscriptions', headers: a.auth })).json().items).toEqual([])
    // A public address is taken (nothing is sent to it until there is something to say), and so
    // is the loopback address this app's setting allows (the test's own push service).
    expect((await post('https://8.8.8.8/push/abc')).statusCode).toBe(201)
    expect((await post(`${pushBase}/ok/allowed`)).statusCode).toBe(201)
    // Every address of a name counts: one inward among public ones refuses it (as when a name is rebound).
    await expect(checkPushEndpoint('https://push.rebound.test/x', [], async () => ['93.184.216.34', '10.0.0.5'])).rejects.toMatchObject({ code: 'invalid_push_endpoint' })
    await expect(checkPushEndpoint('https://push.public.test/x', [], async () => ['93.184.216.34', '2606:2800:220:1::1'])).resolves.toBeUndefined()
    await expect(checkPushEndpoint('https://push.rebound.test:8443/x', ['push.rebound.test:8443'], async () => ['10.0.0.5'])).resolves.toBeUndefined()
  })

  it('groups several messages of one conversation within a minute into one push', async () => {
    const a = await newUser(t.app)
    const b = await newUser(t.app, { first_name: 'Bea', last_name: 'B' })
    const device = await subscribe(a, 'ok')
    await send(b, a, 'first')
    await settle()
    await waitUntil(() => pushesTo(device).length === 1)
    for (const text of ['second', 'third', 'fourth']) await send(b, a, text)
    await settle()
    clock.advance(61_000)
    await t.app.notifications.runDueWork(clock.now())
    await waitUntil(() => pushesTo(device).length === 2)
    expect(pushesTo(device)[1]!.payload).toMatchObject({ title: '3 new messages from Bea B', body: 'fourth', count: 3 })
  })
})

describe('channels on their own', () => {
  it('a channel with nothing to reach (no push device, no confirmed phone, no confirmed email) is recorded skipped by the relay, with no task queued for it', async () => {
    const a = await newUser(t.app, { first_name: 'Ana' })
    const b = await newUser(t.app, { first_name: 'Ben', confirmed: false })
    expect((await t.app.inject({ method: 'PUT', url: '/user/notifications', headers: b.auth, payload: { events: { message: { sms: true, email: true } } } })).statusCode).toBe(200)
    const sent = await send(a, b, 'Anyone there?')
    expect(sent.statusCode, sent.body).toBe(201)
    await settle()
    const id = sent.json().id as string
    // Right after the relay's transaction: nothing waits in the queue for a channel that can't be reached.
    expect(await deliveriesOf(id)).toEqual([
      { channel: 'email', state: 'skipped', detail: 'no confirmed email address' },
      { channel: 'push', state: 'skipped', detail: 'no push subscriptions' },
      { channel: 'sms', state: 'skipped', detail: 'no confirmed phone number' },
    ])
    const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'notifications.deliver' AND data->>'notification_id' = ${id}`.execute(t.app.platform.database.db)
    expect(rows[0]!.n).toBe(0)
    // The in-app notification is there all the same.
    await waitUntil(() => events.some((e) => e.type === 'notification' && (e.data as { id: string }).id === id))
  })

  it('a failing push leaves the SMS and in-app delivered, and the move that caused them answered', async () => {
    const { c, w, job, etag } = await acceptedJob()
    await confirmPhone(c, '+4915100000001')
    await t.app.inject({ method: 'PUT', url: '/user/notifications', headers: c.auth, payload: { events: { job_update: { sms: true } } } })
    const broken = await subscribe(c, 'broken')
    const accepted = await moveJob(w, job.id, { status: 'ACCEPTED' }, { 'if-match': etag })
    expect(accepted.statusCode, accepted.body).toBe(200)
    await settle()
    await waitUntil(() => smsSent.some((s) => s.to === '+4915100000001' && s.text.includes('Fix the tap')))
    await waitUntil(() => received.some((r) => `${pushBase}${r.path}` === broken.endpoint))
    const inbox = (await t.app.inject({ url: '/inbox', headers: c.auth })).json().items
    // The newest message about the job: the worker's acceptance.
    const note = inbox.find((m: { job_id: string }) => m.job_id === job.id)
    await waitUntil(async () => (await deliveriesOf(note.id)).some((d) => d.channel === 'sms' && d.state === 'sent'))
    const states = await deliveriesOf(note.id)
    expect(states.find((d) => d.channel === 'sms')!.state).toBe('sent')
    // The push waits for its retry; the mail went through the mail outbox.
    expect(states.find((d) => d.channel === 'push')).toMatchObject({ state: 'queued' })
    expect(states.find((d) => d.channel === 'email')).toMatchObject({ state: 'sent' })
    await waitUntil(async () => (await mailsTo(t.app, c.email)).some((m) => m.subject === 'Job: Fix the tap'))
    expect(events.some((e) => e.type === 'notification' && e.to[0] === c.id && (e.data as { id: string }).id === note.id)).toBe(true)
  })

  it('never sends one notification twice: not when the worker retries the move, nor when its delivery runs again', async () => {
    const { c, w, job, etag } = await acceptedJob()
    const device = await subscribe(c, 'ok')
    const accept = () => moveJob(w, job.id, { status: 'ACCEPTED' }, { 'if-match': etag })
    expect((await accept()).statusCode).toBe(200)
    // The worker's app retries (it lost the answer): the job is accepted already.
    expect([409, 412]).toContain((await accept()).statusCode)
    await settle()
    await waitUntil(() => pushesTo(device).length === 1)
    const notificationId = pushesTo(device)[0]!.payload.id as string
    await waitUntil(async () => (await deliveriesOf(notificationId)).some((d) => d.channel === 'push' && d.state === 'sent'))
    // A task worker running the delivery again (a retry after a lost completion) sends nothing.
    await t.app.notifications.deliver(notificationId, 'push')
    await settle()
    expect(pushesTo(device)).toHaveLength(1)
  })
})

/** The notification mail about a job's acceptance, and its raw List-* header lines. */
async function acceptanceMail(c: SignedIn) {
  await waitUntil(async () => (await mailsTo(t.app, c.email)).some((m) => m.subject === 'Job: Fix the tap'))
  const mail = (await mailsTo(t.app, c.email)).find((m) => m.subject === 'Job: Fix the tap')!
  expect(mail, 'the notification mail').toBeDefined()
  const header = (name: string) => mail.headerLines.find((h) => h.key === name)?.line.replace(/^[^:]+:\s*/, '').replace(/\r?\n\s+/g, ' ')
  return { mail, listUnsubscribe: header('list-unsubscribe'), listUnsubscribePost: header('list-unsubscribe-post') }
}

describe('email', () => {
  it('mails a job update with an unsubscribe link in the text, the HTML and the List-Unsubscribe headers', async () => {
    const { c, w, job, etag } = await acceptedJob()
    expect((await moveJob(w, job.id, { status: 'ACCEPTED' }, { 'if-match': etag })).statusCode).toBe(200)
    await settle()
    const { mail, listUnsubscribe, listUnsubscribePost } = await acceptanceMail(c)
    const url = /^<(https?:\/\/[^>]+)>$/.exec(listUnsubscribe ?? '')?.[1]
    expect(url, String(listUnsubscribe)).toMatch(/\/notifications\/unsubscribe\?token=/)
    expect(listUnsubscribePost).toBe('List-Unsubscribe=One-Click')
    expect(mail.text).toContain(url)
    expect(String(mail.html)).toContain(url!.replace(/&/g, '&#38;'))
  })

  it('the link turns off the mails of that event type only, without signing in; a changed token is refused and changes nothing', async () => {
    const { c, w, job, etag } = await acceptedJob()
    expect((await moveJob(w, job.id, { status: 'ACCEPTED' }, { 'if-match': etag })).statusCode).toBe(200)
    await settle()
    const { listUnsubscribe } = await acceptanceMail(c)
    const link = new URL(/^<([^>]+)>$/.exec(listUnsubscribe!)![1]!)
    const path = `${link.pathname}${link.search}`
    const token = link.searchParams.get('token')!

    // Opening the link (a mail scanner does too) shows what it would do and changes nothing.
    const shown = await t.app.inject({ url: path })
    expect(shown.statusCode, shown.body).toBe(200)
    expect(shown.json()).toEqual({ event: 'job_update', email: true })

    // Forged and changed tokens: 400, nothing changed.
    const [userId, , signature] = token.split('.')
    const flipped = `${signature!.slice(0, -2)}${signature!.at(-2) === 'A' ? 'B' : 'A'}${signature!.at(-1)}`
    const forged = [`${userId}.job_update.${flipped}`, `${userId}.job_offer.${signature}`, `${w.id}.job_update.${signature}`, token.slice(0, -3), 'nonsense', `${token}x`]
    for (const bad of forged) {
      expect(problem(await t.app.inject({ method: 'POST', url: `/notifications/unsubscribe?token=${encodeURIComponent(bad)}` }), 400).code, bad).toBe('invalid_unsubscribe_token')
      expect(problem(await t.app.inject({ url: `/notifications/unsubscribe?token=${encodeURIComponent(bad)}` }), 400).code, bad).toBe('invalid_unsubscribe_token')
    }
    problem(await t.app.inject({ method: 'POST', url: '/notifications/unsubscribe' }), 400)
    expect((await t.app.inject({ url: '/user/notifications', headers: c.auth })).json().events.job_update.email).toBe(true)

    // One click, as a mail client does it (RFC 8058): no sign-in, a form body.
    const clicked = await t.app.inject({ method: 'POST', url: path, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'List-Unsubscribe=One-Click' })
    expect(clicked.statusCode, clicked.body).toBe(200)
    expect(clicked.json()).toEqual({ event: 'job_update', email: false })
    const settings = (await t.app.inject({ url: '/user/notifications', headers: c.auth })).json()
    expect(settings.events.job_update).toEqual({ in_app: true, email: false, push: true, sms: false })
    expect(settings.events.job_offer.email).toBe(true)
    expect(settings.events.payment.email).toBe(true)
    // Again: the same answer.
    expect((await t.app.inject({ method: 'POST', url: path })).json()).toEqual({ event: 'job_update', email: false })
    // The worker's preferences are untouched.
    expect((await t.app.inject({ url: '/user/notifications', headers: w.auth })).json().events.job_update.email).toBe(true)

    // The next job update reaches the client by push and in-app, no more by email.
    expect((await moveJob(w, job.id, { status: 'CANCELED', reason: 'Ill' })).statusCode).toBe(200)
    await settle()
    const inbox = (await t.app.inject({ url: '/inbox', headers: c.auth })).json().items
    const canceled = inbox.find((m: { job_id: string; text: string }) => m.job_id === job.id && /cancel/i.test(m.text))
    expect(canceled, JSON.stringify(inbox)).toBeDefined()
    await waitUntil(async () => (await deliveriesOf(canceled.id)).length > 0)
    expect((await deliveriesOf(canceled.id)).map((d) => d.channel)).toEqual(['push'])
  })
})

describe('events of other features', () => {
  it('a payment released to the client is a payment event: mailed with the payment\'s unsubscribe link', async () => {
    const c = await newUser(t.app, { roles: ['CLIENT'], first_name: 'Carla' })
    const w = await newUser(t.app, { roles: ['WORKER'], first_name: 'Wanda' })
    expect((await t.app.inject({ method: 'PUT', url: '/user/picture', headers: { ...w.auth, 'content-type': 'image/jpeg' }, payload: picture })).statusCode).toBe(200)
    const account = await t.app.inject({ method: 'POST', url: '/payments/account', headers: w.auth })
    expect((await t.app.inject({ url: account.json().onboarding_url })).statusCode).toBe(200)
    const offered = await t.app.inject({ method: 'POST', url: '/job', headers: c.auth, payload: { worker_id: w.id, title: 'Paint the fence', price: { amount: 2500, currency: 'EUR' }, payment_method: 'pm_card_visa' } })
    expect(offered.statusCode, offered.body).toBe(201)
    expect((await moveJob(w, offered.json().id, { status: 'DECLINED' })).statusCode).toBe(200)
    await settle()
    const inbox = (await t.app.inject({ url: '/inbox', headers: c.auth })).json().items
    const note = inbox.find((m: { job_id: string; text: string }) => m.job_id === offered.json().id && m.text.includes('released'))
    expect(note, JSON.stringify(inbox)).toBeDefined()
    await waitUntil(() => events.some((e) => e.type === 'notification' && (e.data as { id: string }).id === note.id))
    expect((events.find((e) => e.type === 'notification' && (e.data as { id: string }).id === note.id)!.data as { event: string }).event).toBe('payment')
    // The mail leaves through the queue after the delivery's commit.
    await waitUntil(async () => (await mailsTo(t.app, c.email)).some((m) => m.text?.includes('released')))
    const mail = (await mailsTo(t.app, c.email)).find((m) => m.text?.includes('released'))!
    expect(mail).toBeDefined()
    const link = /Stop these emails: (\S+)/.exec(mail.text!)![1]!
    const url = new URL(link)
    expect((await t.app.inject({ url: `${url.pathname}${url.search}` })).json()).toEqual({ event: 'payment', email: true })
  })
})

describe('quiet hours', () => {
  it('holds push and SMS until the quiet hours end in the user\'s time zone, except what is urgent; in-app is never held', async () => {
    clock.set(new Date('2026-05-04T14:00:00Z')) // 23:00 in Tokyo
    const { c, w, job, etag } = await acceptedJob()
    await confirmPhone(c, '+4915100000002')
    const device = await subscribe(c, 'ok')
    const put = await t.app.inject({ method: 'PUT', url: '/user/notifications', headers: c.auth, payload: { time_zone: 'Asia/Tokyo', quiet_hours: { start: '22:00', end: '07:00' }, events: { message: { sms: true }, job_update: { push: false } } } })
    expect(put.statusCode).toBe(200)

    await send(w, c, 'I can come tomorrow at 8')
    // A job update: push is off for it, SMS too by default.
    expect((await moveJob(w, job.id, { status: 'ACCEPTED' }, { 'if-match': etag })).statusCode).toBe(200)
    await settle()
    await waitUntil(() => events.some((e) => e.type === 'notification' && e.to[0] === c.id && (e.data as { event: string }).event === 'message'))
    expect(pushesTo(device)).toEqual([])
    expect(smsSent.filter((s) => s.to === '+4915100000002' && !s.text.includes('code'))).toEqual([])

    // An urgent one goes at once: the worker calls the job off.
    expect((await moveJob(w, job.id, { status: 'CANCELED', reason: 'Ill' })).statusCode).toBe(200)
    await settle()
    // Push is off for job updates even when urgent; SMS is not on for them: nothing by those. Turn push on and cancel another.
    const second = await acceptedJob()
    await t.app.inject({ method: 'PUT', url: '/user/notifications', headers: second.c.auth, payload: { time_zone: 'Asia/Tokyo', quiet_hours: { start: '22:00', end: '07:00' } } })
    const secondDevice = await subscribe(second.c, 'ok')
    await moveJob(second.w, second.job.id, { status: 'ACCEPTED' }, { 'if-match': second.etag })
    await moveJob(second.w, second.job.id, { status: 'CANCELED', reason: 'Ill' })
    await settle()
    await waitUntil(() => pushesTo(secondDevice).length === 1)
    expect(pushesTo(secondDevice)[0]!.payload).toMatchObject({ event: 'job_update', title: 'Job: Fix the tap' })
    expect(pushesTo(secondDevice)[0]!.headers.urgency).toBe('high')

    // 07:00 in Tokyo: what was held goes out.
    clock.set(new Date('2026-05-04T22:00:00Z'))
    await t.app.notifications.runDueWork(clock.now())
    await waitUntil(() => pushesTo(device).length === 1 && smsSent.some((s) => s.to === '+4915100000002' && s.text.includes('tomorrow at 8')))
    expect(pushesTo(device)[0]!.payload).toMatchObject({ event: 'message', body: 'I can come tomorrow at 8' })
    // The second client's acceptance was held; the cancel went first.
    await waitUntil(() => pushesTo(secondDevice).length === 2)
    expect(pushesTo(secondDevice)[1]!.headers.urgency).toBe('normal')
    clock.set(new Date('2026-05-04T09:00:00Z'))
  })
})

describe('SMS', () => {
  it('takes a phone number only once confirmed by the code sent to it', async () => {
    const u = await newUser(t.app)
    problem(await t.app.inject({ method: 'POST', url: '/user/phone', headers: u.auth, payload: { number: '0151 123' } }), 400)
    expect(problem(await t.app.inject({ method: 'POST', url: '/user/phone/confirm', headers: u.auth, payload: { code: '123456' } }), 409).code).toBe('no_phone_pending')
    expect((await t.app.inject({ method: 'POST', url: '/user/phone', headers: u.auth, payload: { number: '+4915100000003' } })).json()).toEqual({ number: '+4915100000003', confirmed: false })
    const code = /(\d{6})/.exec(smsSent.filter((s) => s.to === '+4915100000003').at(-1)!.text)![1]!
    const wrong = code === '000000' ? '000001' : '000000'
    expect(problem(await t.app.inject({ method: 'POST', url: '/user/phone/confirm', headers: u.auth, payload: { code: wrong } }), 400).code).toBe('wrong_code')
    expect((await t.app.inject({ url: '/user/phone', headers: u.auth })).json()).toEqual({ number: '+4915100000003', confirmed: false })
    expect((await t.app.inject({ method: 'POST', url: '/user/phone/confirm', headers: u.auth, payload: { code } })).json()).toEqual({ number: '+4915100000003', confirmed: true })
    // Another user sees its own, none.
    problem(await t.app.inject({ url: '/user/phone', headers: (await newUser(t.app)).auth }), 404)
  })

  it('the default provider logs that an SMS went, without its text', async () => {
    const lines: object[] = []
    const provider = logOnlySmsProvider({ info: (obj) => lines.push(obj) })
    await provider.send({ to: '+4915100000004', text: 'Your confirmation code: 314159' }, 'k1')
    expect(JSON.stringify(lines)).not.toContain('314159')
    expect(JSON.stringify(lines)).not.toContain('+4915100000004')
  })
})
