import pino from 'pino'
import { loadConfig } from '../config.js'
import { openPlatform } from '../platform/index.js'
import { createServices } from '../services.js'

// `npm run admin -- grant <email>` / `revoke <email>`: the only way to make the first admin. It
// goes through the same accounts service as the API, so running servers learn of the change at
// once (their caches drop the user, and the user's card on the map shows the new roles).

async function main(argv: string[]) {
  const [command, email] = argv
  if (!email || (command !== 'grant' && command !== 'revoke')) {
    console.error('usage: npm run admin -- grant <email>\n       npm run admin -- revoke <email>')
    return 2
  }
  // No sweeps of due jobs and no background tasks from here: that is the servers' work.
  const config = { ...loadConfig(), jobSweepInterval: 0, queueWork: false }
  const platform = await openPlatform(config)
  let services
  try {
    services = await createServices(config, platform, { log: pino({ level: config.logLevel }, pino.destination(2)) })
  } catch (error) {
    await platform.close()
    throw error
  }
  try {
    if (!(await services.accounts.setAdmin(email, command === 'grant'))) {
      console.error(`no account with the email ${email}`)
      return 1
    }
    console.log(command === 'grant' ? `${email} is an admin` : `${email} is no longer an admin`)
    return 0
  } finally {
    await services.close()
    await platform.close()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (error) => {
    console.error(error instanceof Error ? error.message : error)
    process.exit(1)
  })
}
