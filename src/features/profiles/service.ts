import { ForbiddenError, InvalidInputError, NotFoundError } from '../../errors.js'
import type { Clock } from '../../platform/clock.js'
import type { DB } from '../../platform/db/index.js'
import type { EventBus } from '../../platform/live/index.js'
import { createSharedCache } from '../../platform/live/shared-cache.js'
import type { AccountsService, UserRow } from '../accounts/index.js'
import type { CategoriesService } from '../categories/index.js'
import type { ProfileView, UpdateProfileInput } from './schemas.js'
import { createProfilesStore, visibleUser, type Facets, type ProfileRow } from './store.js'

const CURRENCIES = new Set(Intl.supportedValuesOf('currency'))

/** The canonical forms of BCP 47 tags, each once; 400 `invalid_language` naming the first bad one. */
export function canonicalLanguages(tags: readonly string[]): string[] {
  const out: string[] = []
  tags.forEach((tag, i) => {
    let canonical: string
    try {
      // Intl takes a few non-BCP 47 forms too ("en_US" is refused, as it should be).
      ;[canonical] = Intl.getCanonicalLocales(tag) as [string]
    } catch {
      throw new InvalidInputError(`"${tag}" is not a BCP 47 language tag`, [{ field: `body/languages/${i}`, message: 'is not a well-formed BCP 47 tag' }], 'invalid_language')
    }
    if (!out.includes(canonical)) out.push(canonical)
  })
  return out
}

/** Told after a change to what a search filters on (a profile, a rating). */
export type FacetsChangedHook = (userIds: readonly string[]) => Promise<void>

/** Users whose facets each process keeps, and how long one is kept at most (a change lost on the way is stale no longer). */
const CACHED_FACETS = 100_000
const CACHED_FACETS_TTL_MS = 60_000

export function createProfilesService(deps: { db: DB; events: EventBus; clock: Clock; categories: CategoriesService; accounts: Pick<AccountsService, 'view'> }) {
  const store = createProfilesStore(deps.db)
  const facetsHooks: FacetsChangedHook[] = []
  // A worker's facets go with each of its location posts: kept here, dropped in every process on
  // a change, so that a post does not read them from the database.
  const cachedFacets = createSharedCache<Facets>({ events: deps.events, name: 'facets', max: CACHED_FACETS, ttlMs: CACHED_FACETS_TTL_MS })

  const toView = async (row: ProfileRow & { category_ids: string[] }): Promise<ProfileView> => {
    const categories = await deps.categories.byIds(row.category_ids)
    return {
      bio: row.bio,
      categories: row.category_ids.flatMap((id) => {
        const c = categories.get(id)
        return c ? [{ id, name: c.name, retired: c.retired_at !== null }] : []
      }),
      hourly_rate: row.hourly_rate_amount !== null && row.hourly_rate_currency !== null ? { amount: row.hourly_rate_amount, currency: row.hourly_rate_currency } : null,
      service_radius_m: row.service_radius_m,
      languages: row.languages,
      updated_at: row.updated_at.toISOString(),
    }
  }

  const facetsChanged = async (userIds: readonly string[]) => {
    await cachedFacets.changed(userIds)
    for (const hook of facetsHooks) await hook(userIds)
  }

  return {
    onFacetsChanged(hook: FacetsChangedHook) {
      facetsHooks.push(hook)
    },
    facetsChanged,
    facets: (userIds: readonly string[]): Promise<Map<string, Facets>> => cachedFacets.getMany(userIds, (missing) => store.facets(missing)),

    start: () => cachedFacets.start(),
    close: () => cachedFacets.close(),

    /** The caller's profile as it is (an empty one until written). */
    async own(user: UserRow): Promise<ProfileView> {
      const row = await store.get(deps.db, user.id)
      return toView(row ?? { user_id: user.id, bio: '', hourly_rate_amount: null, hourly_rate_currency: null, service_radius_m: null, languages: [], updated_at: user.created_at, category_ids: [] })
    },

    /** Changes the fields given of the caller's profile (a worker's); null takes a field off. */
    async update(user: UserRow, input: UpdateProfileInput): Promise<ProfileView> {
      if (!user.roles.includes('WORKER')) throw new ForbiddenError('Only workers have a profile: add the WORKER role first (POST /user)')
      if (input.hourly_rate && !CURRENCIES.has(input.hourly_rate.currency)) {
        throw new InvalidInputError(`${input.hourly_rate.currency} is not an ISO 4217 currency`, [{ field: 'body/hourly_rate/currency', message: 'is not an ISO 4217 currency code' }], 'unknown_currency')
      }
      const languages = input.languages && canonicalLanguages(input.languages)
      const now = deps.clock.now()
      const row = await deps.db.transaction().execute(async (trx) => {
        await store.lock(trx, user.id, now)
        const current = (await store.get(trx, user.id))!
        if (input.category_ids) await deps.categories.checkOffered(input.category_ids, 'body/category_ids', new Set(current.category_ids), trx)
        await store.update(trx, user.id, {
          ...(input.bio !== undefined ? { bio: input.bio } : {}),
          ...(input.hourly_rate !== undefined ? { hourly_rate_amount: input.hourly_rate?.amount ?? null, hourly_rate_currency: input.hourly_rate?.currency ?? null } : {}),
          ...(input.service_radius_m !== undefined ? { service_radius_m: input.service_radius_m } : {}),
          ...(languages ? { languages } : {}),
        }, now)
        if (input.category_ids) await store.setCategories(trx, user.id, input.category_ids)
        return (await store.get(trx, user.id))!
      })
      await facetsChanged([user.id])
      return toView(row)
    },

    /** What anyone may see of a user; a deleted or suspended one is 404. */
    async publicProfile(id: string) {
      const user = await visibleUser(deps.db, id)
      if (!user) throw new NotFoundError('No such user', 'user_not_found')
      const [row, rating, jobsDone] = await Promise.all([store.get(deps.db, id), store.rating(id), store.jobsDone(id)])
      return { user: deps.accounts.view(user, undefined), profile: row ? await toView(row) : null, rating, jobs_done: jobsDone }
    },
  }
}

export type ProfilesService = ReturnType<typeof createProfilesService>
