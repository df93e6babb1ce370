// The only reader of process.env: everything is read and checked once, at start.

import { createPrivateKey, type KeyObject } from 'node:crypto'
import { isIP } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SETTINGS, type SettingOf } from './settings.js'

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
  /** Hosts (`host` or `host:port`, lower case) whose push endpoints skip the check of their addresses. */
  pushEndpointAllow: string[]
  publicUrl: string | undefined
  workers: number
  productName: string
  /** SMTP server of the mails; undefined: each mail is written as an .eml file in mailDir. */
  smtpUrl: string | undefined
  mailFrom: string
  mailDir: string
  mailRetryDelay: number
  emailConfirmation: 'required' | 'off'
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
  /** Seconds between sweeps for held notifications (quiet hours, grouping); 0: only when woken. */
  notificationSweepInterval: number
  /** Web Push VAPID keys; unset, made on first start and kept in the database. */
  vapidPublicKey?: string
  vapidPrivateKey?: string
  /** The VAPID subject: a mailto: or https: URL. */
  vapidSubject: string
  /** Seconds between sweeps for the jobs' due work (expiry, reminders, auto-approval); 0 turns the sweep off. */
  jobSweepInterval: number
  /** Seconds before an offer expires that its worker is reminded (at most half the offer's life). */
  jobReminderBefore: number
  /** Seconds a COMPLETED job waits for the client before it is approved by itself. */
  jobAutoApproveAfter: number
  /** Who takes payments: `local` (Stripe's test mode, embedded) or `stripe`. */
  payments: 'local' | 'stripe'
  /** The platform's fee on each job, in basis points of its price. */
  platformFeeBps: number
  stripeSecretKey: string | undefined
  stripeWebhookSecret: string | undefined
  /** Where the Stripe SDK sends its calls; unset: Stripe's own API. */
  stripeApiUrl: string | undefined
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
  /** Milliseconds a Redis command may wait for its answer; then it fails (503 store_unavailable). */
  redisCommandTimeout: number
  /** Milliseconds each readiness check of GET /ready may take before it counts as failing. */
  readyTimeout: number
  /** Milliseconds before the first attempt to reconnect a lost Redis or LISTEN connection; each next waits about twice as long. */
  reconnectMinDelay: number
  /** Milliseconds between reconnection attempts at most. */
  reconnectMaxDelay: number
  /** OpenID Connect providers to sign in with, by name. */
  oidcProviders: OidcProviderConfig[]
  /** The apps' own addresses a sign-in with a provider may return to, matched exactly. */
  oidcAppRedirects: string[]
  /** 32 bytes sealing TOTP secrets at rest; undefined: they are stored as they are. */
  totpEncryptionKey: Buffer | undefined
}

/** One OpenID Connect provider of OIDC_PROVIDERS. */
export interface OidcProviderConfig {
  name: string
  issuer: string
  clientId: string
  /** client_secret_post / client_secret_basic. */
  clientSecret?: string
  /** private_key_jwt: a PKCS#8 PEM private key, and the key id the provider knows it by. */
  privateKey?: string
  keyId?: string
  /**
   * With privateKey and keyId, Apple's way instead: the client secret is itself a short-lived
   * ES256 JWT signed with the key (iss this team id, sub the client id, aud the issuer), sent
   * as client_secret_post and signed anew before it lapses.
   */
  teamId?: string
  scopes: string[]
  /** How the provider sends its answer back: in the callback's query (the default), or posted as a form (Apple, when it is asked for the email or name). */
  responseMode: 'query' | 'form_post'
  /** An http: issuer on a loopback address is allowed (local development and tests only). */
  allowHttp: boolean
}

const PROVIDER_NAME = /^[a-z0-9][a-z0-9_-]{0,39}$/
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]'])

/** OIDC_PROVIDERS, checked: every problem is named, none is guessed around. */
function parseOidcProviders(raw: string | undefined, problems: string[]): OidcProviderConfig[] {
  if (raw === undefined) return []
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    problems.push('OIDC_PROVIDERS is not valid JSON')
    return []
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    problems.push('OIDC_PROVIDERS must be a JSON object keyed by provider name')
    return []
  }
  const providers: OidcProviderConfig[] = []
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    const where = `OIDC_PROVIDERS.${name}`
    if (!PROVIDER_NAME.test(name)) problems.push(`${where}: a provider's name is 1 to 40 lowercase letters, digits, - or _`)
    const entry = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>
    const str = (key: string) => (typeof entry[key] === 'string' && entry[key] !== '' ? (entry[key] as string) : undefined)
    const issuer = str('issuer')
    const clientId = str('client_id')
    const allowHttp = entry.allow_http === true
    if (!issuer || !URL.canParse(issuer)) {
      problems.push(`${where}.issuer must be the provider's issuer URL`)
      continue
    }
    const url = new URL(issuer)
    if (url.protocol === 'http:') {
      if (!allowHttp) problems.push(`${where}.issuer must be https (an http: issuer on a loopback address needs "allow_http": true)`)
      else if (!LOOPBACK_HOSTS.has(url.hostname)) problems.push(`${where}.allow_http is only for issuers on a loopback address (127.0.0.1, localhost, [::1])`)
    } else if (url.protocol !== 'https:') problems.push(`${where}.issuer must be https`)
    if (!clientId) problems.push(`${where}.client_id is required`)
    const clientSecret = str('client_secret')
    const privateKey = str('private_key')
    if (!clientSecret === !privateKey) problems.push(`${where} needs either client_secret or private_key (not both)`)
    const keyId = str('key_id')
    const teamId = str('team_id')
    if (privateKey) {
      let key: KeyObject | undefined
      try {
        key = createPrivateKey(privateKey)
      } catch {
        problems.push(`${where}.private_key is not a private key in PEM (PKCS#8: "-----BEGIN PRIVATE KEY-----...")`)
      }
      if (teamId) {
        // Apple's client secret: ES256 only, and the provider finds the key by its id.
        if (key && (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')) problems.push(`${where}.private_key must be an EC P-256 key to sign the client secret (ES256)`)
        if (!keyId) problems.push(`${where}.key_id is required with team_id (the key's id at the provider)`)
      } else if (key && key.asymmetricKeyType !== 'ec' && key.asymmetricKeyType !== 'rsa') problems.push(`${where}.private_key must be an EC P-256 or RSA key`)
    } else if (teamId) problems.push(`${where}.team_id goes with private_key and key_id (a client secret signed with the key)`)
    const scopes = entry.scopes === undefined ? ['openid', 'email', 'profile'] : entry.scopes
    if (!Array.isArray(scopes) || !scopes.every((scope) => typeof scope === 'string') || !scopes.includes('openid')) {
      problems.push(`${where}.scopes must be a list of strings with "openid"`)
    }
    const responseMode = entry.response_mode ?? 'query'
    if (responseMode !== 'query' && responseMode !== 'form_post') problems.push(`${where}.response_mode must be "query" or "form_post"`)
    providers.push({ name, issuer, clientId: clientId ?? '', clientSecret, privateKey, keyId, teamId, responseMode: responseMode === 'form_post' ? 'form_post' : 'query', scopes: Array.isArray(scopes) ? (scopes as string[]) : ['openid'], allowHttp })
  }
  return providers
}

/** The apps' addresses: absolute URLs, each compared exactly. */
function parseAppRedirects(raw: string | undefined, problems: string[]): string[] {
  const entries = (raw ?? '').split(',').map((entry) => entry.trim()).filter(Boolean)
  for (const entry of entries) if (!URL.canParse(entry)) problems.push(`OIDC_APP_REDIRECTS: "${entry}" is not an absolute URL`)
  return entries
}

function parseKey(raw: string | undefined, problems: string[]): Buffer | undefined {
  if (raw === undefined) return undefined
  const key = Buffer.from(raw, 'base64')
  if (key.length !== 32) {
    problems.push('TOTP_ENCRYPTION_KEY must be 32 bytes in base64 (`openssl rand -base64 32`)')
    return undefined
  }
  return key
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

/** Mails beside the embedded database; an in-memory database has no folder, so a temporary one. */
function defaultMailDir(dataDir: string): string {
  return dataDir.startsWith('memory://') ? join(tmpdir(), 'freelancer-mail') : join(dataDir, 'mail')
}

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = []

  const str = (name: string): string | undefined => {
    const value = env[name]?.trim()
    return value === '' ? undefined : value
  }
  const int = (name: SettingOf<'int'>): number => {
    const spec = SETTINGS[name]
    const fallback = typeof spec.default === 'function' ? spec.default() : spec.default
    const raw = str(name)
    if (raw === undefined) return fallback
    const value = Number(raw)
    if (!Number.isInteger(value) || value < spec.min || value > spec.max) {
      problems.push(`${name} must be a whole number from ${spec.min} to ${spec.max} (got "${raw}")`)
      return fallback
    }
    return value
  }
  const bool = (name: SettingOf<'bool'>): boolean => {
    const raw = str(name)?.toLowerCase()
    if (raw === undefined) return SETTINGS[name].default
    if (['true', '1', 'yes', 'on'].includes(raw)) return true
    if (['false', '0', 'no', 'off'].includes(raw)) return false
    problems.push(`${name} must be true or false (got "${raw}")`)
    return SETTINGS[name].default
  }
  const text = (name: SettingOf<'string'>): string | undefined => str(name) ?? ('default' in SETTINGS[name] ? (SETTINGS[name] as { default: string }).default : undefined)
  const url = (name: SettingOf<'url'>): string | undefined => {
    const { protocols } = SETTINGS[name]
    const raw = str(name)
    if (raw === undefined) return undefined
    try {
      const parsed = new URL(raw)
      if (!(protocols as readonly string[]).includes(parsed.protocol)) {
        problems.push(`${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')}`)
      }
    } catch {
      problems.push(`${name} is not a valid URL`)
    }
    return raw
  }
  const oneOf = <N extends SettingOf<'enum'>>(name: N): (typeof SETTINGS)[N]['values'][number] | undefined => {
    const spec = SETTINGS[name] as { values: readonly string[]; default?: string }
    const raw = str(name)
    type Value = (typeof SETTINGS)[N]['values'][number]
    if (raw === undefined) return spec.default as Value | undefined
    if (!spec.values.includes(raw)) {
      problems.push(`${name} must be one of ${spec.values.join(', ')} (got "${raw}")`)
      return spec.default as Value | undefined
    }
    return raw as Value
  }

  const trustProxy = (): boolean | number | string[] => {
    const raw = str('TRUST_PROXY')
    if (raw === undefined || raw.toLowerCase() === 'false') return false
    if (raw.toLowerCase() === 'true') return true
    if (/^\d+$/.test(raw)) {
      if (Number(raw) >= 1 && Number(raw) <= 100) return Number(raw)
      problems.push(`TRUST_PROXY as a hop count must be from 1 to 100 (got "${raw}")`)
      return false
    }
    const entries = raw.split(',').map((entry) => entry.trim())
    const bad = entries.filter((entry) => !isProxyAddress(entry))
    if (bad.length > 0) {
      problems.push(`TRUST_PROXY must be true, false, a hop count or a comma-separated list of proxy addresses and CIDRs (not ${bad.map((b) => `"${b}"`).join(', ')})`)
      return false
    }
    return entries
  }

  const debug = bool('DEBUG')
  const logLevel = oneOf('LOG_LEVEL') ?? (debug ? 'debug' : 'info')

  const sessionIdleTtl = int('SESSION_IDLE_TTL')
  const sessionMaxAge = int('SESSION_MAX_AGE')
  if (sessionMaxAge < sessionIdleTtl) problems.push('SESSION_MAX_AGE must not be shorter than SESSION_IDLE_TTL')

  const config: Config = {
    port: int('PORT'),
    host: text('HOST')!,
    databaseUrl: url('DATABASE_URL'),
    redisUrl: url('REDIS_URL'),
    redisCluster: bool('REDIS_CLUSTER'),
    redisPrefix: text('REDIS_PREFIX')!,
    dataDir: text('DATA_DIR')!,
    dbPoolSize: int('DB_POOL_SIZE'),
    bcryptCost: int('BCRYPT_COST'),
    // Hashing threads run below the event loop's priority, so they may have every core.
    bcryptConcurrency: int('BCRYPT_CONCURRENCY'),
    sessionIdleTtl,
    sessionMaxAge,
    sessionsPerUser: int('SESSIONS_PER_USER'),
    sessionCacheSize: int('SESSION_CACHE_SIZE'),
    locationDefaultTtl: int('LOCATION_DEFAULT_TTL'),
    debug,
    logLevel,
    corsOrigins: (text('CORS_ORIGINS') ?? '').split(',').map((o) => o.trim()).filter(Boolean),
    pushEndpointAllow: (text('PUSH_ENDPOINT_ALLOW') ?? '').split(',').map((h) => h.trim().toLowerCase()).filter(Boolean),
    publicUrl: url('PUBLIC_URL')?.replace(/\/$/, ''),
    workers: int('WORKERS'),
    productName: text('PRODUCT_NAME')!,
    smtpUrl: url('SMTP_URL'),
    mailFrom: text('MAIL_FROM')!,
    mailDir: text('MAIL_DIR') ?? defaultMailDir(text('DATA_DIR')!),
    mailRetryDelay: int('MAIL_RETRY_DELAY'),
    emailConfirmation: oneOf('EMAIL_CONFIRMATION') ?? 'required',
    trustProxy: trustProxy(),
    rateLimitMax: int('RATE_LIMIT_MAX'),
    authRateLimitMax: int('AUTH_RATE_LIMIT_MAX'),
    loginFailuresPerHour: int('LOGIN_FAILURES_PER_HOUR'),
    loginFailuresPerAddressPerHour: int('LOGIN_FAILURES_PER_ADDRESS_PER_HOUR'),
    sendRateLimit: int('SEND_RATE_LIMIT'),
    wsHeartbeatInterval: int('WS_HEARTBEAT_INTERVAL'),
    wsMaxBufferedBytes: int('WS_MAX_BUFFERED_BYTES'),
    wsTicketTtl: int('WS_TICKET_TTL'),
    wsMaxPerUser: int('WS_MAX_PER_USER'),
    wsMaxConnections: int('WS_MAX_CONNECTIONS'),
    pictureMaxBytes: int('PICTURE_MAX_BYTES'),
    notificationSweepInterval: int('NOTIFICATION_SWEEP_INTERVAL'),
    vapidPublicKey: text('VAPID_PUBLIC_KEY'),
    vapidPrivateKey: text('VAPID_PRIVATE_KEY'),
    vapidSubject: text('VAPID_SUBJECT')!,
    jobSweepInterval: int('JOB_SWEEP_INTERVAL'),
    jobReminderBefore: int('JOB_REMINDER_BEFORE'),
    jobAutoApproveAfter: int('JOB_AUTO_APPROVE_AFTER'),
    payments: oneOf('PAYMENTS') ?? 'local',
    platformFeeBps: int('PLATFORM_FEE_BPS'),
    stripeSecretKey: text('STRIPE_SECRET_KEY'),
    stripeWebhookSecret: text('STRIPE_WEBHOOK_SECRET'),
    stripeApiUrl: url('STRIPE_API_URL'),
    httpHeadersTimeout: int('HTTP_HEADERS_TIMEOUT'),
    httpRequestTimeout: int('HTTP_REQUEST_TIMEOUT'),
    httpKeepAliveTimeout: int('HTTP_KEEP_ALIVE_TIMEOUT'),
    shutdownTimeout: int('SHUTDOWN_TIMEOUT'),
    queueWork: bool('QUEUE_WORK'),
    queuePollInterval: int('QUEUE_POLL_INTERVAL'),
    queueMaintenanceInterval: int('QUEUE_MAINTENANCE_INTERVAL'),
    queueInlineGrace: int('QUEUE_INLINE_GRACE'),
    redisCommandTimeout: int('REDIS_COMMAND_TIMEOUT'),
    readyTimeout: int('READY_TIMEOUT'),
    reconnectMinDelay: int('RECONNECT_MIN_DELAY'),
    reconnectMaxDelay: int('RECONNECT_MAX_DELAY'),
    oidcProviders: parseOidcProviders(text('OIDC_PROVIDERS'), problems),
    oidcAppRedirects: parseAppRedirects(text('OIDC_APP_REDIRECTS'), problems),
    totpEncryptionKey: parseKey(text('TOTP_ENCRYPTION_KEY'), problems),
  }
  if (config.oidcProviders.length > 0 && !config.publicUrl) {
    problems.push('OIDC_PROVIDERS needs PUBLIC_URL: the providers send their users back to PUBLIC_URL/auth/<name>/callback')
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
  if (config.reconnectMinDelay > config.reconnectMaxDelay) {
    problems.push('RECONNECT_MIN_DELAY must not be longer than RECONNECT_MAX_DELAY')
  }
  if (Boolean(config.vapidPublicKey) !== Boolean(config.vapidPrivateKey)) {
    problems.push('VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY go together: set both, or neither')
  }
  if (!/^(mailto:|https:\/\/)/.test(config.vapidSubject)) problems.push('VAPID_SUBJECT must be a mailto: or https: URL')
  if (config.payments === 'stripe' && (!config.stripeSecretKey || !config.stripeWebhookSecret)) {
    problems.push('PAYMENTS=stripe needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET')
  }
  if (config.workers > 1 && !config.databaseUrl) {
    problems.push('WORKERS above 1 needs DATABASE_URL: the embedded database serves one process')
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}
