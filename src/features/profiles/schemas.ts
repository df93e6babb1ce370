import { Type, type Static } from 'typebox'
import { Timestamp, Uuid } from '../../http/schemas.js'
import { User } from '../accounts/index.js'
import { Money } from '../jobs/index.js'

export const Rating = Type.Object(
  {
    average: Type.Union([Type.Number(), Type.Null()], { description: 'Mean of the published, visible reviews (2 decimals); null with none' }),
    count: Type.Integer({ minimum: 0 }),
  },
  { description: 'Counts published reviews that are not hidden' },
)

export const ProfileCategory = Type.Object({ id: Uuid, name: Type.String(), retired: Type.Boolean({ description: 'Kept on the profile, no longer offered' }) })

export const Profile = Type.Object(
  {
    bio: Type.String(),
    categories: Type.Array(ProfileCategory),
    hourly_rate: Type.Union([Money, Type.Null()], { description: 'Minor units and ISO 4217 currency' }),
    service_radius_m: Type.Union([Type.Integer(), Type.Null()], { description: 'How far the worker travels, meters' }),
    languages: Type.Array(Type.String(), { description: 'BCP 47 tags, canonical form' }),
    updated_at: Timestamp,
  },
  {
    $id: 'Profile',
    examples: [{ bio: 'Plumber for 12 years.', categories: [{ id: '01938d0e-0000-7000-8000-000000000002', name: 'Leaks', retired: false }], hourly_rate: { amount: 4500, currency: 'EUR' }, service_radius_m: 10000, languages: ['fr', 'en-GB'], updated_at: '2026-12-01T09:00:00.000Z' }],
  },
)
export type ProfileView = Static<typeof Profile>

export const UpdateProfileBody = Type.Object(
  {
    bio: Type.Optional(Type.String({ maxLength: 2000, description: 'Up to 2000 characters' })),
    category_ids: Type.Optional(Type.Array(Type.String({ format: 'uuid' }), { maxItems: 20, uniqueItems: true, description: 'Offered categories; a retired one the profile has already may stay' })),
    hourly_rate: Type.Optional(Type.Union([Money, Type.Null()], { description: 'Null takes it off' })),
    service_radius_m: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: 500_000 }), Type.Null()], { description: 'Meters, up to 500 km; null takes it off' })),
    languages: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 35 }), { maxItems: 20, description: 'BCP 47 tags (such as "fr", "en-GB", "zh-Hant-TW"); stored in canonical form' })),
  },
  { additionalProperties: false, examples: [{ bio: 'Plumber for 12 years.', hourly_rate: { amount: 4500, currency: 'EUR' }, service_radius_m: 10000, languages: ['fr', 'en-GB'] }] },
)
export type UpdateProfileInput = Static<typeof UpdateProfileBody>

export const PublicProfile = Type.Object(
  {
    user: User,
    profile: Type.Union([Profile, Type.Null()], { description: 'Null until the user writes one' }),
    rating: Rating,
    jobs_done: Type.Integer({ minimum: 0, description: 'Jobs PAID with the user as their worker' }),
  },
  { description: 'What anyone may see of a user: never the email' },
)
