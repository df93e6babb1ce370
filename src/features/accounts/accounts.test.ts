import type { InjectOptions } from 'fastify'
import sharp from 'sharp'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { allPages, newUser, problem, signIn, startTestApp, uniqueEmail, type SignedIn, type TestApp } from '../../../test/support/app.js'
import { manualClock } from '../../platform/clock.js'

let t: TestApp
const PICTURE_MAX = 300_000

beforeAll(async () => {
  t = await startTestApp({ PICTURE_MAX_BYTES: String(PICTURE_MAX) })
})
afterAll(async () => t.close())

const inject = (options: InjectOptions) => t.app.inject(options)

/** A JPEG carrying EXIF GPS coordinates, like a phone photo taken at home. */
async function photoWithGps(width = 800, height = 600) {
  return sharp({ create: { width, height, channels: 3, background: { r: 200, g: 80, b: 40 } } })
    .jpeg()
    .withExif({ IFD0: { Make: 'PhoneMaker', Model: 'Phone 12' }, IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '48/1 51/1 2400/100', GPSLongitudeRef: 'E', GPSLongitude: '2/1 21/1 500/100' } })
    .toBuffer()
}

describe('POST /signup', () => {
  it('creates a CLIENT by default and answers the user with its email, never a password', async () => {
    const email = uniqueEmail('ana')
    const res = await inject({ method: 'POST', url: '/signup', payload: { email, password: 'a good password', first_name: 'Ana', last_name: 'Lima' } })
    expect(res.statusCode).toBe(201)
    const user = res.json()
    expect(user).toMatchObject({ email, first_name: 'Ana', last_name: 'Lima', roles: ['CLIENT'], picture_url: null })
    expect(user.id).toMatch(/^[0-9a-f-]{36}$/)
    expect(Object.keys(user).sort()).toEqual(['created_at', 'email', 'email_confirmed', 'first_name', 'id', 'last_name', 'picture_url', 'roles'])
    expect(user.email_confirmed).toBe(false)
  })

  it('takes WORKER and CLIENT roles', async () => {
    const res = await inject({ method: 'POST', url: '/signup', payload: { email: uniqueEmail(), password: 'a good password', first_name: 'W', last_name: 'K', roles: ['WORKER', 'CLIENT'] } })
    expect(res.statusCode).toBe(201)
    expect(res.json().roles).toEqual(['WORKER', 'CLIENT'])
  })

  it('refuses a second account with the same email in any case: 409', async () => {
    const email = uniqueEmail('Dup')
    await inject({ method: 'POST', url: '/signup', payload: { email, password: 'a good password', first_name: 'A', last_name: 'B' } })
    const res = await inject({ method: 'POST', url: '/signup', payload: { email: email.toUpperCase(), password: 'another password', first_name: 'C', last_name: 'D' } })
    expect(problem(res, 409).code).toBe('email_taken')
  })

  it.each([
    ['a bad email', { email: 'not-an-email' }, 'body/email'],
    ['a password under 8 characters', { password: 'short' }, 'body/password'],
    ['a missing last name', { last_name: undefined }, 'body/last_name'],
    ['a blank first name', { first_name: '   ' }, 'body/first_name'],
    ['ADMIN as a chosen role', { roles: ['ADMIN'] }, 'body/roles/0'],
    ['an unknown field', { is_admin: true }, 'body/is_admin'],
    ['a number for a name', { first_name: 42 }, 'body/first_name'],
  ])('answers 400 naming the field for %s', async (_name, change, field) => {
    const payload = { email: uniqueEmail(), password: 'a good password', first_name: 'A', last_name: 'B', ...change }
    const res = await inject({ method: 'POST', url: '/signup', payload })
    const body = problem(res, 400)
    expect(body.errors?.map((e) => e.field)).toContain(field)
  })

  it('takes passwords up to 128 characters, every one of which counts (past bcrypt\'s 72 bytes too)', async () => {
    const password = 'é'.repeat(100) // 100 characters, 200 bytes
    const email = uniqueEmail()
    expect((await inject({ method: 'POST', url: '/signup', payload: { email, password, first_name: 'A', last_name: 'B' } })).statusCode).toBe(201)
    expect((await inject({ method: 'POST', url: '/authorize', payload: { email, password } })).statusCode).toBe(200)
    // Differs from it only in its last character, far past 72 bytes.
    problem(await inject({ method: 'POST', url: '/authorize', payload: { email, password: `${'é'.repeat(99)}e` } }), 401)
    const tooLong = await inject({ method: 'POST', url: '/signup', payload: { email: uniqueEmail(), password: 'x'.repeat(129), first_name: 'A', last_name: 'B' } })
    expect(problem(tooLong, 400).errors?.map((e) => e.field)).toContain('body/password')
  })

  it('refuses a password on the list of common and breached passwords, in any case', async () => {
    for (const password of ['password1', 'PASSWORD123', 'qwertyuiop']) {
      const res = await inject({ method: 'POST', url: '/signup', payload: { email: uniqueEmail(), password, first_name: 'A', last_name: 'B' } })
      expect(problem(res, 400).code).toBe('password_too_common')
    }
  })

  it('answers malformed JSON 400, a wrong content type 415 and a body over the limit 413, all problem+json', async () => {
    expect(problem(await inject({ method: 'POST', url: '/signup', headers: { 'content-type': 'application/json' }, payload: '{"email":' }), 400).code).toBe('malformed_json')
    problem(await inject({ method: 'POST', url: '/signup', headers: { 'content-type': 'text/plain' }, payload: 'hello' }), 415)
    const huge = JSON.stringify({ email: uniqueEmail(), password: 'x'.repeat(2_000_000), first_name: 'A', last_name: 'B' })
    problem(await inject({ method: 'POST', url: '/signup', headers: { 'content-type': 'application/json' }, payload: huge }), 413)
  })
})

describe('GET /user', () => {
  let ana: SignedIn
  let bo: SignedIn
  beforeAll(async () => {
    ana = await newUser(t.app, { first_name: 'Ana' })
    bo = await newUser(t.app, { first_name: 'Bo', roles: ['WORKER'] })
  })

  it('answers the caller, with the email', async () => {
    const res = await inject({ url: '/user', headers: ana.auth })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toMatchObject({ id: ana.id, email: ana.email, first_name: 'Ana' })
  })

  it('answers another user without the email', async () => {
    const res = await inject({ url: `/user?id=${bo.id}`, headers: ana.auth })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toMatchObject({ id: bo.id, first_name: 'Bo', roles: ['WORKER'] })
    expect(res.json()).not.toHaveProperty('email')
  })

  it('answers 404 for an unknown id and 400 for a malformed one', async () => {
    problem(await inject({ url: '/user?id=0190f3c4-0000-7000-8000-000000000000', headers: ana.auth }), 404)
    expect(problem(await inject({ url: '/user?id=123', headers: ana.auth }), 400).errors?.[0]?.field).toBe('querystring/id')
  })

  it('answers 401 without a token, with a malformed one and with an unknown one', async () => {
    problem(await inject({ url: '/user' }), 401)
    problem(await inject({ url: '/user', headers: { authorization: 'Basic abc' } }), 401)
    const res = await inject({ url: '/user', headers: { authorization: `Bearer ${'x'.repeat(43)}` } })
    problem(res, 401)
    expect(res.headers['www-authenticate']).toBe('Bearer')
  })
})

describe('POST /user', () => {
  it('updates the caller\'s names', async () => {
    const u = await newUser(t.app)
    const res = await inject({ method: 'POST', url: '/user', headers: u.auth, payload: { first_name: ' Maria ', last_name: 'Silva' } })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toMatchObject({ id: u.id, first_name: 'Maria', last_name: 'Silva' })
    expect((await inject({ url: '/user', headers: u.auth })).json().first_name).toBe('Maria')
  })

  it('lets a user become a WORKER but never grant itself ADMIN', async () => {
    const u = await newUser(t.app)
    expect((await inject({ method: 'POST', url: '/user', headers: u.auth, payload: { roles: ['CLIENT', 'WORKER'] } })).json().roles).toEqual(['CLIENT', 'WORKER'])
    problem(await inject({ method: 'POST', url: '/user', headers: u.auth, payload: { roles: ['ADMIN'] } }), 403)
  })

  it('answers 403 when a non-admin changes another user, and changes nothing', async () => {
    const [a, b] = [await newUser(t.app), await newUser(t.app, { first_name: 'Original' })]
    problem(await inject({ method: 'POST', url: '/user', headers: a.auth, payload: { id: b.id, first_name: 'Hacked' } }), 403)
    expect((await inject({ url: '/user', headers: b.auth })).json().first_name).toBe('Original')
  })

  it('changes the password only with the current one, and ends the user\'s other sessions', async () => {
    const u = await newUser(t.app)
    const otherDevice = await t.app.inject({ method: 'POST', url: '/authorize', payload: { email: u.email, password: u.password } })
    const otherAuth = { authorization: `Bearer ${otherDevice.json().access_token}` }

    expect(problem(await inject({ method: 'POST', url: '/user', headers: u.auth, payload: { password: 'brand new secret' } }), 400).code).toBe('current_password_required')
    expect(problem(await inject({ method: 'POST', url: '/user', headers: u.auth, payload: { password: 'brand new secret', current_password: 'wrong one!' } }), 403).code).toBe('wrong_password')
    expect((await inject({ url: '/user', headers: otherAuth })).statusCode).toBe(200)

    const res = await inject({ method: 'POST', url: '/user', headers: u.auth, payload: { password: 'brand new secret', current_password: u.password } })
    expect(res.statusCode).toBe(200)
    expect((await inject({ url: '/user', headers: u.auth })).statusCode).toBe(200)
    problem(await inject({ url: '/user', headers: otherAuth }), 401)
    problem(await inject({ method: 'POST', url: '/authorize', payload: { email: u.email, password: u.password } }), 401)
    expect((await inject({ method: 'POST', url: '/authorize', payload: { email: u.email, password: 'brand new secret' } })).statusCode).toBe(200)
  })

  it('answers 409 when the new email belongs to someone else', async () => {
    const [a, b] = [await newUser(t.app), await newUser(t.app)]
    problem(await inject({ method: 'POST', url: '/user', headers: a.auth, payload: { email: b.email.toUpperCase(), current_password: a.password } }), 409)
  })
})

describe('admins', () => {
  it('are made from the command line, see emails and may change or delete anyone', async () => {
    const admin = await newUser(t.app)
    const other = await newUser(t.app, { first_name: 'Target' })
    expect((await inject({ url: `/user?id=${other.id}`, headers: admin.auth })).json()).not.toHaveProperty('email')

    expect(await t.app.accounts.setAdmin(admin.email.toUpperCase(), true)).toBe(true)
    expect(await t.app.accounts.setAdmin('nobody@example.com', true)).toBe(false)

    expect((await inject({ url: `/user?id=${other.id}`, headers: admin.auth })).json().email).toBe(other.email)
    const renamed = await inject({ method: 'POST', url: '/user', headers: admin.auth, payload: { id: other.id, first_name: 'Renamed', roles: ['WORKER', 'ADMIN'] } })
    expect(renamed.json()).toMatchObject({ first_name: 'Renamed', roles: ['WORKER', 'ADMIN'] })
    // Deleting someone takes the admin's own password, as deleting itself would.
    expect(problem(await inject({ method: 'DELETE', url: `/user?id=${other.id}`, headers: admin.auth }), 400).code).toBe('current_password_required')
    expect(problem(await inject({ method: 'DELETE', url: `/user?id=${other.id}`, headers: admin.auth, payload: { current_password: other.password + 'x' } }), 403).code).toBe('wrong_password')
    expect((await inject({ method: 'DELETE', url: `/user?id=${other.id}`, headers: admin.auth, payload: { current_password: admin.password } })).statusCode).toBe(204)
    problem(await inject({ url: '/user', headers: other.auth }), 401)

    expect(await t.app.accounts.setAdmin(admin.email, false)).toBe(true)
    expect((await inject({ url: '/user', headers: admin.auth })).json().roles).toEqual(['CLIENT'])
    const third = await newUser(t.app)
    expect((await inject({ url: `/user?id=${third.id}`, headers: admin.auth })).json()).not.toHaveProperty('email')
    problem(await inject({ method: 'POST', url: '/user', headers: admin.auth, payload: { id: third.id, first_name: 'No' } }), 403)
  })
})

describe('the ADMIN role', () => {
  it('is shown only to the admin itself and to other admins; only admins filter by it', async () => {
    const tag = `Adm${Date.now().toString(36)}`
    const admin = await newUser(t.app, { first_name: tag, roles: ['WORKER'] })
    expect(await t.app.accounts.setAdmin(admin.email, true)).toBe(true)
    const otherAdmin = await newUser(t.app)
    expect(await t.app.accounts.setAdmin(otherAdmin.email, true)).toBe(true)
    const user = await newUser(t.app)

    // A user: refused the filter, and shown the admin's other roles only, everywhere.
    expect(problem(await inject({ url: '/users?role=ADMIN', headers: user.auth }), 403).code).toBe('not_an_admin')
    expect((await inject({ url: `/user?id=${admin.id}`, headers: user.auth })).json().roles).toEqual(['WORKER'])
    expect((await inject({ url: `/users?q=${tag}`, headers: user.auth })).json().items.map((u: { roles: string[] }) => u.roles)).toEqual([['WORKER']])
    const at = { lat: -17.7134, lon: 178.065 } // no other test's place; positions are blurred by about 100 m
    expect((await inject({ method: 'POST', url: '/location', headers: admin.auth, payload: at })).statusCode).toBe(200)
    const search = (who: SignedIn, role?: string) => inject({ url: '/search', headers: who.auth, query: { lat: String(at.lat), lon: String(at.lon), radius: '1000', ...(role ? { role } : {}) } })
    expect(problem(await search(user, 'ADMIN'), 403).code).toBe('not_an_admin')
    expect((await search(user)).json().items.map((i: { user: { id: string; roles: string[] } }) => i.user)).toEqual([expect.objectContaining({ id: admin.id, roles: ['WORKER'] })])
    expect(JSON.stringify((await inject({ url: `/users?q=${tag}`, headers: user.auth })).json())).not.toContain('ADMIN')

    // The admin itself and another admin: shown it, and may filter by it.
    expect((await inject({ url: '/user', headers: admin.auth })).json().roles).toEqual(['WORKER', 'ADMIN'])
    expect((await inject({ url: `/user?id=${admin.id}`, headers: otherAdmin.auth })).json().roles).toEqual(['WORKER', 'ADMIN'])
    const admins = await allPages(t.app, otherAdmin, '/users?role=ADMIN', 100)
    expect(admins.map((u) => u.id)).toEqual(expect.arrayContaining([admin.id, otherAdmin.id]))
    expect((await search(otherAdmin, 'ADMIN')).json().items.map((i: { user: { roles: string[] } }) => i.user.roles)).toEqual([['WORKER', 'ADMIN']])
  })
})

describe('DELETE /user', () => {
  it('deletes the caller: its token dies, it can\'t sign in, others see 404', async () => {
    const [u, viewer] = [await newUser(t.app), await newUser(t.app)]
    expect((await inject({ method: 'DELETE', url: '/user', headers: u.auth, payload: { current_password: u.password } })).statusCode).toBe(204)
    problem(await inject({ url: '/user', headers: u.auth }), 401)
    problem(await inject({ method: 'POST', url: '/authorize', payload: { email: u.email, password: u.password } }), 401)
    problem(await inject({ url: `/user?id=${u.id}`, headers: viewer.auth }), 404)
    // The email is free again.
    expect((await inject({ method: 'POST', url: '/signup', payload: { email: u.email, password: 'a good password', first_name: 'New', last_name: 'Owner' } })).statusCode).toBe(201)
  })

  it('answers 403 for another user\'s id, even with the caller\'s password, and deletes nothing', async () => {
    const [a, b] = [await newUser(t.app), await newUser(t.app)]
    expect(problem(await inject({ method: 'DELETE', url: `/user?id=${b.id}`, headers: a.auth, payload: { current_password: a.password } }), 403).code).toBe('forbidden')
    expect((await inject({ url: '/user', headers: b.auth })).statusCode).toBe(200)
  })

  it('takes more than a token: no password is 400, a wrong one 403, and the account stays', async () => {
    const u = await newUser(t.app)
    const noBody = problem(await inject({ method: 'DELETE', url: '/user', headers: u.auth }), 400)
    expect(noBody).toMatchObject({ code: 'current_password_required', errors: [{ field: 'body/current_password' }] })
    expect(problem(await inject({ method: 'DELETE', url: '/user', headers: u.auth, payload: {} }), 400).code).toBe('current_password_required')
    expect(problem(await inject({ method: 'DELETE', url: '/user', headers: u.auth, payload: { current_password: 'not the password' } }), 403).code).toBe('wrong_password')
    expect((await inject({ url: '/user', headers: u.auth })).statusCode).toBe(200)
    expect((await inject({ method: 'DELETE', url: '/user', headers: u.auth, payload: { current_password: u.password } })).statusCode).toBe(204)
  })

  it('takes a sign-in of the last 5 minutes for an account without a password', async () => {
    const clock = manualClock()
    const own = await startTestApp({}, { clock })
    try {
      const old = await newUser(own.app)
      clock.advance(5 * 60_000 + 1000)
      const recent = { authorization: `Bearer ${await signIn(own.app, old.email, old.password)}` }
      // The password goes (as for an account made without one): only the sign-in's age vouches for the caller.
      await sql`UPDATE users SET password_hash = NULL WHERE id = ${old.id}`.execute(own.app.platform.database.db)
      const del = (headers: Record<string, string>, payload?: object) => own.app.inject({ method: 'DELETE', url: '/user', headers, ...(payload ? { payload } : {}) })
      expect(problem(await del(old.auth), 403).code).toBe('recent_sign_in_required')
      expect(problem(await del(old.auth, { current_password: old.password }), 403).code).toBe('recent_sign_in_required')
      expect((await own.app.inject({ url: '/user', headers: old.auth })).statusCode).toBe(200)
      expect((await del(recent)).statusCode).toBe(204)
      problem(await own.app.inject({ url: '/user', headers: old.auth }), 401)
    } finally {
      await own.close()
    }
  }, 300_000)
})

describe('GET /users', () => {
  it('matches names in any case, filters by role and pages without repeats while users sign up', async () => {
    const tag = `Zq${Date.now().toString(36)}`
    const viewer = await newUser(t.app)
    for (let i = 0; i < 5; i++) await newUser(t.app, { first_name: `${tag}${i}`, roles: i % 2 === 0 ? ['WORKER'] : ['CLIENT'] })
    await newUser(t.app, { first_name: 'Someone', last_name: `X${tag.toUpperCase()}Y` })

    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const res = await inject({ url: `/users?q=${tag.toLowerCase()}&limit=2${cursor ? `&cursor=${cursor}` : ''}`, headers: viewer.auth })
      expect(res.statusCode).toBe(200)
      const page = res.json()
      expect(page.items.length).toBeLessThanOrEqual(2)
      for (const u of page.items) expect(u).not.toHaveProperty('email')
      seen.push(...page.items.map((u: { first_name: string; last_name: string }) => `${u.first_name} ${u.last_name}`))
      if (pages === 0) await newUser(t.app, { first_name: `${tag}late` }) // signs up between pages
      cursor = page.next_cursor
      pages++
    } while (cursor)
    expect(new Set(seen).size).toBe(seen.length)
    expect(seen).toHaveLength(7)
    expect(seen).toContain(`Someone X${tag.toUpperCase()}Y`)

    const workers = (await inject({ url: `/users?q=${tag}&role=WORKER`, headers: viewer.auth })).json()
    expect(workers.items.map((u: { first_name: string }) => u.first_name).sort()).toEqual([`${tag}0`, `${tag}2`, `${tag}4`])
  })

  it('answers 400 for a garbage cursor, a bad role or a limit out of range', async () => {
    const viewer = await newUser(t.app)
    expect(problem(await inject({ url: '/users?cursor=garbage!!', headers: viewer.auth }), 400).code).toBe('invalid_cursor')
    problem(await inject({ url: '/users?role=KING', headers: viewer.auth }), 400)
    problem(await inject({ url: '/users?limit=0', headers: viewer.auth }), 400)
    problem(await inject({ url: '/users?limit=101', headers: viewer.auth }), 400)
    problem(await inject({ url: '/users' }), 401)
  })
})

describe('pictures', () => {
  it('re-encodes an upload as a 512 px WebP without its EXIF GPS, served with an ETag', async () => {
    const u = await newUser(t.app, { roles: ['WORKER'] })
    const photo = await photoWithGps()
    expect((await sharp(photo).metadata()).exif).toBeDefined()

    const res = await inject({ method: 'PUT', url: '/user/picture', headers: { ...u.auth, 'content-type': 'image/jpeg' }, payload: photo })
    expect(res.statusCode).toBe(200)
    const pictureUrl: string = res.json().picture_url
    expect(pictureUrl).toMatch(new RegExp(`^/users/${u.id}/picture\\?v=`))

    const pic = await inject({ url: pictureUrl })
    expect(pic.statusCode).toBe(200)
    expect(pic.headers['content-type']).toBe('image/webp')
    const meta = await sharp(pic.rawPayload).metadata()
    expect(meta).toMatchObject({ format: 'webp', width: 512, height: 512 })
    expect(meta.exif).toBeUndefined()
    expect(pic.rawPayload.includes(Buffer.from('PhoneMaker'))).toBe(false)

    // Pictures are public and versioned by their URL, so caches may keep them (API answers are no-store).
    expect(pic.headers['cache-control']).toBe('public, max-age=300, must-revalidate')
    const etag = pic.headers.etag as string
    expect(etag).toBeTruthy()
    expect((await inject({ url: pictureUrl, headers: { 'if-none-match': etag } })).statusCode).toBe(304)
  })

  it('takes a multipart field named picture', async () => {
    const u = await newUser(t.app)
    const png = await sharp({ create: { width: 300, height: 900, channels: 4, background: '#3366ff' } }).png().toBuffer()
    const boundary = '----test-boundary'
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="picture"; filename="me.png"\r\nContent-Type: image/png\r\n\r\n`),
      png,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ])
    const res = await inject({ method: 'PUT', url: '/user/picture', headers: { ...u.auth, 'content-type': `multipart/form-data; boundary=${boundary}` }, payload: body })
    expect(res.statusCode).toBe(200)
    expect(res.json().picture_url).toContain(`/users/${u.id}/picture`)
  })

  it('answers 400 for a broken image or too many pixels, 413 for too many bytes, 415 for text or JSON', async () => {
    const u = await newUser(t.app)
    const notImage = await inject({ method: 'PUT', url: '/user/picture', headers: { ...u.auth, 'content-type': 'image/png' }, payload: Buffer.from('this is not a png at all') })
    expect(problem(notImage, 415).code).toBe('unsupported_image_format')
    const jpeg = await photoWithGps(100, 100)
    const cutJpeg = await inject({ method: 'PUT', url: '/user/picture', headers: { ...u.auth, 'content-type': 'image/jpeg' }, payload: jpeg.subarray(0, 200) })
    expect(problem(cutJpeg, 400).code).toBe('not_an_image')
    // 10000 x 10000 of one colour compresses to a small file but would decode to 400 MB.
    const bomb = await sharp({ create: { width: 10_000, height: 10_000, channels: 3, background: '#000' } }).png({ compressionLevel: 9 }).toBuffer()
    expect(bomb.length).toBeLessThan(PICTURE_MAX)
    expect(problem(await inject({ method: 'PUT', url: '/user/picture', headers: { ...u.auth, 'content-type': 'image/png' }, payload: bomb }), 400).code).toBe('image_too_large')
    problem(await inject({ method: 'PUT', url: '/user/picture', headers: { ...u.auth, 'content-type': 'image/jpeg' }, payload: Buffer.alloc(PICTURE_MAX + 10) }), 413)
    problem(await inject({ method: 'PUT', url: '/user/picture', headers: u.auth, payload: { picture: 'x' } }), 415)
    problem(await inject({ method: 'PUT', url: '/user/picture', headers: { 'content-type': 'image/png' }, payload: bomb }), 401)
    expect((await inject({ url: '/user', headers: u.auth })).json().picture_url).toBeNull()
  })

  /** A multipart body with one file in the field "picture", named and typed as the client says. */
  const multipart = (file: Buffer, filename: string, type: string) => {
    const boundary = '----picture-boundary'
    return {
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      payload: Buffer.concat([
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="picture"; filename="${filename}"\r\nContent-Type: ${type}\r\n\r\n`),
        file,
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]),
    }
  }

  /** An SVG whose `<use>` elements each draw the group above ten times: 10^levels shapes to render. */
  const nestedUseSvg = (levels: number) => {
    let defs = '<g id="l0"><rect width="1" height="1"/></g>'
    for (let level = 1; level <= levels; level++) {
      defs += `<g id="l${level}">${Array.from({ length: 10 }, () => `<use href="#l${level - 1}"/>`).join('')}</g>`
    }
    return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512"><defs>${defs}</defs><use href="#l${levels}"/></svg>`)
  }

  it('refuses an SVG with 415, whatever its declared type or file name, and keeps the picture there was', async () => {
    const u = await newUser(t.app)
    const first = await inject({ method: 'PUT', url: '/user/picture', headers: { ...u.auth, 'content-type': 'image/jpeg' }, payload: await photoWithGps(200, 200) })
    expect(first.statusCode).toBe(200)
    const pictureUrl: string = first.json().picture_url
    const served = (await inject({ url: pictureUrl })).rawPayload

    const svg = nestedUseSvg(4)
    for (const upload of [
      { headers: { 'content-type': 'image/svg+xml' }, payload: svg },
      { headers: { 'content-type': 'image/png' }, payload: svg },
      multipart(svg, 'me.png', 'image/png'),
      multipart(Buffer.concat([Buffer.from('<?xml version="1.0"?>\n'), svg]), 'me.jpg', 'image/jpeg'),
    ]) {
      const res = await inject({ method: 'PUT', url: '/user/picture', headers: { ...u.auth, ...upload.headers }, payload: upload.payload })
      const body = problem(res, 415)
      expect(body.code).toBe('unsupported_image_format')
      expect(body.detail).toMatch(/JPEG, PNG, WebP/)
    }

    expect((await inject({ url: '/user', headers: u.auth })).json().picture_url).toBe(pictureUrl)
    expect((await inject({ url: `/users/${u.id}/picture` })).rawPayload.equals(served)).toBe(true)
  })

  it('refuses GIF, TIFF and PDF with 415, as a raw body or multipart', async () => {
    const u = await newUser(t.app)
    const image = () => sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } })
    const gif = await image().gif().toBuffer()
    const tiff = await image().tiff().toBuffer()
    const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n')
    for (const upload of [
      { headers: { 'content-type': 'image/gif' }, payload: gif },
      { headers: { 'content-type': 'image/jpeg' }, payload: gif },
      multipart(gif, 'me.gif', 'image/gif'),
      { headers: { 'content-type': 'image/tiff' }, payload: tiff },
      multipart(pdf, 'me.jpg', 'image/jpeg'),
    ]) {
      const res = await inject({ method: 'PUT', url: '/user/picture', headers: { ...u.auth, ...upload.headers }, payload: upload.payload })
      expect(problem(res, 415).code).toBe('unsupported_image_format')
    }
    expect((await inject({ url: '/user', headers: u.auth })).json().picture_url).toBeNull()
  })

  it('takes JPEG, PNG and WebP by their bytes, whatever type or name they come with', async () => {
    const u = await newUser(t.app)
    const image = () => sharp({ create: { width: 640, height: 480, channels: 3, background: '#20a060' } })
    let last: string | null = null
    for (const upload of [
      { headers: { 'content-type': 'image/png' }, payload: await image().jpeg().toBuffer() },
      { headers: { 'content-type': 'image/jpeg' }, payload: await image().png().toBuffer() },
      multipart(await image().png().toBuffer(), 'me.jpg', 'application/octet-stream'),
      multipart(await image().webp().toBuffer(), 'me.webp', 'image/webp'),
    ]) {
      const res = await inject({ method: 'PUT', url: '/user/picture', headers: { ...u.auth, ...upload.headers }, payload: upload.payload })
      expect(res.statusCode).toBe(200)
      const pic = await inject({ url: res.json().picture_url })
      expect(await sharp(pic.rawPayload).metadata()).toMatchObject({ format: 'webp', width: 512, height: 512 })
      last = res.json().picture_url
    }
    expect(last).not.toBeNull()
  })

  it('answers 400 for a multipart body without a boundary or cut short', async () => {
    const u = await newUser(t.app)
    const noBoundary = await inject({ method: 'PUT', url: '/user/picture', headers: { ...u.auth, 'content-type': 'multipart/form-data' }, payload: 'whatever' })
    expect(problem(noBoundary, 400).code).toBe('malformed_multipart')
    const cut = await inject({
      method: 'PUT',
      url: '/user/picture',
      headers: { ...u.auth, 'content-type': 'multipart/form-data; boundary=xyz' },
      payload: '--xyz\r\nContent-Disposition: form-data; name="picture"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG',
    })
    expect(problem(cut, 400).code).toBe('malformed_multipart')
  })

  it('answers 404 for a user without a picture, and for a deleted user\'s picture', async () => {
    const u = await newUser(t.app)
    problem(await inject({ url: `/users/${u.id}/picture` }), 404)
    await inject({ method: 'PUT', url: '/user/picture', headers: { ...u.auth, 'content-type': 'image/jpeg' }, payload: await photoWithGps(100, 100) })
    expect((await inject({ url: `/users/${u.id}/picture` })).statusCode).toBe(200)
    await inject({ method: 'DELETE', url: '/user', headers: u.auth, payload: { current_password: u.password } })
    problem(await inject({ url: `/users/${u.id}/picture` }), 404)
  })
})

describe('secrets', () => {
  it('never appear in a log line: no password, hash or token', async () => {
    const u = await newUser(t.app)
    await inject({ method: 'POST', url: '/user', headers: u.auth, payload: { password: 'another secret pw', current_password: u.password } })
    await inject({ method: 'POST', url: '/authorize', payload: { email: u.email, password: 'wrong password here' } })
    const read = await inject({ url: '/user', headers: { ...u.auth, 'x-request-id': 'access-line-1' } })
    const log = t.logs.join('')
    // One access line a request, under the request's id, with what it was and how it ended.
    const access = t.logs.flatMap((l) => l.split('\n')).filter(Boolean).map((l) => JSON.parse(l)).filter((l) => l.request_id === 'access-line-1' && l.level === 30)
    expect(access).toEqual([expect.objectContaining({ msg: 'request completed', req: expect.objectContaining({ method: 'GET', url: '/user' }), res: { statusCode: read.statusCode }, responseTime: expect.any(Number) })])
    for (const secret of [u.password, 'another secret pw', 'wrong password here', u.token]) expect(log).not.toContain(secret)
    expect(log).not.toMatch(/\$2[aby]\$/)
    expect(log).not.toMatch(/Bearer [A-Za-z0-9_-]{20,}/)
  })
})
