import type { FastifyInstance, InjectOptions } from 'fastify'
import sharp from 'sharp'

// The demo people of `npm run seed -- --demo`: a few clients and workers a newcomer signs in as,
// with pictures, places on the map, conversations and jobs in each state. They are made through
// the API itself (the app's routes, in process), as an app would make them, so they obey every
// rule the API has; a second run finds them and adds nothing.

export const DEMO_PASSWORD = 'demo password'

interface Person {
  email: string
  first_name: string
  last_name: string
  role: 'CLIENT' | 'WORKER'
  /** Metres east and north of the city centre, for workers on the map. */
  offset?: [number, number]
  colour?: string
}

export const DEMO_PEOPLE: Person[] = [
  { email: 'camille@demo.example', first_name: 'Camille', last_name: 'Durand', role: 'CLIENT' },
  { email: 'omar@demo.example', first_name: 'Omar', last_name: 'Haddad', role: 'CLIENT' },
  { email: 'ana@demo.example', first_name: 'Ana', last_name: 'Lima', role: 'WORKER', offset: [300, 200], colour: '#e8912f' },
  { email: 'ben@demo.example', first_name: 'Ben', last_name: 'Okafor', role: 'WORKER', offset: [-900, 500], colour: '#2f7de8' },
  { email: 'chloe@demo.example', first_name: 'Chloé', last_name: 'Martin', role: 'WORKER', offset: [1500, -1200], colour: '#3aa35b' },
  { email: 'dmitri@demo.example', first_name: 'Dmitri', last_name: 'Nowak', role: 'WORKER', offset: [-2500, -800], colour: '#a33a8f' },
  { email: 'eva@demo.example', first_name: 'Eva', last_name: 'Tanaka', role: 'WORKER', offset: [4000, 3000], colour: '#d94040' },
]

type Signed = Person & { id: string; auth: { authorization: string } }

export interface DemoOptions {
  centre: { lat: number; lon: number }
  /** Seconds the workers stay on the map. */
  ttl: number
  onStep?: (step: string) => void
}

export async function seedDemo(app: FastifyInstance, options: DemoOptions): Promise<{ people: Signed[]; created: boolean }> {
  const call = async (request: InjectOptions, expected: number[]) => {
    const response = await app.inject(request)
    if (!expected.includes(response.statusCode)) throw new Error(`${request.method} ${request.url} answered ${response.statusCode}: ${response.body}`)
    return response
  }
  const people: Signed[] = []
  let created = false
  for (const person of DEMO_PEOPLE) {
    const signup = await call({ method: 'POST', url: '/signup', payload: { email: person.email, password: DEMO_PASSWORD, first_name: person.first_name, last_name: person.last_name, roles: [person.role] } }, [201, 409])
    created ||= signup.statusCode === 201
    // The demo's example.com addresses receive no mail: their emails are taken as confirmed, as
    // an admin could, so that the demo people can message, offer and accept at once.
    await app.accounts.confirmEmailOf(person.email)
    const signIn = await call({ method: 'POST', url: '/authorize', payload: { email: person.email, password: DEMO_PASSWORD } }, [200])
    const { access_token: token, user } = signIn.json() as { access_token: string; user: { id: string; picture_url: string | null } }
    const signed = { ...person, id: user.id, auth: { authorization: `Bearer ${token}` } }
    people.push(signed)
    if (person.role === 'WORKER' && user.picture_url === null) {
      const picture = await sharp({ create: { width: 256, height: 256, channels: 3, background: person.colour ?? '#888888' } }).png().toBuffer()
      const boundary = 'demo-picture'
      const body = Buffer.concat([
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="picture"; filename="${person.first_name}.png"\r\nContent-Type: image/png\r\n\r\n`),
        picture,
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ])
      await call({ method: 'PUT', url: '/user/picture', headers: { ...signed.auth, 'content-type': `multipart/form-data; boundary=${boundary}` }, payload: body }, [200])
    }
    if (person.role === 'WORKER') {
      // Payouts set up (the local provider's onboarding link enables them), as accepting priced jobs needs.
      const account = await call({ method: 'POST', url: '/payments/account', headers: signed.auth }, [200, 201])
      const onboarding = (account.json() as { onboarding_url?: string }).onboarding_url
      if (onboarding) await call({ method: 'GET', url: onboarding }, [200])
    }
    if (person.offset) {
      const [east, north] = person.offset
      const lat = options.centre.lat + (north / 6_371_000) * (180 / Math.PI)
      const lon = options.centre.lon + (east / (6_371_000 * Math.cos((options.centre.lat * Math.PI) / 180))) * (180 / Math.PI)
      await call({ method: 'POST', url: '/location', headers: signed.auth, payload: { lat, lon, ttl: options.ttl } }, [200])
    }
    options.onStep?.(`${person.first_name} ${person.last_name} (${person.role.toLowerCase()})`)
  }

  const [camille, omar, ana, ben, chloe, dmitri, eva] = people as [Signed, Signed, Signed, Signed, Signed, Signed, Signed]
  const existing = (await call({ method: 'GET', url: '/jobs?limit=1', headers: camille.auth }, [200])).json() as { items: unknown[] }
  if (existing.items.length > 0) return { people, created }

  const send = (from: Signed, to: Signed, text: string) => call({ method: 'POST', url: '/send', headers: from.auth, payload: { to: to.id, text } }, [200, 201])
  await send(camille, ana, 'Hello Ana! Could you look at a leaking kitchen tap this week?')
  await send(ana, camille, 'Hi Camille, sure: Thursday afternoon works for me.')
  await send(camille, ana, 'Perfect, I am sending you the offer now.')
  await send(omar, ben, 'Hi Ben, do you assemble furniture? Two wardrobes.')
  await send(ben, omar, 'I do, but not before next month, sorry.')
  options.onStep?.('conversations')

  const inTwoDays = new Date(Date.now() + 2 * 86_400_000).toISOString()
  const offer = (client: Signed, worker: Signed, title: string, amount: number) =>
    call({ method: 'POST', url: '/job', headers: client.auth, payload: { worker_id: worker.id, title, description: `${title}, at my place.`, price: { amount, currency: 'EUR' }, payment_method: 'pm_card_visa', scheduled_at: inTwoDays } }, [201]).then(
      (r) => r.json() as { id: string; version: number },
    )
  const move = async (actor: Signed, job: { id: string }, status: string, extra: Record<string, unknown> = {}) => {
    const current = (await call({ method: 'GET', url: `/job/${job.id}`, headers: actor.auth }, [200])).json() as { version: number }
    await call({ method: 'POST', url: `/job/${job.id}/status`, headers: { ...actor.auth, 'if-match': `"${current.version}"` }, payload: { status, ...extra } }, [200])
  }
  // One job in each state a newcomer will want to see, each paid for with the local provider's test card (held until approval).
  await offer(camille, ana, 'Fix a leaking kitchen tap', 4500)
  const accepted = await offer(camille, chloe, 'Paint the hallway', 28000)
  await move(chloe, accepted, 'ACCEPTED')
  const started = await offer(camille, dmitri, 'Mount three shelves', 6000)
  await move(dmitri, started, 'ACCEPTED')
  await move(dmitri, started, 'STARTED')
  const completed = await offer(camille, eva, 'Deep-clean the oven', 5500)
  await move(eva, completed, 'ACCEPTED')
  await move(eva, completed, 'STARTED')
  await move(eva, completed, 'COMPLETED')
  const paid = await offer(omar, ana, 'Replace a light switch', 3500)
  await move(ana, paid, 'ACCEPTED')
  await move(ana, paid, 'STARTED')
  await move(ana, paid, 'COMPLETED')
  await move(omar, paid, 'PENDING_PAYMENT')
  const declined = await offer(omar, ben, 'Assemble two wardrobes', 12000)
  await move(ben, declined, 'DECLINED', { reason: 'Fully booked until next month' })
  options.onStep?.('jobs (REQUESTED, ACCEPTED, STARTED, COMPLETED, PAID, DECLINED)')
  return { people, created }
}
