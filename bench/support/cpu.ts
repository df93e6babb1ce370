// CPU time of this machine's processes, read from /proc (Linux), for benchmarks that say where a
// run's CPU went: the API's processes, the PostgreSQL and Redis servers (when on this machine),
// the load generator, and what was left idle.

import { readdirSync, readFileSync } from 'node:fs'

/** Clock ticks a second in /proc's figures (USER_HZ, 100 on Linux). */
const TICKS = 100

/** utime + stime of one process so far, in microseconds (undefined once it is gone, or not on this machine). */
export function processMicros(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return ((Number(fields[11]) + Number(fields[12])) / TICKS) * 1e6
  } catch {
    return undefined
  }
}

/** CPU so far of every process whose command is `name` (such as `postgres` or `redis-server`), in microseconds. */
export function commandMicros(name: string): number {
  let micros = 0
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === name) micros += processMicros(Number(pid)) ?? 0
    } catch {
      // the process ended meanwhile
    }
  }
  return micros
}

/**
 * The machine's CPU so far, summed over its cores, in microseconds: busy and idle (iowait counts
 * as idle); and its cores (all of them: a process pinned with taskset sees only its own in Node).
 */
export function machineMicros(): { busy: number; idle: number; cores: number } {
  const lines = readFileSync('/proc/stat', 'utf8').split('\n')
  const [user, nice, system, idle, iowait, irq, softirq, steal] = lines[0]!.split(/\s+/).slice(1, 9).map(Number) as number[]
  const toMicros = (ticks: number) => (ticks / TICKS) * 1e6
  return { busy: toMicros(user! + nice! + system! + irq! + softirq! + steal!), idle: toMicros(idle! + iowait!), cores: lines.filter((l) => /^cpu\d+ /.test(l)).length }
}
