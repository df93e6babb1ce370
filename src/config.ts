// The only reader of process.env: everything is read and checked once, at start.

import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'

export interface Config {
  port: number
  host: string
  /** PostgreSQL connection string; undefined means the embedded PGlite in dataDir. */
  databaseUrl: string | undefined
  /** Redis connection string; undefined means the PostgreSQL live store. */
  redisUrl: string | undefined
  /** redisUrl names one node of a Redis Cluster, and the others are found from it. */
  redisCluster: boolean
  /** Prefix of every Redis key and channel, so several deployments can share one Redis. */
  redisPrefix: string
  dataDir: string
  dbPoolSize: number
  bcryptCost: number
  /** How many bcrypt hashes may run at once (default: one a core); more wait in line. */
  bcryptConcurrency: number
  /** Seconds a session lives without use; each authenticated request renews it. */
  sessionIdleTtl: number
  /** Seconds a session lives at most, however often it is used. */
  sessionMaxAge: number
  /** Sessions one user may hold at once; signing in past it ends the oldest. */
  sessionsPerUser: number
  /** Authentications each process keeps in memory (the least recently used go first). */
  sessionCacheSize: number
  locationDefaultTtl: number
  debug: boolean
  logLevel: string
  corsOrigins: string[]
  publicUrl: string | undefined
  workers: number
  /**
   * Which proxies' X-Forwarded-For to believe, as Fastify's trustProxy takes it: false (none, the
   * peer is the client), true (any), a hop count, or proxy addresses and CIDRs.
   */
  trustProxy: boolean | number | string[]
  /** Requests a minute from one address to all routes together. */
  rateLimitMax: number
  /** Requests a minute from one address to /signup and to /authorize. */
  authRateLimitMax: number
  /** Failed sign-ins an hour from one address on one account; past it that address waits (the account is never locked). */
  loginFailuresPerHour: number
  /** Failed sign-ins an hour from one address, on any accounts; past it that address waits. */
  loginFailuresPerAddressPerHour: number
  /** Messages a minute one user may send. */
  sendRateLimit: number
  /** Milliseconds between WebSocket pings; a socket that missed the last pong is closed. */
  wsHeartbeatInterval: number
  /** Bytes a WebSocket may have waiting to be sent before it is closed as too slow. */
  wsMaxBufferedBytes: number
  /** Seconds a one-time WebSocket ticket lives. */
  wsTicketTtl: number
  /** WebSockets one user may hold on this process; one more closes the user's oldest (4008). */
  wsMaxPerUser: number
  /** WebSockets this process holds at most; past it an upgrade is answered 503. */
  wsMaxConnections: number
  pictureMaxBytes: number
  /** Seconds between sweeps for the jobs' due work (expiry, reminders, auto-approval); 0 turns the sweep off. */
  jobSweepInterval: number
  /** Seconds before an offer expires that its worker is reminded (at most half the offer's life). */
  jobReminderBefore: number
  /** Seconds a COMPLETED job waits for the client before it is approved by itself. */
  jobAutoApproveAfter: number
  /** Who takes payments: `local` settles in the ledger at once. */
  payments: 'local'
  /** Milliseconds a client has to send a request's headers. */
  httpHeadersTimeout: number
  /** Milliseconds a client has to send a whole request, body included. */
  httpRequestTimeout: number
  /** Milliseconds an idle kept-alive connection stays open for the next request. */
  httpKeepAliveTimeout: number
  /** Milliseconds that shutdown waits for requests in flight. */
  shutdownTimeout: number
  /** Whether this process runs background tasks (false: it only adds them, for API-only processes). */
  queueWork: boolean
  /** Milliseconds between a task worker's polls when no commit woke it. */
  queuePollInterval: number
  /** Seconds between the queue's maintenance runs (tasks of dead workers back in line, archiving). */
  queueMaintenanceInterval: number
  /** Seconds a task run at once after its commit is left to that run before a worker takes it. */
  queueInlineGrace: number
}

export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`)
    this.name = 'ConfigError'
  }
}

type Env = Record<string, string | undefined>

/** An address, a CIDR, or a name proxy-addr knows (loopback, linklocal, uniquelocal). */
function isProxyAddress(entry: string): boolean {
  if (['loopback', 'linklocal', 'uniquelocal'].includes(entry)) return true
  const [address, bits, ...rest] = entry.split('/')
  const family = isIP(address ?? '')
  if (family === 0 || rest.length > 0) return false
  if (bits === undefined) return true
  return /^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128)
}

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = []

  const str = (name: string): string | undefined => {
    const value = env[name]?.trim()
    return value === '' ? undefined : value
  }
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = str(name)
    if (raw === undefined) return fallback
    const value = Number(raw)
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max} (got "${raw}")`)
      return fallback
    }
    return value
  }
  const bool = (name: string, fallback: boolean): boolean => {
    const raw = str(name)?.toLowerCase()
    if (raw === undefined) return fallback
    if (['true', '1', 'yes', 'on'].includes(raw)) return true
    if (['false', '0', 'no', 'off'].includes(raw)) return false
    problems.push(`${name} must be true or false (got "${raw}")`)
    return fallback
  }
  const url = (name: string, protocols: string[]): string | undefined => {
    const raw = str(name)
    if (raw === undefined) return undefined
    try {
      const parsed = new URL(raw)
      if (!protocols.includes(parsed.protocol)) {
        problems.push(`${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')}`)
      }
    } catch {
      problems.push(`${name} is not a valid URL`)
    }
    return raw
  }

  const oneOf = <T extends string>(name: string, values: readonly T[], fallback: T): T => {
    const raw = str(name)
    if (raw === undefined) return fallback
    if (!(values as readonly string[]).includes(raw)) {
      problems.push(`${name} must be one of ${values.join(', ')} (got "${raw}")`)
      return fallback
    }
    return raw as T
  }

  const trustProxy = (): boolean | number | string[] => {
    const raw = str('TRUST_PROXY')
    if (raw === undefined || raw.toLowerCase() === 'false') return false
    if (raw.toLowerCase() === 'true') return true
    if (/^\d+$/.test(raw)) return int('TRUST_PROXY', 0, 1, 100)
    const entries = raw.split(',').map((entry) => entry.trim())
    const bad = entries.filter((entry) => !isProxyAddress(entry))
    if (bad.length > 0) {
      problems.push(`TRUST_PROXY must be true, false, a hop count or a comma-separated list of proxy addresses and CIDRs (not ${bad.map((b) => `"${b}"`).join(', ')})`)
      return false
    }
    return entries
  }

  const debug = bool('DEBUG', false)
  const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
  const logLevel = str('LOG_LEVEL') ?? (debug ? 'debug' : 'info')
  if (!logLevels.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${logLevels.join(', ')}`)

  const sessionIdleTtl = int('SESSION_IDLE_TTL', 30 * 24 * 3600, 1, 365 * 24 * 3600)
  const sessionMaxAge = int('SESSION_MAX_AGE', 90 * 24 * 3600, 1, 5 * 365 * 24 * 3600)
  if (sessionMaxAge < sessionIdleTtl) problems.push('SESSION_MAX_AGE must not be shorter than SESSION_IDLE_TTL')

  const config: Config = {
    port: int('PORT', 3000, 0, 65535),
    host: str('HOST') ?? '0.0.0.0',
    databaseUrl: url('DATABASE_URL', ['postgres:', 'postgresql:']),
    redisUrl: url('REDIS_URL', ['redis:', 'rediss:']),
    redisCluster: bool('REDIS_CLUSTER', false),
    redisPrefix: str('REDIS_PREFIX') ?? 'fl:',
    dataDir: str('DATA_DIR') ?? './data',
    dbPoolSize: int('DB_POOL_SIZE', 10, 1, 1000),
    bcryptCost: int('BCRYPT_COST', 12, 4, 31),
    // Hashing threads run below the event loop's priority, so they may have every core.
    bcryptConcurrency: int('BCRYPT_CONCURRENCY', Math.min(availableParallelism(), 64), 1, 64),
    sessionIdleTtl,
    sessionMaxAge,
    sessionsPerUser: int('SESSIONS_PER_USER', 10, 1, 1000),
    sessionCacheSize: int('SESSION_CACHE_SIZE', 100_000, 1, 10_000_000),
    locationDefaultTtl: int('LOCATION_DEFAULT_TTL', 300, 1, 86400),
    debug,
    logLevel,
    corsOrigins: (str('CORS_ORIGINS') ?? '').split(',').map((o) => o.trim()).filter(Boolean),
    publicUrl: url('PUBLIC_URL', ['http:', 'https:'])?.replace(/\/$/, ''),
    workers: int('WORKERS', 1, 1, 256),
    trustProxy: trustProxy(),
    rateLimitMax: int('RATE_LIMIT_MAX', 1200, 1, 10_000_000),
    authRateLimitMax: int('AUTH_RATE_LIMIT_MAX', 30, 1, 10_000_000),
    loginFailuresPerHour: int('LOGIN_FAILURES_PER_HOUR', 100, 1, 1_000_000),
    loginFailuresPerAddressPerHour: int('LOGIN_FAILURES_PER_ADDRESS_PER_HOUR', 1000, 1, 1_000_000),
    sendRateLimit: int('SEND_RATE_LIMIT', 60, 1, 1_000_000),
    wsHeartbeatInterval: int('WS_HEARTBEAT_INTERVAL', 30_000, 100, 600_000),
    wsMaxBufferedBytes: int('WS_MAX_BUFFERED_BYTES', 1024 * 1024, 1024, 1024 * 1024 * 1024),
    wsTicketTtl: int('WS_TICKET_TTL', 30, 1, 3600),
    wsMaxPerUser: int('WS_MAX_PER_USER', 10, 1, 10_000),
    wsMaxConnections: int('WS_MAX_CONNECTIONS', 10_000, 1, 10_000_000),
    pictureMaxBytes: int('PICTURE_MAX_BYTES', 10 * 1024 * 1024, 1024, 100 * 1024 * 1024),
    jobSweepInterval: int('JOB_SWEEP_INTERVAL', 30, 0, 86400),
    jobReminderBefore: int('JOB_REMINDER_BEFORE', 24 * 3600, 60, 30 * 24 * 3600),
    jobAutoApproveAfter: int('JOB_AUTO_APPROVE_AFTER', 7 * 24 * 3600, 60, 365 * 24 * 3600),
    payments: oneOf('PAYMENTS', ['local'] as const, 'local'),
    httpHeadersTimeout: int('HTTP_HEADERS_TIMEOUT', 20_000, 100, 600_000),
    httpRequestTimeout: int('HTTP_REQUEST_TIMEOUT', 120_000, 100, 3_600_000),
    httpKeepAliveTimeout: int('HTTP_KEEP_ALIVE_TIMEOUT', 5_000, 100, 600_000),
    shutdownTimeout: int('SHUTDOWN_TIMEOUT', 10_000, 0, 600_000),
    queueWork: bool('QUEUE_WORK', true),
    queuePollInterval: int('QUEUE_POLL_INTERVAL', 2000, 500, 600_000),
    queueMaintenanceInterval: int('QUEUE_MAINTENANCE_INTERVAL', 30, 1, 3600),
    queueInlineGrace: int('QUEUE_INLINE_GRACE', 30, 1, 3600),
  }
  if (config.redisCluster) {
    if (!config.redisUrl) problems.push('REDIS_CLUSTER needs REDIS_URL, naming one node of the cluster')
    else if (URL.canParse(config.redisUrl) && !['', '/', '/0'].includes(new URL(config.redisUrl).pathname)) {
      problems.push('REDIS_URL must not name a database with REDIS_CLUSTER: a Redis Cluster has database 0 only')
    }
  }
  if (config.httpHeadersTimeout > config.httpRequestTimeout) {
    problems.push('HTTP_HEADERS_TIMEOUT must not be longer than HTTP_REQUEST_TIMEOUT: the headers are part of the request')
  }
  if (config.workers > 1 && !config.databaseUrl) {
    problems.push('WORKERS above 1 needs DATABASE_URL: the embedded database serves one process')
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}
