import { Type, type Static } from 'typebox'
import { Timestamp, Uuid } from '../../http/schemas.js'

export const TrackingBody = Type.Object(
  { on: Type.Boolean({ description: '`true` starts sharing the caller\'s exact position with the job\'s client, `false` stops it' }) },
  { additionalProperties: false, examples: [{ on: true }] },
)
export type TrackingInput = Static<typeof TrackingBody>

export const Tracking = Type.Object(
  {
    job_id: Uuid,
    on: Type.Boolean({ description: 'Whether the worker shares its position now' }),
    position: Type.Union(
      [Type.Object({ lat: Type.Number(), lon: Type.Number(), at: Timestamp }, { description: 'The worker\'s exact position as last posted (POST /location)' }), Type.Null()],
      { description: 'Null until the worker posts a position after turning sharing on, and once it ends' },
    ),
    age_s: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'Seconds since the position was posted' }),
    distance_m: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'Meters from the position to the job\'s place, as the crow flies; null when the job has no place' }),
  },
  {
    description: 'A worker\'s live position shared with a job\'s client',
    examples: [{ job_id: '0190a5e2-7c1f-7cc2-9a41-3f0b7f6d2a10', on: true, position: { lat: 52.5203, lon: 13.4049, at: '2026-05-01T09:30:00.000Z' }, age_s: 4, distance_m: 850 }],
  },
)
