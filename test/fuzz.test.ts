import fc from 'fast-check'
import type { LightMyRequestResponse } from 'fastify'
import sharp from 'sharp'
import { afterAll, describe, expect, it } from 'vitest'
import { newUser, signIn, startTestApp, type SignedIn } from './support/app.js'
import { answerChecker, fetchSpec, invalid, operationsOf, resolve, secretsIn, valid, type JsonSchema, type Operation, type Parameter } from './support/openapi-walk.js'

// Every operation of /openapi.json, walked with requests made from its own schemas (fast-check):
// valid ones and ones broken in one place, signed in as its caller, as another user, as an admin
// and as no one, with the ids of every user's things. The checks are schemathesis' own:
// - no answer is a 5xx;
// - every answer has a status the operation declares, a declared content type, and a JSON body
//   that fits the declared schema (ajv, against the document);
// - a request broken against the schema is refused with a 4xx;
// - no answer holds a password, a bcrypt hash, a token or ticket (or their hash) it should not.
// FUZZ_RUNS cases an operation (100 by default; `npm run fuzz` runs 1,000); FUZZ_SEED replays a
// run. A table per operation is printed at the end.

const RUNS = Number(process.env.FUZZ_RUNS ?? 100)
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31)

const t = await startTestApp({
  JOB_SWEEP_INTERVAL: '0',
  // Random sign-ins fail by the thousand from one address; the actors must still sign in again.
  LOGIN_FAILURES_PER_HOUR: '1000000',
  LOGIN_FAILURES_PER_ADDRESS_PER_HOUR: '1000000',
  SEND_RATE_LIMIT: '1000000',
})
afterAll(async () => t.close())
const spec = await fetchSpec(t.app)
const operations = operationsOf(spec)
const check = answerChecker(spec)

const jpeg = await sharp({ create: { width: 48, height: 48, channels: 3, background: { r: 200, g: 90, b: 30 } } }).jpeg().toBuffer()

/** Every secret handed out: passwords, tokens, tickets. None may show where it does not belong. */
const secrets = new Set<string>()
type Actor = 'alice' | 'bob' | 'admin'
const actors = {} as Record<Actor, SignedIn>
const ids = new Set<string>()

async function makeActor(name: Actor): Promise<SignedIn> {
  const user = await newUser(t.app, { roles: ['CLIENT', 'WORKER'], first_name: name })
  if (name === 'admin') await t.app.accounts.setAdmin(user.email, true)
  await t.app.inject({ method: 'PUT', url: '/user/picture', headers: { ...user.auth, 'content-type': 'image/jpeg' }, payload: jpeg })
  const token = name === 'admin' ? await signIn(t.app, user.email, user.password) : user.token
  const actor = { ...user, token, auth: { authorization: `Bearer ${token}` } }
  // A second session, whose id the fuzzer may end.
  secrets.add(await signIn(t.app, user.email, user.password))
  for (const secret of [user.password, user.token, token]) secrets.add(secret)
  ids.add(user.id)
  const sessions = await t.app.inject({ url: '/sessions', headers: actor.auth })
  for (const s of sessions.json().items) ids.add(s.id)
  return actor
}

/** After a change that may end sessions or take roles away: each actor signed in again, as it was. */
async function restoreActors() {
  let remade = false
  for (const name of Object.keys(actors) as Actor[]) {
    const actor = actors[name]
    const me = await t.app.inject({ url: '/user', headers: actor.auth })
    const roles: string[] = me.statusCode === 200 ? me.json().roles : []
    if (me.statusCode === 200 && (name !== 'admin' || roles.includes('ADMIN'))) continue
    try {
      if (name === 'admin') await t.app.accounts.setAdmin(actor.email, true)
      const token = await signIn(t.app, actor.email, actor.password)
      secrets.add(token)
      actors[name] = { ...actor, token, auth: { authorization: `Bearer ${token}` } }
    } catch {
      // Deleted, or its password or email changed: a new user takes its place, with things of its own.
      actors[name] = await makeActor(name)
      remade = true
    }
  }
  if (remade) await makeThings()
}

/** Things of alice's and bob's to aim at: jobs both ways (one with a price, one without), messages. */
async function makeThings() {
  for (const [client, worker] of [[actors.alice, actors.bob], [actors.bob, actors.alice]] as const) {
    for (const price of [{ amount: 2500, currency: 'EUR' }, undefined]) {
      const job = await t.app.inject({ method: 'POST', url: '/job', headers: client.auth, payload: { worker_id: worker.id, title: 'Paint the fence', ...(price ? { price } : {}) } })
      if (job.statusCode === 201) ids.add(job.json().id)
    }
    const message = await t.app.inject({ method: 'POST', url: '/send', headers: client.auth, payload: { to: worker.id, text: 'Hello there' } })
    if (message.statusCode === 201) ids.add(message.json().id)
  }
}
for (const name of ['alice', 'bob', 'admin'] as const) actors[name] = await makeActor(name)
await makeThings()
// An offered category, for what names categories (a saved alert's list of them).
const category = await t.app.inject({ method: 'POST', url: '/admin/categories', headers: actors.admin.auth, payload: { name: 'Fuzzing' } })
const categoryId = category.json().id as string
ids.add(categoryId)
const pools = {
  ids: () => [...ids],
  // Real ISO 4217 codes besides the random three letters (which the service refuses by name).
  named: () => ({ email: Object.values(actors).map((a) => a.email), password: [actors.alice.password], current_password: [actors.alice.password], currency: ['EUR', 'USD'], time_zone: ['Europe/Berlin', 'UTC'], category_ids: [[categoryId]] }),
}

interface Request {
  actor: Actor | 'none'
  params: Record<string, unknown>
  query: Record<string, unknown>
  headers: Record<string, unknown>
  /** Media type and body; undefined sends none. */
  body?: { type: string; value: unknown }
  /** What was broken, for an invalid request. */
  broken?: string
}

const paramsIn = (op: Operation, where: Parameter['in']) => op.parameters.filter((p) => p.in === where)

function partOf(params: Parameter[]): fc.Arbitrary<Record<string, unknown>> {
  // Text parts take their values as text; a header of a random string would mostly be refused by
  // Node before the app, so headers take values from their schema only when they have a shape.
  return fc.record(Object.fromEntries(params.map((p) => [p.name, valid(spec, p.schema, pools)])), { requiredKeys: params.filter((p) => p.required || p.in === 'path').map((p) => p.name) })
}

/** A form body (a provider's answer posted to its callback), sent URL-encoded. */
const FORM = 'application/x-www-form-urlencoded'

function validRequest(op: Operation): fc.Arbitrary<Request> {
  const types = Object.keys(op.bodies)
  const body: fc.Arbitrary<Request['body']> = types.length === 0
    ? fc.constant(undefined)
    : types.includes('application/json')
      ? valid(spec, op.bodies['application/json']!, pools).map((value) => ({ type: 'application/json', value }))
      : types.includes(FORM)
        ? valid(spec, op.bodies[FORM]!, pools).map((value) => ({ type: FORM, value }))
        : fc.constant({ type: 'image/jpeg', value: jpeg })
  return fc.record({
    actor: fc.constantFrom<Request['actor']>('alice', 'alice', 'bob', 'admin', 'none'),
    params: partOf(paramsIn(op, 'path')),
    query: partOf(paramsIn(op, 'query')),
    headers: partOf(paramsIn(op, 'header').filter((p) => p.name !== 'if-match')).map((h) => ({ ...h })),
    body,
  })
}

/** A text value (path, query) the schema surely refuses, or undefined. */
function invalidText(raw: JsonSchema): fc.Arbitrary<string> | undefined {
  const schema = resolve(spec, raw)
  if (schema.enum || schema.anyOf) return fc.constant('NOT_ONE_OF_THEM')
  if (schema.type === 'integer') return fc.constantFrom('abc', '1.5', ...(schema.maximum !== undefined ? [String(schema.maximum + 1)] : []), ...(schema.minimum !== undefined ? [String(schema.minimum - 1)] : []))
  if (schema.type === 'number') return fc.constantFrom('abc', ...(schema.maximum !== undefined ? [String(schema.maximum + 1)] : []))
  if (schema.format === 'uuid') return fc.constantFrom('not-a-uuid', '0190f3c4-0000-7000-8000', '../users')
  if (schema.type === 'string' && schema.maxLength !== undefined) return fc.constant('x'.repeat(schema.maxLength + 1))
  return undefined
}

/** A valid request broken in one place the schema pins down; undefined when the operation takes nothing to break. */
function invalidRequest(op: Operation): fc.Arbitrary<Request> | undefined {
  const breaks: fc.Arbitrary<(r: Request) => Request>[] = []
  for (const p of op.parameters.filter((p) => p.in !== 'header')) {
    const bad = invalidText(p.schema)
    const part = p.in === 'path' ? 'params' : 'query'
    if (bad) breaks.push(bad.map((value) => (r: Request) => ({ ...r, [part]: { ...r[part], [p.name]: value }, broken: `${p.in} ${p.name} = ${JSON.stringify(value)}` })))
  }
  const json = op.bodies['application/json'] && resolve(spec, op.bodies['application/json'])
  if (json) {
    const set = (name: string, value: unknown, broken: string) => (r: Request) => ({ ...r, body: { type: 'application/json', value: { ...(r.body?.value as object), [name]: value } }, broken })
    for (const [name, schema] of Object.entries(json.properties ?? {})) {
      const bad = invalid(spec, schema)
      if (bad) breaks.push(bad.map((value) => set(name, value, `body ${name} = ${JSON.stringify(value)}`)))
    }
    if (json.additionalProperties === false) breaks.push(fc.constantFrom('is_admin', 'role', 'password_hash', 'created_at').map((name) => set(name, true, `unknown body field ${name}`)))
    for (const name of json.required ?? []) {
      breaks.push(fc.constant((r: Request) => {
        const { [name]: _dropped, ...rest } = r.body!.value as Record<string, unknown>
        return { ...r, body: { type: 'application/json', value: rest }, broken: `no body ${name}` }
      }))
    }
    breaks.push(fc.constantFrom('[]', '"text"', '{"a":', '').map((raw) => (r: Request) => ({ ...r, body: { type: 'application/json', value: raw }, broken: `body ${raw || '(empty)'}` })))
  } else if (Object.keys(op.bodies).length > 0) {
    breaks.push(fc.uint8Array({ maxLength: 200 }).map((bytes) => (r: Request) => ({ ...r, body: { type: 'image/png', value: Buffer.from(bytes) }, broken: 'an image of random bytes' })))
  }
  if (breaks.length === 0) return undefined
  return fc.tuple(validRequest(op), fc.oneof(...breaks)).map(([r, breakIt]) => breakIt(r))
}

async function send(op: Operation, r: Request): Promise<{ url: string; res: LightMyRequestResponse }> {
  const path = op.path.replace(/\{([^}]+)\}/g, (_m, name: string) => encodeURIComponent(String(r.params[name] ?? '')))
  const query = new URLSearchParams(Object.entries(r.query).map(([k, v]) => [k, String(v)])).toString()
  const url = path + (query ? `?${query}` : '')
  const headers: Record<string, string> = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, String(v)]))
  if (r.actor !== 'none') Object.assign(headers, actors[r.actor].auth)
  let payload: string | Buffer | undefined
  if (r.body) {
    headers['content-type'] = r.body.type
    payload = Buffer.isBuffer(r.body.value)
      ? r.body.value
      : typeof r.body.value === 'string' && r.broken?.startsWith('body ')
        ? r.body.value
        : r.body.type === FORM
          ? new URLSearchParams(Object.entries(r.body.value as Record<string, unknown>).map(([k, v]) => [k, String(v)])).toString()
          : JSON.stringify(r.body.value)
  }
  const res = await t.app.inject({ method: op.method, url, headers, ...(payload !== undefined ? { payload } : {}) })
  return { url, res }
}

// Operations whose success may end a session or change a role: the actors are restored after.
const SESSION_CHANGERS = new Set(['signOut', 'signOutEverywhere', 'endSession', 'updateUser', 'deleteUser'])
// Operations whose answers are meant to hold a secret just made.
const HANDS_OUT = { signIn: 'access_token', createWsTicket: 'ticket', signInSecondFactor: 'access_token', exchangeProviderCode: 'access_token', setUpTwoFactor: 'secret' } as Record<string, string>
// Operations that need a secret random requests can't hold (a code from an authenticator app,
// a mail or a provider, a real push key, a provider's signature, a signed unsubscribe link): their own suites reach past
// the door; here they must only refuse, never fail.
const NEEDS_A_SECRET = new Set(['signInSecondFactor', 'confirmTwoFactor', 'exchangeProviderCode', 'confirmEmail', 'undoEmailChange', 'resetPassword', 'addPushSubscription', 'receiveStripeWebhook', 'getUnsubscribe', 'unsubscribe'])

interface Tally {
  cases: number
  invalid: number
  statuses: Map<number, number>
  failures: string[]
}
const tallies = new Map<string, Tally>()

afterAll(() => {
  const rows = operations.map((op) => {
    const tally = tallies.get(op.operationId)
    const statuses = tally ? [...tally.statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ') : 'not run'
    return `${`${op.method} ${op.path}`.padEnd(30)} ${String(tally?.cases ?? 0).padStart(5)} ${String(tally?.invalid ?? 0).padStart(7)} ${String(tally?.failures.length ?? 0).padStart(8)}  ${statuses}`
  })
  console.log([`fuzz: ${RUNS} cases an operation, seed ${SEED} (FUZZ_SEED=${SEED} replays it)`, `${'operation'.padEnd(30)} cases invalid failures  statuses`, ...rows].join('\n'))
})

describe(`every operation of /openapi.json, ${RUNS} random requests each`, () => {
  it('covers the whole document', () => {
    expect(operations.length).toBeGreaterThan(30)
  })

  it.each(operations.map((op) => [`${op.method} ${op.path}`, op] as const))('%s', async (_name, op) => {
    const tally: Tally = { cases: 0, invalid: 0, statuses: new Map(), failures: [] }
    tallies.set(op.operationId, tally)
    const broken = invalidRequest(op)
    const cases = broken ? fc.oneof({ arbitrary: validRequest(op), weight: 3 }, { arbitrary: broken, weight: 1 }) : validRequest(op)
    await fc.assert(
      fc.asyncProperty(cases, async (r) => {
        const { url, res } = await send(op, r)
        tally.cases++
        if (r.broken) tally.invalid++
        tally.statuses.set(res.statusCode, (tally.statuses.get(res.statusCode) ?? 0) + 1)
        const wrong: string[] = []
        if (res.statusCode >= 500) wrong.push(`answered ${res.statusCode}`)
        if (r.broken && (res.statusCode < 400 || res.statusCode >= 500)) wrong.push(`took a broken request (${r.broken}) with ${res.statusCode}`)
        wrong.push(...check(op, res))
        const handed = HANDS_OUT[op.operationId] && res.statusCode < 300 ? [res.json()[HANDS_OUT[op.operationId]!] as string] : []
        wrong.push(...secretsIn(res, secrets, handed, handed.length > 0 ? [HANDS_OUT[op.operationId]!] : []).map((s) => `holds ${s}`))
        for (const secret of handed) secrets.add(secret)
        if (wrong.length > 0) {
          tally.failures.push(`${op.method} ${url} as ${r.actor}${r.body ? ` with ${r.body.type} ${Buffer.isBuffer(r.body.value) ? `${r.body.value.length} bytes` : JSON.stringify(r.body.value).slice(0, 300)}` : ''}: ${wrong.join('; ')} -> ${res.statusCode} ${res.body.slice(0, 300)}`)
        }
        if (SESSION_CHANGERS.has(op.operationId) && res.statusCode < 300) await restoreActors()
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    )
    expect(tally.failures.slice(0, 5), `${tally.failures.length} of ${tally.cases} failed`).toEqual([])
    // Valid requests reach past the checks at the door for some actor (a socket needs an upgrade,
    // which the realtime tests make).
    if (op.operationId !== 'openWebSocket' && !NEEDS_A_SECRET.has(op.operationId)) expect([...tally.statuses.keys()].some((s) => s < 400 || s === 403 || s === 404 || s === 409), `only ${[...tally.statuses.keys()]}`).toBe(true)
  }, 60_000 + RUNS * 1_000)
})
