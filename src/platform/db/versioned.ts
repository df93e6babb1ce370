// Optimistic concurrency for any versioned record: read it at some version, decide on what was
// read (no lock is held meanwhile), and write only if it is still at that version. When someone
// else wrote first, decide again on what they left; of racing changes one wins, and the others
// are judged on the record it left (and refused, if it no longer allows them).

import { ConflictError, type ProblemCode } from '../../errors.js'

export interface VersionedChange<Read, Plan, Written> {
  /** Reads the record as it is now, with its version. */
  read: () => Promise<Read>
  /** Decides the change on what was read; throws to refuse it. Called again after each lost race. */
  decide: (read: Read) => Plan | Promise<Plan>
  /** Writes the plan only if the record is still at the version read; undefined when it was not (nothing written). */
  write: (read: Read, plan: Plan) => Promise<Written | undefined>
  /** How many times at most the change is read and decided before giving up (at least 1). */
  attempts: number
  /** The 409 answered when every attempt lost its race. */
  busy: { code: ProblemCode; detail?: string }
}

/** Runs a versioned change: answers what `write` answered, or throws what `decide` threw, or the busy 409. */
export async function changeVersioned<Read, Plan, Written>(change: VersionedChange<Read, Plan, Written>): Promise<Written> {
  if (!(change.attempts >= 1)) throw new RangeError('A versioned change needs at least one attempt')
  for (let attempt = 1; attempt <= change.attempts; attempt++) {
    const read = await change.read()
    const plan = await change.decide(read)
    const written = await change.write(read, plan)
    if (written !== undefined) return written
  }
  throw new ConflictError(change.busy.detail ?? 'It kept changing while you changed it; read it again', change.busy.code)
}
