// A thread that runs bcrypt for src/platform/passwords.ts, one job at a time. It lowers its own
// CPU priority first (on Linux the nice value is per thread): when the cores are busy, serving
// requests comes before checking passwords, and when they are idle, passwords get them all.
import os from 'node:os'
import { parentPort, workerData } from 'node:worker_threads'
import bcrypt from 'bcrypt'

try {
  os.setPriority(workerData.niceness)
} catch {
  // Not permitted here: run at the normal priority.
}

parentPort.on('message', ({ op, password, hash, cost }) => {
  try {
    const result = op === 'hash' ? bcrypt.hashSync(password, cost) : bcrypt.compareSync(password, hash)
    parentPort.postMessage({ result })
  } catch (error) {
    parentPort.postMessage({ error: error instanceof Error ? error.message : String(error) })
  }
})
