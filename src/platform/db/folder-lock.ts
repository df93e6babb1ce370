import { open, readFile, stat, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import path from 'node:path'

// PGlite is one PostgreSQL in this process: a second process opening the same folder writes over
// the first one's files and breaks them for good. A lock file (our pid) keeps it to one process;
// a lock whose process is gone (killed, crashed) is taken over.

export class FolderInUseError extends Error {
  constructor(dataDir: string, holder: LockHolder) {
    super(
      `The embedded database in ${dataDir} is open in another process${holder.pid ? ` (pid ${holder.pid}: ${holder.command})` : ''}. ` +
        'Two processes must never open it at once: stop that one first (a server: Ctrl-C) and run this again, ' +
        'or run both on PostgreSQL (DATABASE_URL). Nothing was changed.',
    )
    this.name = 'FolderInUseError'
  }
}

interface LockHolder {
  pid: number
  host: string
  command: string
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

const readHolder = async (file: string): Promise<LockHolder | null> => {
  try {
    const holder = JSON.parse(await readFile(file, 'utf8')) as LockHolder
    return Number.isInteger(holder.pid) ? holder : null
  } catch {
    return null
  }
}

/** Takes the folder for this process; answers the release. Throws FolderInUseError when a live process holds it. */
export async function lockFolder(dataDir: string): Promise<() => Promise<void>> {
  const file = path.join(dataDir, 'pglite.lock')
  const me: LockHolder = { pid: process.pid, host: hostname(), command: process.argv.slice(1).map((a) => path.basename(a)).join(' ') }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, 'wx')
      await handle.writeFile(JSON.stringify(me))
      await handle.close()
      return async () => {
        if ((await readHolder(file))?.pid === me.pid) await unlink(file).catch(() => {})
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    const holder = await readHolder(file)
    // Unreadable and fresh: a rival is between creating the file and writing its pid.
    if (!holder && Date.now() - (await stat(file).then((s) => s.mtimeMs, () => 0)) < 10_000) break
    // A holder on another host (a shared disk) can't be checked: it is taken as alive.
    if (holder && (holder.host !== me.host || alive(holder.pid))) throw new FolderInUseError(dataDir, holder)
    // Stale (its process is gone) or half-written: take it over; a rival doing the same at once loses the `wx` above.
    await unlink(file).catch(() => {})
  }
  throw new FolderInUseError(dataDir, (await readHolder(file)) ?? { pid: 0, host: me.host, command: '' })
}
