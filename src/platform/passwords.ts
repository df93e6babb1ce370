import { createHash } from 'node:crypto'
import { Worker } from 'node:worker_threads'
import { TooManyRequestsError } from '../errors.js'

export interface PasswordHasher {
  hash(password: string): Promise<string>
  /** Compares against the hash; with no hash, spends the same time on a dummy and answers false. */
  verify(password: string, hash: string | null): Promise<boolean>
}

/**
 * bcrypt reads 72 bytes of a password and ignores the rest. A longer one (passwords run to 128
 * characters, up to 512 bytes in UTF-8) is first reduced to its SHA-256, so that every character
 * counts; passwords of 72 bytes or fewer go in as they are, so hashes made before stay valid.
 */
const BCRYPT_BYTES = 72
export const bcryptInput = (password: string) =>
  Buffer.byteLength(password, 'utf8') > BCRYPT_BYTES ? `sha256:${createHash('sha256').update(password, 'utf8').digest('base64url')}` : password

/** How much lower than the event loop the bcrypt threads run (nice 0 to 19). */
const NICENESS = 10

type Job = { op: 'hash'; password: string; cost: number } | { op: 'compare'; password: string; hash: string }
interface Queued {
  job: Job
  resolve: (result: string | boolean) => void
  reject: (error: Error) => void
}

/**
 * bcrypt on `concurrency` threads of its own, at a lower CPU priority than the event loop, with a
 * bounded line behind them. A flood of sign-ins waits its turn (or is told to come back) and only
 * gets the CPU that serving requests leaves over, so it can't starve every other route; on idle
 * cores sign-ins run at full speed. The threads start on first use and never keep the process alive
 * while idle.
 */
export function createPasswordHasher(options: { cost: number; concurrency: number; maxWaiting?: number }): PasswordHasher {
  const maxWaiting = options.maxWaiting ?? options.concurrency * 200
  const waiting: Queued[] = []
  const idle: Worker[] = []
  const busy = new Map<Worker, Queued>()
  let threads = 0

  const startThread = () => {
    threads++
    const worker = new Worker(new URL('./password-worker.mjs', import.meta.url), { workerData: { niceness: NICENESS } })
    worker.unref()
    worker.on('message', (message: { result?: string | boolean; error?: string }) => {
      const current = busy.get(worker)
      busy.delete(worker)
      worker.unref()
      if (current) {
        if (message.error !== undefined) current.reject(new Error(`bcrypt failed: ${message.error}`))
        else current.resolve(message.result!)
      }
      idle.push(worker)
      dispatch()
    })
    let gone = false
    const lost = (error: Error) => {
      if (gone) return
      gone = true
      const current = busy.get(worker)
      busy.delete(worker)
      const at = idle.indexOf(worker)
      if (at >= 0) idle.splice(at, 1)
      threads--
      current?.reject(error)
      dispatch()
    }
    worker.on('error', lost)
    worker.on('exit', (code) => lost(new Error(`the bcrypt thread exited with ${code}`)))
    idle.push(worker)
  }

  const dispatch = () => {
    while (waiting.length > 0) {
      if (idle.length === 0 && threads < options.concurrency) startThread()
      const worker = idle.pop()
      if (!worker) return
      const next = waiting.shift()!
      busy.set(worker, next)
      worker.ref() // a job in flight keeps the process alive until it answers
      worker.postMessage(next.job)
    }
  }

  const run = <T extends string | boolean>(job: Job): Promise<T> => {
    if (waiting.length >= maxWaiting) {
      return Promise.reject(new TooManyRequestsError('Too many sign-ins are being checked right now; try again shortly', 1, 'busy'))
    }
    return new Promise<T>((resolve, reject) => {
      waiting.push({ job, resolve: resolve as (result: string | boolean) => void, reject })
      dispatch()
    })
  }

  // A hash to compare against when the account does not exist, so that an unknown email costs
  // as much time as a wrong password. Made at start (and again if that failed).
  const makeDummy = () => run<string>({ op: 'hash', password: 'not a real password, only a timing twin', cost: options.cost })
  let dummy = makeDummy()
  dummy.catch(() => {})
  const dummyHash = () => dummy.catch(() => (dummy = makeDummy()))

  return {
    hash: (password) => run<string>({ op: 'hash', password: bcryptInput(password), cost: options.cost }),
    verify: async (password, hash) => {
      const against = hash ?? (await dummyHash())
      const ok = await run<boolean>({ op: 'compare', password: bcryptInput(password), hash: against })
      return ok && hash !== null
    },
  }
}
