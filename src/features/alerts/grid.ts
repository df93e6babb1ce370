// A fixed grid of cells about 11 km square everywhere: rows of 0.1 degree of latitude, each cut
// into as many columns as make its cells about as wide as they are tall (fewer toward the poles).
// A saved alert is filed under every cell its circle touches; a request reads the one cell of its
// place. A cell is one bigint (row * 4000 + column), so the index is a plain btree.

const ROW_DEG = 0.1
const ROWS = Math.round(180 / ROW_DEG)
const COLUMN_KEY = 4000
/** Meters in a degree of latitude (and of longitude at the equator), rounded up: circles are covered, never cut. */
const M_PER_DEG = 111_320

const rowOf = (lat: number) => Math.min(ROWS - 1, Math.max(0, Math.floor((lat + 90) / ROW_DEG)))
const columnsIn = (row: number) => Math.max(1, Math.floor(3600 * Math.cos(((-90 + (row + 0.5) * ROW_DEG) * Math.PI) / 180)))
const columnOf = (row: number, lon: number) => {
  const n = columnsIn(row)
  return Math.min(n - 1, Math.max(0, Math.floor(((lon + 180) / 360) * n)))
}

/** The cell of a point. */
export function cellOf(lat: number, lon: number): number {
  const row = rowOf(lat)
  return row * COLUMN_KEY + columnOf(row, lon)
}

/** Every cell a circle touches (a little more: its bounding box per row, widened by a margin). */
export function cellsOfCircle(lat: number, lon: number, radiusM: number): number[] {
  const margin = 1.02
  const dLat = (radiusM * margin) / M_PER_DEG
  const cells = new Set<number>()
  const first = rowOf(lat - dLat)
  const last = rowOf(lat + dLat)
  // A circle over a pole reaches past it, on the other side: the rows it covers there take every column.
  const overNorth = lat + dLat >= 90 ? rowOf(90 - (lat + dLat - 90)) : ROWS
  const overSouth = lat - dLat <= -90 ? rowOf(-90 + (-90 - (lat - dLat))) : -1
  for (let row = first; row <= last; row++) {
    if (row >= overNorth || row <= overSouth) {
      for (let c = 0; c < columnsIn(row); c++) cells.add(row * COLUMN_KEY + c)
      continue
    }
    // The row's edge nearest a pole (within the circle's band) is where a degree of longitude is shortest.
    const south = Math.max(-90 + row * ROW_DEG, lat - dLat)
    const north = Math.min(-90 + (row + 1) * ROW_DEG, lat + dLat)
    const widest = Math.min(89.999, Math.max(Math.abs(south), Math.abs(north)))
    const dLon = (radiusM * margin) / (M_PER_DEG * Math.cos((widest * Math.PI) / 180))
    const n = columnsIn(row)
    const from = Math.floor(((lon - dLon + 180) / 360) * n)
    const to = Math.floor(((lon + dLon + 180) / 360) * n)
    if (dLon >= 180 || to - from + 1 >= n) {
      for (let c = 0; c < n; c++) cells.add(row * COLUMN_KEY + c)
      continue
    }
    // Across the antimeridian the columns wrap around.
    for (let c = from; c <= to; c++) cells.add(row * COLUMN_KEY + (((c % n) + n) % n))
  }
  return [...cells]
}
