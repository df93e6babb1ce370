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
