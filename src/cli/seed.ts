// npm run seed -- --workers 100000 --city paris        (or --city 48.85,2.35, or --country france)
// npm run seed -- --demo                                (and demo people to sign in as)
//
// Fills the configured stores (DATABASE_URL, REDIS_URL, as the server reads them) with demo
// workers around a city or spread over a country: users in the database and their live
// locations in the live store, so that a newcomer can search a realistic map. The same options
// make the same workers (their ids come from the seed), so a second run adds none. With --demo,
// demo people too (src/cli/demo.ts), and every seeded worker gets a picture and the demo
// password; never in production (NODE_ENV=production).

import { createHash } from 'node:crypto'
import bcrypt from 'bcrypt'
import cliProgress from 'cli-progress'
import sharp from 'sharp'
import { v7 as uuidv7 } from 'uuid'
import { pathToFileURL } from 'node:url'
import { loadConfig } from '../config.js'
import { blurPosition, cardOf } from '../features/location/index.js'
// The users table's types (it writes users straight to the database, a thousand a statement).
import '../features/accounts/index.js'
import { buildApp } from '../app.js'
import { toProfilePicture } from '../platform/images.js'
import { openPlatform, type Platform } from '../platform/index.js'
import { DEMO_PASSWORD, seedDemo } from './demo.js'

export const CITIES: Record<string, [number, number]> = {
  paris: [48.8566, 2.3522],
  berlin: [52.52, 13.405],
  london: [51.5074, -0.1278],
  'new-york': [40.7128, -74.006],
  tokyo: [35.6762, 139.6503],
  'sao-paulo': [-23.5505, -46.6333],
  lagos: [6.5244, 3.3792],
  sydney: [-33.8688, 151.2093],
}

/** Bounding boxes [south, west, north, east] for a sparse spread. */
export const COUNTRIES: Record<string, [number, number, number, number]> = {
  france: [42.5, -4.5, 51, 8],
  germany: [47.4, 6, 54.9, 15],
  japan: [31, 130, 41.5, 142],
}

export type Area = { kind: 'city'; lat: number; lon: number } | { kind: 'country'; box: [number, number, number, number] }

export function parseCity(value: string): Area {
  const named = CITIES[value.toLowerCase()]
  if (named) return { kind: 'city', lat: named[0], lon: named[1] }
  const parts = value.split(',').map(Number)
  if (parts.length === 2 && parts.every(Number.isFinite) && Math.abs(parts[0]!) <= 90 && Math.abs(parts[1]!) <= 180) {
    return { kind: 'city', lat: parts[0]!, lon: parts[1]! }
  }
  throw new Error(`--city takes one of ${Object.keys(CITIES).join(', ')} or lat,lon (got "${value}")`)
}

export function parseCountry(value: string): Area {
  const box = COUNTRIES[value.toLowerCase()]
  if (!box) throw new Error(`--country takes one of ${Object.keys(COUNTRIES).join(', ')} (got "${value}")`)
  return { kind: 'country', box }
}

/** When seeded workers were made, as far as their ids and sign-up dates say. */
const SEED_EPOCH = Date.UTC(2026, 0, 1)

/** A seeded random generator (mulberry32), so that a run can be repeated. */
export function random(seed: number) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * A point of the area: in a city, normally distributed around the centre (sigma 8 km, none past
 * 30 km), as a metro area's people are; in a country, uniform over its box.
 */
export function pointIn(area: Area, rnd: () => number): { lat: number; lon: number } {
  if (area.kind === 'country') {
    const [s, w, n, e] = area.box
    return { lat: s + rnd() * (n - s), lon: w + rnd() * (e - w) }
  }
  let d: number
  do {
    d = 8000 * Math.sqrt(-2 * Math.log(1 - rnd())) // Rayleigh: a 2-D normal's distance from its centre
  } while (d > 30_000)
  const bearing = rnd() * 2 * Math.PI
  const lat = area.lat + ((d * Math.cos(bearing)) / 6_371_000) * (180 / Math.PI)
  const lon = area.lon + ((d * Math.sin(bearing)) / (6_371_000 * Math.cos((area.lat * Math.PI) / 180))) * (180 / Math.PI)
  return { lat, lon }
}

const FIRST = ['Ana', 'Ben', 'Chloé', 'Dmitri', 'Eva', 'Farid', 'Grace', 'Hugo', 'Ines', 'Jonas', 'Keiko', 'Luca', 'Maya', 'Noah', 'Olu', 'Priya']
const LAST = ['Martin', 'Schmidt', 'Dubois', 'Rossi', 'Silva', 'Nowak', 'Tanaka', 'Okafor', 'Kim', 'Haddad', 'Jensen', 'Garcia']

/** What --demo gives every seeded worker: a picture and a password to sign in with. */
export interface DemoWorkers {
  passwordHash: string
  pictures: { image: Buffer; etag: string }[]
}

export interface SeedOptions {
  workers: number
  demo?: DemoWorkers
  area: Area
  /** Seconds the seeded locations live. */
  ttl: number
  seed?: number
  /** Locations written at once. */
  concurrency?: number
  onProgress?: (done: number) => void
  /**
   * Categories (existing ids) to give the workers, one each at random, with a random rating and
   * hourly rate: in their profiles and in the cards searches filter on.
   */
  categoryIds?: readonly string[]
}

/** Inserts `workers` users with role WORKER and puts each on the map; answers their ids. */
export async function seedWorkers(platform: Platform, options: SeedOptions): Promise<{ points: { lat: number; lon: number }[] }> {
  const rnd = random(options.seed ?? 1)
  const db = platform.database.db
  const batch = 1000
  const concurrency = options.concurrency ?? 1000
  const expiresAt = new Date(Date.now() + options.ttl * 1000)
  const points: { lat: number; lon: number }[] = []
  for (let done = 0; done < options.workers; done += batch) {
    const rows = Array.from({ length: Math.min(batch, options.workers - done) }, (_, i) => {
      // Ids from the seed (a UUIDv7 of a fixed time and seeded random bits): a second run with
      // the same options makes the same workers, which the database already holds.
      const id = uuidv7({ msecs: SEED_EPOCH + done + i, random: Uint8Array.from({ length: 16 }, () => Math.floor(rnd() * 256)) })
      const picture = options.demo ? options.demo.pictures[(done + i) % options.demo.pictures.length]! : undefined
      return {
        id,
        email: `worker-${id}@seed.example`,
        first_name: FIRST[Math.floor(rnd() * FIRST.length)]!,
        last_name: LAST[Math.floor(rnd() * LAST.length)]!,
        password_hash: options.demo?.passwordHash ?? null,
        roles: ['WORKER' as const],
        picture_etag: picture?.etag ?? null,
        picture,
      }
    })
    const createdAt = new Date(SEED_EPOCH)
    const categoryIds = options.categoryIds ?? []
    const facets = rows.map(() =>
      categoryIds.length > 0
        ? { categories: [categoryIds[Math.floor(rnd() * categoryIds.length)]!], rating: 1 + Math.round(rnd() * 400) / 100, rate: { amount: 1000 + Math.floor(rnd() * 9000), currency: 'EUR' } }
        : undefined,
    )
    const located = rows.map((row, i) => ({ id: row.id, at: pointIn(options.area, rnd), card: cardOf({ ...row, created_at: createdAt }, facets[i]), categories: facets[i]?.categories ?? [] }))
    const users = db
      .insertInto('users')
      // Seeded addresses receive no mail: they are taken as confirmed.
      .values(rows.map(({ picture: _picture, ...row }) => ({ ...row, created_at: createdAt, email_confirmed_at: createdAt })))
      .onConflict((conflict) => conflict.column('id').doNothing())
      .execute()
      .then(async () => {
        const pictures = rows.filter((row) => row.picture).map((row) => ({ user_id: row.id, image: row.picture!.image, etag: row.picture!.etag }))
        if (pictures.length > 0) await db.insertInto('user_pictures').values(pictures).onConflict((conflict) => conflict.column('user_id').doNothing()).execute()
        const profiled = rows.flatMap((row, i) => (facets[i] ? [{ row, facets: facets[i] }] : []))
        if (profiled.length > 0) {
          await db.insertInto('profiles').values(profiled.map(({ row, facets }) => ({ user_id: row.id, bio: '', languages: [], hourly_rate_amount: facets.rate.amount, hourly_rate_currency: facets.rate.currency, updated_at: createdAt }))).onConflict((conflict) => conflict.column('user_id').doNothing()).execute()
          await db.insertInto('profile_categories').values(profiled.map(({ row, facets }) => ({ user_id: row.id, category_id: facets.categories[0]! }))).onConflict((conflict) => conflict.doNothing()).execute()
        }
      })
    for (let i = 0; i < located.length; i += concurrency) {
      await Promise.all(
        located.slice(i, i + concurrency).map(({ id, at, card, categories }) => {
          points.push(at)
          return platform.live.locations.set(id, { ...blurPosition(at.lat, at.lon, rnd), roles: ['WORKER'], expiresAt, card, categories, version: createdAt.getTime() })
        }),
      )
    }
    await users
    options.onProgress?.(done + rows.length)
  }
  return { points }
}

/** Options take a value (`--workers 10`), but for the flags named. */
function parseArgs(argv: string[], flags: string[]) {
  const args = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i]!
    if (!name.startsWith('--')) throw new Error(`unexpected argument "${name}"`)
    if (flags.includes(name.slice(2))) {
      args.set(name.slice(2), 'true')
      continue
    }
    const value = argv[i + 1]
    if (value === undefined || value.startsWith('--')) throw new Error(`${name} needs a value`)
    args.set(name.slice(2), value)
    i++
  }
  return args
}

/** A few plain pictures for seeded workers: one colour each, as the API would store them. */
async function demoPictures(): Promise<DemoWorkers['pictures']> {
  const colours = ['#e8912f', '#2f7de8', '#3aa35b', '#a33a8f', '#d94040', '#3ab5b0', '#8a6d3b', '#5c5ce0']
  return Promise.all(
    colours.map(async (background) => {
      const image = await toProfilePicture(await sharp({ create: { width: 64, height: 64, channels: 3, background } }).png().toBuffer())
      return { image, etag: createHash('sha256').update(image).digest('base64url').slice(0, 16) }
    }),
  )
}

async function main() {
  const args = parseArgs(process.argv.slice(2), ['demo'])
  const demo = args.has('demo')
  const workers = Number(args.get('workers') ?? 10_000)
  if (!Number.isInteger(workers) || workers < 0 || workers > 10_000_000) throw new Error('--workers takes a whole number from 0 to 10000000')
  const ttl = Number(args.get('ttl') ?? 86_400)
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 86_400) throw new Error('--ttl takes seconds from 1 to 86400')
  const area = args.has('country') ? parseCountry(args.get('country')!) : parseCity(args.get('city') ?? 'paris')
  for (const name of args.keys()) if (!['workers', 'ttl', 'city', 'country', 'demo'].includes(name)) throw new Error(`unknown option --${name}`)
  if (demo && process.env.NODE_ENV === 'production') throw new Error('--demo makes accounts with a published password: it is refused where NODE_ENV=production')

  const config = loadConfig()
  const platform = await openPlatform(config)
  const started = Date.now()
  try {
    if (workers > 0) {
      console.log(`seeding ${workers} workers (${area.kind === 'city' ? `around ${area.lat},${area.lon}` : `over ${args.get('country')}`}) into ${platform.database.kind} and the ${platform.live.kind} live store, for ${ttl} s`)
      const bar = new cliProgress.SingleBar({ format: '  {bar} {value}/{total} workers  {rate}/s  eta {eta}s', noTTYOutput: true, notTTYSchedule: 2000 }, cliProgress.Presets.shades_classic)
      bar.start(workers, 0, { rate: 0 })
      const demoWorkers = demo ? { passwordHash: await bcrypt.hash(DEMO_PASSWORD, config.bcryptCost), pictures: await demoPictures() } : undefined
      try {
        await seedWorkers(platform, { workers, area, ttl, demo: demoWorkers, onProgress: (done) => bar.update(done, { rate: Math.round(done / ((Date.now() - started) / 1000)) }) })
      } finally {
        bar.stop()
      }
    }
    if (demo) {
      const centre = area.kind === 'city' ? area : { lat: (area.box[0] + area.box[2]) / 2, lon: (area.box[1] + area.box[3]) / 2 }
      console.log('demo people, through the API:')
      // The app in this process, without its timers and background work: the servers do those.
      const appConfig = { ...config, jobSweepInterval: 0, queueWork: false, logLevel: 'warn' }
      const app = await buildApp(appConfig, platform)
      try {
        const { people, created } = await seedDemo(app, { centre, ttl, onStep: (step) => console.log(`  ${step}`) })
        console.log(`\n${created ? 'Demo accounts' : 'Demo accounts (already there)'}, password "${DEMO_PASSWORD}":`)
        for (const person of people) console.log(`  ${person.email.padEnd(24)} ${person.role.toLowerCase()}  ${person.first_name} ${person.last_name}`)
        if (workers > 0) console.log(`  and the ${workers} seeded workers (worker-<id>@seed.example), with the same password`)
      } finally {
        await app.close()
      }
    }
  } finally {
    await platform.close()
  }
  console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error: Error) => {
    console.error(error.message)
    process.exit(1)
  })
}
