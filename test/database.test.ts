import { Kysely, Migrator, sql } from 'kysely'
import { PGliteDialect } from 'kysely-pglite-dialect'
import { v7 as uuidv7 } from 'uuid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrations } from '../migrations/index.js'
import { createPGlite } from '../src/platform/db/index.js'
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

describe('migrations', () => {
  it('counts the unread messages already stored when unread counts arrive (0006)', async () => {
    const db = new Kysely<any>({ dialect: new PGliteDialect(await createPGlite('memory://')) })
    try {
      const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } })
      expect((await migrator.migrateTo('0005_jobs')).error).toBeUndefined()
      const [bob, alice, carol] = [uuidv7(), uuidv7(), uuidv7()]
      for (const id of [bob, alice, carol]) {
        await sql`INSERT INTO users (id, email, password_hash, first_name, last_name, roles, created_at, updated_at) VALUES (${id}, ${`${id}@example.com`}, 'x', 'A', 'B', '{CLIENT}', now(), now())`.execute(db)
      }
      const message = (from: string | null, read: boolean) =>
        sql`INSERT INTO messages (id, sender_id, recipient_id, text, kind, created_at, read_at) VALUES (${uuidv7()}, ${from}, ${bob}, 'hi', ${from ? 'user' : 'system'}, now(), ${read ? new Date() : null})`.execute(db)
      for (const [from, read] of [[alice, false], [alice, false], [alice, true], [carol, false], [null, false], [null, true]] as const) await message(from, read)
      expect((await migrator.migrateToLatest()).error).toBeUndefined()
      const counts = await db.selectFrom('unread_counts').select(['peer_id', 'count']).where('user_id', '=', bob).orderBy('count', 'desc').orderBy('peer_id').execute()
      expect(counts).toEqual([{ peer_id: alice, count: 2 }, ...[{ peer_id: '00000000-0000-0000-0000-000000000000', count: 1 }, { peer_id: carol, count: 1 }].sort((a, b) => (a.peer_id < b.peer_id ? -1 : 1))])
    } finally {
      await db.destroy()
    }
  })
})
