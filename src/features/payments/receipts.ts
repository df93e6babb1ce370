// Receiving the provider's events: each recorded once, by its id, before it is answered. Events
// that arrive together share one insert (one statement, one commit for all of them), and up to
// LANES inserts run at once: a receipt waits for a free lane, not for every insert before it, so
// commits overlap on the server (which flushes them together) instead of queueing one behind the
// other. Each receipt is answered once its row is committed, as new or as a duplicate.

import type { PaymentsDeps } from './core.js'

/** Inserts of receipts under way at most (each holds a connection of the pool for its statement). */
const LANES = 4

interface Receipt {
  id: string
  type: string
  payload: string
  done: (duplicate: boolean) => void
  failed: (error: unknown) => void
}

/** `inserted`: told after each commit that recorded new events (the applier's wake-up). */
export function createReceipts(deps: Pick<PaymentsDeps, 'db' | 'store' | 'clock'>, inserted: () => void) {
  const { db, store, clock } = deps
  let waiting: Receipt[] = []
  let lanes = 0
  let gathering = false

  const insert = async (rows: Receipt[]) => {
    const ids = new Set(await store.insertEvents(db, rows, clock.now()))
    if (ids.size > 0) inserted()
    return ids
  }

  async function insertGroup(group: Receipt[]): Promise<void> {
    // One row an id (the same event twice in a group: the second is its duplicate), in the order
    // of their ids: two inserts at once that share ids then lock them in one order (no deadlock;
    // the later one waits for the first's commit and finds them recorded).
    const first = new Map<string, Receipt>()
    for (const receipt of group) if (!first.has(receipt.id)) first.set(receipt.id, receipt)
    const rows = [...first.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    try {
      const ids = await insert(rows)
      for (const receipt of group) receipt.done(!(ids.has(receipt.id) && first.get(receipt.id) === receipt))
    } catch (error) {
      // One row the database refused must not fail the others: each on its own.
      for (const row of rows) {
        const same = group.filter((r) => r.id === row.id)
        try {
          const isNew = (await (rows.length === 1 ? Promise.reject(error) : insert([row]))).has(row.id)
          for (const receipt of same) receipt.done(!(isNew && receipt === row))
        } catch (alone) {
          for (const receipt of same) receipt.failed(alone)
        }
      }
    }
  }

  /** Starts an insert in each free lane, with all the receipts waiting. */
  function insertWaiting(): void {
    gathering = false
    while (lanes < LANES && waiting.length > 0) {
      const group = waiting
      waiting = []
      lanes++
      void insertGroup(group).finally(() => {
        lanes--
        insertWaiting()
      })
    }
  }

  /** Records an event once; answers whether it was seen before. */
  function record(event: { id: string; type: string }, payload: string): Promise<{ duplicate: boolean }> {
    return new Promise((resolve, reject) => {
      waiting.push({ id: event.id, type: event.type, payload, done: (duplicate) => resolve({ duplicate }), failed: reject })
      // Requests read in the same turn of the event loop share the insert that follows it.
      if (!gathering) {
        gathering = true
        setImmediate(insertWaiting)
      }
    })
  }

  return { record }
}
