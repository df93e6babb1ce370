import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openTestPlatform, testConfig } from './support/backends.js'

// The database as the app opens it (PostgreSQL with prepared statements, or PGlite).

let platform: Awaited<ReturnType<typeof openTestPlatform>>
beforeAll(async () => {
  platform = await openTestPlatform(testConfig({ DB_POOL_SIZE: '4' }))
})
afterAll(async () => {
  await platform?.close()
})

describe('statements', () => {
  it('keeps answering a statement after a migration elsewhere changes its table', async () => {
    const db = platform.database.db
    await sql`CREATE TABLE probe (id int PRIMARY KEY, a text NOT NULL)`.execute(db)
    await sql`INSERT INTO probe VALUES (1, 'x')`.execute(db)
    const read = () => sql<Record<string, unknown>>`SELECT * FROM probe WHERE id = ${1}`.execute(db)
    // Run on every pooled connection, so that each holds the statement prepared.
    expect((await Promise.all(Array.from({ length: 8 }, read))).map((r) => r.rows[0])).toEqual(Array(8).fill({ id: 1, a: 'x' }))
    // A rolling deploy: another process's migration adds a column under the prepared SELECT *.
    await sql`ALTER TABLE probe ADD COLUMN b text NOT NULL DEFAULT 'y'`.execute(db)
    const after = await Promise.all(Array.from({ length: 8 }, read))
    expect(after.map((r) => r.rows[0])).toEqual(Array(8).fill({ id: 1, a: 'x', b: 'y' }))
  })

  it('answers the same rows prepared as unprepared, for many distinct statements', async () => {
    const db = platform.database.db
    // IN lists of each length make a new text each: more texts than are ever prepared still answer.
    for (let n = 1; n <= 60; n++) {
      const ids = Array.from({ length: n }, (_, i) => i)
      const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM generate_series(0, 100) g WHERE g IN (${sql.join(ids)})`.execute(db)
      expect(rows[0]!.n).toBe(n)
    }
  })
})
