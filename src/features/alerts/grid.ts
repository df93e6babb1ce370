// Grids of cells for matching places against saved alerts, at four sizes: rows of 0.8, 0.2, 0.05
// and 0.0125 degree of latitude (about 89, 22, 5.6 and 1.4 km), each row cut into as many columns
// as make its cells about as wide as they are tall (fewer toward the poles). A saved alert is filed
// under the cells its circle touches at the finest size whose cells are at least as wide as its
// radius (so 1 to about 9 cells); a place is looked up under its one cell at each size. A dense
// metro area thus never puts thousands of alerts in one cell: each size holds the alerts of its
// radii. A cell is one bigint (size * 10^10 + row * 10^5 + column), so the index is a plain btree.

/** Rows per size, finest last; the cell's side in meters is about row degrees × 111 km. */
const SIZES = [0.8, 0.2, 0.05, 0.0125] as const
const SIZE_KEY = 10_000_000_000
const COLUMN_KEY = 100_000
/** Meters in a degree of latitude (and of longitude at the equator), rounded up: circles are covered, never cut. */
const M_PER_DEG = 111_320

const rowsOf = (deg: number) => Math.round(180 / deg)
const rowOf = (deg: number, lat: number) => Math.min(rowsOf(deg) - 1, Math.max(0, Math.floor((lat + 90) / deg)))
const columnsIn = (deg: number, row: number) => Math.max(1, Math.floor((360 / deg) * Math.cos(((-90 + (row + 0.5) * deg) * Math.PI) / 180)))
const columnOf = (deg: number, row: number, lon: number) => {
  const n = columnsIn(deg, row)
  return Math.min(n - 1, Math.max(0, Math.floor(((lon + 180) / 360) * n)))
}
const key = (size: number, row: number, column: number) => size * SIZE_KEY + row * COLUMN_KEY + column

/** The cells of a place: one at each size. */
export function cellsOfPoint(lat: number, lon: number): number[] {
  return SIZES.map((deg, size) => {
    const row = rowOf(deg, lat)
    return key(size, row, columnOf(deg, row, lon))
  })
}

/** The size an alert of this radius is filed at: the finest whose cells are at least as wide. */
export const sizeFor = (radiusM: number): number => {
  for (let size = SIZES.length - 1; size > 0; size--) if (SIZES[size]! * M_PER_DEG >= radiusM) return size
  return 0
}

/** Every cell a circle touches at its size (a little more: its bounding box per row, widened by a margin). */
export function cellsOfCircle(lat: number, lon: number, radiusM: number): number[] {
  const size = sizeFor(radiusM)
  const deg = SIZES[size]!
  const margin = 1.02
  const dLat = (radiusM * margin) / M_PER_DEG
  const cells = new Set<number>()
  const first = rowOf(deg, lat - dLat)
  const last = rowOf(deg, lat + dLat)
  // A circle over a pole reaches past it, on the other side: the rows it covers there take every column.
  const overNorth = lat + dLat >= 90 ? rowOf(deg, 90 - (lat + dLat - 90)) : rowsOf(deg)
  const overSouth = lat - dLat <= -90 ? rowOf(deg, -90 + (-90 - (lat - dLat))) : -1
  for (let row = first; row <= last; row++) {
    const n = columnsIn(deg, row)
    if (row >= overNorth || row <= overSouth) {
      for (let c = 0; c < n; c++) cells.add(key(size, row, c))
      continue
    }
    // The row's edge nearest a pole (within the circle's band) is where a degree of longitude is shortest.
    const south = Math.max(-90 + row * deg, lat - dLat)
    const north = Math.min(-90 + (row + 1) * deg, lat + dLat)
    const widest = Math.min(89.999, Math.max(Math.abs(south), Math.abs(north)))
    const dLon = (radiusM * margin) / (M_PER_DEG * Math.cos((widest * Math.PI) / 180))
    const from = Math.floor(((lon - dLon + 180) / 360) * n)
    const to = Math.floor(((lon + dLon + 180) / 360) * n)
    if (dLon >= 180 || to - from + 1 >= n) {
      for (let c = 0; c < n; c++) cells.add(key(size, row, c))
      continue
    }
    // Across the antimeridian the columns wrap around.
    for (let c = from; c <= to; c++) cells.add(key(size, row, ((c % n) + n) % n))
  }
  return [...cells]
}
