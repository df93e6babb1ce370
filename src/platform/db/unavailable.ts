// Which errors of a database query say that PostgreSQL is out of reach (down, restarting, the
// connection cut), rather than that the query was wrong: those are answered 503
// store_unavailable with Retry-After, like a Redis out of reach, never a 500.

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])
/** SQLSTATEs of a server shutting down or starting (class 57P) and of lost connections (class 08). */
const UNAVAILABLE_SQLSTATE = /^(57P0[1-4]|08\w{3})$/
/** What node-postgres throws when the connection goes, or no pooled one comes in time. */
const UNREACHABLE = ['Connection terminated', 'timeout exceeded when trying to connect', 'Client has encountered a connection error and is not queryable', 'Cannot use a pool after calling end on the pool']

export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATE.test(code))) return true
  if (UNREACHABLE.some((text) => error.message.startsWith(text))) return true
  // A pool may wrap the network error (AggregateError for every address tried).
  if (error instanceof AggregateError) return error.errors.some(isDatabaseUnavailable)
  return error.cause !== undefined && error.cause !== error && isDatabaseUnavailable(error.cause)
}

/** Seconds a client told that the database is out of reach waits before it tries again. */
export const DATABASE_RETRY_AFTER_SECONDS = 2
