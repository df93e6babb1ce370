import type { FastifyInstance } from 'fastify'
import sharp from 'sharp'
import { newUser, type SignedIn } from './app.js'

// Pieces the trust tests share: admins, and jobs walked to PAID through the API.

let picture: Buffer | undefined

/** A user made ADMIN the way the first admin is (the command line's call). */
export async function newAdmin(app: FastifyInstance, first_name = 'Ada'): Promise<SignedIn> {
  const admin = await newUser(app, { roles: ['CLIENT'], first_name, last_name: 'Admin' })
  if (!(await app.accounts.setAdmin(admin.email, true))) throw new Error('could not make an admin')
  return admin
}

/** A worker with a picture and payouts set up (the local provider's onboarding link): what accepting a priced job needs. */
export async function newWorker(app: FastifyInstance, first_name = 'Wanda'): Promise<SignedIn> {
  const worker = await newUser(app, { roles: ['WORKER'], first_name, last_name: 'Worker' })
  picture ??= await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 30, g: 120, b: 200 } } }).jpeg().toBuffer()
  const res = await app.inject({ method: 'PUT', url: '/user/picture', headers: { ...worker.auth, 'content-type': 'image/jpeg' }, payload: picture })
  if (res.statusCode !== 200) throw new Error(`picture: ${res.body}`)
  const account = await app.inject({ method: 'POST', url: '/payments/account', headers: worker.auth })
  if (account.statusCode !== 201) throw new Error(`payments account: ${account.body}`)
  const onboarded = await app.inject({ url: account.json().onboarding_url })
  if (onboarded.statusCode !== 200) throw new Error(`onboarding: ${onboarded.body}`)
  return worker
}

/** An offer from the client to the worker, in REQUESTED, its price held from the test card. */
export async function offerJob(app: FastifyInstance, client: SignedIn, worker: SignedIn, extra: Record<string, unknown> = {}): Promise<{ id: string }> {
  const res = await app.inject({ method: 'POST', url: '/job', headers: client.auth, payload: { worker_id: worker.id, title: 'Fix the tap', price: { amount: 2500, currency: 'EUR' }, payment_method: 'pm_card_visa', ...extra } })
  if (res.statusCode !== 201) throw new Error(`offer: ${res.body}`)
  return res.json()
}

/** A job of the client's done by the worker and PAID (the local payment provider pays out at once). */
export async function paidJob(app: FastifyInstance, client: SignedIn, worker: SignedIn): Promise<string> {
  const { id } = await offerJob(app, client, worker)
  const read = await app.inject({ url: `/job/${id}`, headers: worker.auth })
  const steps: [SignedIn, string, Record<string, string>][] = [
    [worker, 'ACCEPTED', { 'if-match': String(read.headers.etag) }],
    [worker, 'STARTED', {}],
    [worker, 'COMPLETED', {}],
    [client, 'PENDING_PAYMENT', {}],
  ]
  for (const [who, status, headers] of steps) {
    const res = await app.inject({ method: 'POST', url: `/job/${id}/status`, headers: { ...who.auth, ...headers }, payload: { status } })
    if (res.statusCode !== 200) throw new Error(`${status}: ${res.body}`)
  }
  const done = await app.inject({ url: `/job/${id}`, headers: client.auth })
  if (done.json().status !== 'PAID') throw new Error(`not PAID: ${done.body}`)
  return id
}
