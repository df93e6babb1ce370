import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { PGlite } from '@electric-sql/pglite'
import { cube } from '@electric-sql/pglite/contrib/cube'
import { earthdistance } from '@electric-sql/pglite/contrib/earthdistance'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import { Kysely, Migrator, PostgresDialect, type LogEvent } from 'kysely'
import { PGliteDialect } from 'kysely-pglite-dialect'
import pg from 'pg'
import { migrations } from '../../../migrations/index.js'
import { lockFolder } from './folder-lock.js'
import { DEFAULT_RECONNECT, type ReconnectDelays } from '../reconnect.js'
import { listenOnServer, type Listen } from './listen.js'
import { prepareStatements } from './prepared.js'
import type { Database } from './types.js'

export type { Database } from './types.js'
export type { Listen, Listener, ListenHandlers } from './listen.js'
export type DB = Kysely<Database>

/**
 * Runs SQL text as it comes, for libraries that bring their own (the job queue): one statement
 * with `values`, or a script of several without.
 */
export type ExecuteSql = (text: string, values?: unknown[]) => Promise<{ rows: any[] }>

/** What Kysely tells of each statement it ran: its SQL (never its values), time, and error. */
export type QueryLog = (event: LogEvent) => void

export interface DatabaseHandle {
  db: DB
  kind: 'pglite' | 'postgres'
  listen: Listen
  executeSql: ExecuteSql
  /** Sends every statement Kysely runs to `log` (DEBUG logs); undefined stops it. */
  logQueries(log: QueryLog | undefined): void
  close(): Promise<void>
}

/** Kysely's `log` option, pointing at whatever logQueries set (nothing by default). */
function queryLogger() {
  let current: QueryLog | undefined
  return { log: (event: LogEvent) => current?.(event), set: (log: QueryLog | undefined) => void (current = log) }
}

export interface DatabaseOptions {
  /** PostgreSQL connection string; undefined opens PGlite. */
  databaseUrl: string | undefined
  /** Folder for PGlite's files; 'memory://' keeps them in memory (tests). */
  dataDir: string
  poolSize: number
  /** How a LISTEN whose connection dropped is made again. */
  reconnect?: ReconnectDelays
}

export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  const handle = options.databaseUrl
    ? openPostgres(options.databaseUrl, options.poolSize, options.reconnect ?? DEFAULT_RECONNECT)
    : await openPGlite(options.dataDir)
  try {
    await migrate(handle.db)
  } catch (error) {
    await handle.close()
    throw error
  }
  return handle
}

function openPostgres(connectionString: string, max: number, reconnect: ReconnectDelays): DatabaseHandle {
  const pool = new pg.Pool({ connectionString, max, idleTimeoutMillis: 30_000 })
  // An idle client that loses its connection emits here; without a listener the process dies.
  pool.on('error', () => {})
  // So does a client checked out between two queries (a transaction waiting on another store, a
  // queue poll) when the server goes away: PostgreSQL restarting sends 57P01 to every connection,
  // which killed the process. The error reaches whoever runs the next query on that client, and
  // the pool drops it.
  pool.on('connect', (client) => client.on('error', () => {}))
  prepareStatements(pool)
  const queries = queryLogger()
  const db: DB = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log: queries.log })
  // LISTEN needs a connection of its own for as long as it listens, made again when it drops.
  const listeners = listenOnServer(connectionString, reconnect)
  return {
    db,
    kind: 'postgres',
    logQueries: queries.set,
    listen: listeners.listen,
    executeSql: (text, values) => pool.query(text, values),
    async close() {
      await listeners.stopAll()
      await db.destroy()
    },
  }
}

/**
 * Node 24's V8 can abort the process ("Check failed: jit_page_->allocations_.erase(addr) == 1",
 * nodejs/node#64500) when it frees a WebAssembly-to-JS import wrapper it tiered up; PGlite's
 * module calls its imports thousands of times a query. With the tier-up budget at its largest, an
 * import tiers up only after 2^31 calls of its own, so such wrappers are next to never compiled or
 * freed. The flag is read when a module is instantiated: set before the first PGlite, once.
 */
let wrapperTieringOff = false
const turnWrapperTieringOff = () => {
  if (wrapperTieringOff || Number(process.versions.node.split('.')[0]) < 24) return
  setFlagsFromString('--wasm-wrapper-tiering-budget=2147483647')
  wrapperTieringOff = true
}

/** Opens PGlite with the extensions our migrations use. */
export async function createPGlite(location: string): Promise<PGlite> {
  turnWrapperTieringOff()
  return await PGlite.create(location, { extensions: { cube, earthdistance, pg_trgm } })
}

async function openPGlite(dataDir: string): Promise<DatabaseHandle> {
  let location = dataDir
  let unlock = async () => {}
  if (!dataDir.startsWith('memory://')) {
    location = path.resolve(dataDir, 'pglite')
    await mkdir(location, { recursive: true })
    unlock = await lockFolder(path.resolve(dataDir))
  }
  let pglite: PGlite
  try {
    pglite = await createPGlite(location)
  } catch (error) {
    await unlock()
    throw error
  }
  const queries = queryLogger()
  const db: DB = new Kysely<Database>({ dialect: new PGliteDialect(pglite), log: queries.log })
  return {
    db,
    kind: 'pglite',
    logQueries: queries.set,
    // PGlite is one connection: take it from Kysely's driver, which lends it to one user at a time
    // (a statement run beside an open transaction would land inside it). A script without values
    // goes by the simple protocol, which takes several statements.
    executeSql: (text, values) =>
      db.connection().execute(async () => (values && values.length > 0 ? pglite.query(text, values) : { rows: (await pglite.exec(text)).at(-1)?.rows ?? [] })),
    // In the process: it never drops.
    listen: async (channel, handlers) => {
      const unlisten = await pglite.listen(channel, handlers.payload)
      return {
        listening: true,
        async stop() {
          if (!pglite.closed) await unlisten()
        },
      }
    },
    async close() {
      // Destroying the Kysely driver closes PGlite too.
      await db.destroy()
      await unlock()
    },
  }
}

async function migrate(db: DB): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } })
  const { error, results } = await migrator.migrateToLatest()
  const failed = results?.find((result) => result.status === 'Error')
  if (error || failed) {
    const cause = error instanceof Error ? error : new Error(String(error))
    throw new Error(`Migration ${failed?.migrationName ?? ''} failed: ${cause.message}`, { cause })
  }
}
