import { sql } from 'kysely'
import { loadConfig } from '../config.js'
import { openDatabase, type DB } from '../platform/db/index.js'
import '../features/accounts/store.js'

// `npm run admin -- grant <email>` / `revoke <email>`: the only way to make the first admin.

export async function grantAdmin(db: DB, email: string): Promise<boolean> {
  const result = await db
    .updateTable('users')
    .set({ roles: sql`array_append(roles, 'ADMIN')`, updated_at: sql`now()` })
    .where(sql`lower(email)`, '=', email.trim().toLowerCase())
    .where('deleted_at', 'is', null)
    .where(sql<boolean>`NOT ('ADMIN' = ANY(roles))`)
    .executeTakeFirst()
  if (result.numUpdatedRows > 0n) return true
  // Already an admin counts as done; an unknown email does not.
  const user = await db.selectFrom('users').select('id').where(sql`lower(email)`, '=', email.trim().toLowerCase()).where('deleted_at', 'is', null).executeTakeFirst()
  return user !== undefined
}

export async function revokeAdmin(db: DB, email: string): Promise<boolean> {
  const result = await db
    .updateTable('users')
    .set({ roles: sql`array_remove(roles, 'ADMIN')`, updated_at: sql`now()` })
    .where(sql`lower(email)`, '=', email.trim().toLowerCase())
    .where('deleted_at', 'is', null)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

async function main(argv: string[]) {
  const [command, email] = argv
  if (!email || (command !== 'grant' && command !== 'revoke')) {
    console.error('usage: npm run admin -- grant <email>\n       npm run admin -- revoke <email>')
    return 2
  }
  const config = loadConfig()
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 1 })
  try {
    const done = await (command === 'grant' ? grantAdmin : revokeAdmin)(database.db, email)
    if (!done) {
      console.error(`no account with the email ${email}`)
      return 1
    }
    console.log(command === 'grant' ? `${email} is an admin` : `${email} is no longer an admin`)
    return 0
  } finally {
    await database.close()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (error) => {
    console.error(error instanceof Error ? error.message : error)
    process.exit(1)
  })
}
