import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

// Tests that run the service as `npm start` does (spawned from dist/) need it built. Built once,
// before any test file runs: files building side by side would write dist/ over each other while
// another file's server reads it.
export default async function buildOnce() {
  await promisify(execFile)('npm', ['run', 'build', '--silent'], { timeout: 300_000 })
}
