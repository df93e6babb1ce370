import { Type, type Static } from 'typebox'
import { Page, PageQuery, Timestamp, Uuid } from '../../http/schemas.js'
import { ALERT_RADIUS_MAX, ALERT_RADIUS_MIN, MAX_ALERTS_PER_WORKER } from './service.js'

export const AlertBody = Type.Object(
  {
    lat: Type.Number({ minimum: -90, maximum: 90 }),
    lon: Type.Number({ minimum: -180, maximum: 180 }),
    radius: Type.Integer({ minimum: ALERT_RADIUS_MIN, maximum: ALERT_RADIUS_MAX, description: `Meters around the place, ${ALERT_RADIUS_MIN} to ${ALERT_RADIUS_MAX}` }),
    category_ids: Type.Array(Type.String({ format: 'uuid' }), { minItems: 1, maxItems: 20, description: 'Offered categories (GET /categories); a category takes in its subcategories' }),
  },
  { additionalProperties: false, examples: [{ lat: 48.8566, lon: 2.3522, radius: 5000, category_ids: ['01938d0e-0000-7000-8000-000000000002'] }] },
)
export type AlertBodyInput = Static<typeof AlertBody>

export const Alert = Type.Object(
  {
    id: Uuid,
    lat: Type.Number(),
    lon: Type.Number(),
    radius: Type.Integer({ description: 'Meters' }),
    category_ids: Type.Array(Uuid),
    created_at: Timestamp,
  },
  { description: `A saved job alert: open requests within \`radius\` of the place, in one of the categories (at most ${MAX_ALERTS_PER_WORKER} a worker)` },
)

export const AlertListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false })
export const AlertList = Page(Alert)
