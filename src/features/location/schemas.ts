import { Type, type Static } from 'typebox'
import { Page, PageQuery, Timestamp } from '../../http/schemas.js'
import { AnyRole, User } from '../accounts/index.js'

export const MAX_RADIUS_M = 50_000

const Lat = Type.Number({ minimum: -90, maximum: 90, description: 'Latitude, degrees (WGS 84)' })
const Lon = Type.Number({ minimum: -180, maximum: 180, description: 'Longitude, degrees (WGS 84)' })

export const PostLocationBody = Type.Object(
  {
    lat: Lat,
    lon: Lon,
    ttl: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400, description: 'Seconds the location stays on the map; default LOCATION_DEFAULT_TTL (300)' })),
  },
  { additionalProperties: false, examples: [{ lat: 48.8566, lon: 2.3522, ttl: 600 }] },
)
export type PostLocationInput = Static<typeof PostLocationBody>

export const LocationPosted = Type.Object({ expires_at: Timestamp }, { examples: [{ expires_at: '2026-12-07T09:10:00.000Z' }] })

export const SearchQuery = Type.Object(
  {
    lat: Lat,
    lon: Lon,
    radius: Type.Number({ minimum: 0, maximum: MAX_RADIUS_M, description: 'Meters, up to 50 km' }),
    role: Type.Optional(AnyRole),
    category: Type.Optional(Type.String({ format: 'uuid', description: 'Workers with this category or one of its subcategories in their profile' })),
    min_rating: Type.Optional(Type.Number({ minimum: 1, maximum: 5, description: 'Users rated at least this (published reviews); unrated ones are left out' })),
    max_rate: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_147_483_647, description: 'Workers whose hourly rate is at most this, in minor units of `currency`' })),
    currency: Type.Optional(Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217; needed with max_rate (rates in other currencies are left out)' })),
    sort: Type.Optional(Type.Union([Type.Literal('distance'), Type.Literal('rating')], { description: '`distance` (default): nearest first. `rating`: best rated first, then nearest, among the 2000 nearest matches' })),
    ...PageQuery,
  },
  { additionalProperties: false },
)
export type SearchInput = Static<typeof SearchQuery>

export const Nearby = Type.Object({
  user: User,
  distance_m: Type.Integer({ description: 'Meters from the searched point to the user\'s blurred position (about 100 m grid)' }),
})

export const SearchPage = Page(Nearby, 'Nearest first; next_cursor continues in distance order')
