// Geometry the live stores share: one sphere and one distance formula, so that every
// implementation answers the same distances for the same points.

/** Redis GEO's sphere (its geohashGetDistance); PostgreSQL and JavaScript use it too. */
export const EARTH_RADIUS_M = 6372797.560856

/** Redis GEO can index latitudes only within the Web Mercator band. */
export const MAX_GEO_LAT = 85.05112878

const RAD = Math.PI / 180

/** Great-circle distance in meters (haversine), the formula Redis GEO uses. */
export function haversineM(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const u = Math.sin(((lat2 - lat1) * RAD) / 2)
  const v = Math.sin(((lon2 - lon1) * RAD) / 2)
  const a = u * u + Math.cos(lat1 * RAD) * Math.cos(lat2 * RAD) * v * v
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(a)))
}

/**
 * A user is inside a search radius when its distance rounded to whole meters is at most the
 * radius: positions are stored to about half a meter, so finer than that means nothing.
 */
export const insideRadius = (distanceM: number, radiusM: number) => distanceM < radiusM + 0.5

/** The latitude and longitude ranges a circle covers; longitude ranges never cross ±180. */
export function circleBounds(lat: number, lon: number, radiusM: number) {
  const delta = (radiusM + 1) / EARTH_RADIUS_M / RAD // degrees of arc, with a meter to spare
  const minLat = lat - delta
  const maxLat = lat + delta
  let lonRanges: [number, number][]
  const s = Math.sin(delta * RAD) / Math.cos(lat * RAD)
  if (maxLat >= 90 || minLat <= -90 || !(s < 1)) {
    lonRanges = [[-180, 180]] // the circle holds a pole or wraps the whole way round
  } else {
    const dLon = Math.asin(s) / RAD + 1e-9
    const west = lon - dLon
    const east = lon + dLon
    if (west < -180) lonRanges = [[west + 360, 180], [-180, east]]
    else if (east > 180) lonRanges = [[west, 180], [-180, east - 360]]
    else lonRanges = [[west, east]]
  }
  return { minLat: Math.max(minLat, -90), maxLat: Math.min(maxLat, 90), lonRanges }
}
