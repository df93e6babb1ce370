import { describe, expect, it } from 'vitest'
import { ConflictError, ForbiddenError } from '../../errors.js'
import { changeVersioned } from './versioned.js'

/** A record kept in memory, written only at the version it was read at, as a versioned UPDATE does. */
function memoryRecord(value: number) {
  let current = { value, version: 1 }
  const writes: number[] = []
  return {
    get current() {
      return current
    },
    writes,
    read: async () => ({ ...current }),
    write: async (read: { version: number }, next: number) => {
      if (read.version !== current.version) return undefined
      current = { value: next, version: current.version + 1 }
      writes.push(next)
      return { ...current }
    },
    /** Someone else's write, between a read and a write of ours. */
    otherWrite(next: number) {
      current = { value: next, version: current.version + 1 }
    },
  }
}

const busy = { code: 'busy' as const, detail: 'It kept changing; read it again' }

describe('changeVersioned', () => {
  it('reads, decides and writes once when nobody else writes', async () => {
    const record = memoryRecord(1)
    const decided: number[] = []
    const written = await changeVersioned({
      read: record.read,
      decide: (read) => {
        decided.push(read.value)
        return read.value + 10
      },
      write: record.write,
      attempts: 3,
      busy,
    })
    expect(written).toEqual({ value: 11, version: 2 })
    expect(decided).toEqual([1])
    expect(record.writes).toEqual([11])
  })

  it('decides again on what another writer left when it lost the race', async () => {
    const record = memoryRecord(1)
    const decided: number[] = []
    let raced = false
    const written = await changeVersioned({
      read: record.read,
      decide: async (read) => {
        decided.push(read.value)
        if (!raced) {
          raced = true
          record.otherWrite(5)
        }
        return read.value * 2
      },
      write: record.write,
      attempts: 3,
      busy,
    })
    expect(decided).toEqual([1, 5])
    expect(written).toEqual({ value: 10, version: 3 })
    // The plan decided on the stale read was never written.
    expect(record.writes).toEqual([10])
  })

  it('writes nothing when the decision refuses, and throws the refusal', async () => {
    const record = memoryRecord(1)
    const refusal = new ForbiddenError('Not yours', 'forbidden')
    await expect(changeVersioned({ read: record.read, decide: () => { throw refusal }, write: record.write, attempts: 3, busy })).rejects.toBe(refusal)
    expect(record.current).toEqual({ value: 1, version: 1 })
  })

  it('refuses on what others left: a change they made impossible is refused, not written', async () => {
    const record = memoryRecord(1)
    const attempt = changeVersioned({
      read: record.read,
      decide: (read) => {
        if (read.value !== 1) throw new ConflictError('Already changed', 'conflict')
        record.otherWrite(2)
        return 3
      },
      write: record.write,
      attempts: 5,
      busy,
    })
    await expect(attempt).rejects.toMatchObject({ code: 'conflict', status: 409 })
    expect(record.current).toEqual({ value: 2, version: 2 })
  })

  it('gives up after `attempts` lost races with a 409 of the caller\'s code', async () => {
    const record = memoryRecord(1)
    let reads = 0
    const attempt = changeVersioned({
      read: async () => {
        reads++
        return record.read()
      },
      decide: (read) => {
        record.otherWrite(read.value + 1)
        return 0
      },
      write: record.write,
      attempts: 4,
      busy,
    })
    await expect(attempt).rejects.toBeInstanceOf(ConflictError)
    await expect(attempt).rejects.toMatchObject({ code: 'busy', message: 'It kept changing; read it again', status: 409 })
    expect(reads).toBe(4)
    expect(record.writes).toEqual([])
  })

  it('needs at least one attempt', async () => {
    const record = memoryRecord(1)
    await expect(changeVersioned({ read: record.read, decide: () => 2, write: record.write, attempts: 0, busy })).rejects.toBeInstanceOf(RangeError)
    expect(record.current.version).toBe(1)
  })
})
