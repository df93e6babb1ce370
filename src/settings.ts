// Every setting the service reads from its environment: its kind, default, bounds and meaning. The
// one source for the loader (src/config.ts), `.env.example` and the README's table of settings
// (`npm run config:generate` writes both; a test fails while either is out of date).

import { availableParallelism } from 'node:os'

interface Described {
  /** What the setting does, for the README and `.env.example` (Markdown). */
  doc: string
  /** The default as the docs show it, when the value alone would not say it. */
  shown?: string
}
export type SettingSpec = Described &
  (
    | { type: 'int'; default: number | (() => number); min: number; max: number }
    | { type: 'bool'; default: boolean }
    | { type: 'string'; default?: string }
    | { type: 'url'; protocols: string[] }
    | { type: 'enum'; values: readonly string[]; default?: string }
    | { type: 'proxies' }
  )

export const SETTINGS = {
  PORT: { type: 'int', default: 3000, min: 0, max: 65535, doc: 'HTTP port' },
  HOST: { type: 'string', default: '0.0.0.0', doc: 'address to listen on' },
  DATABASE_URL: { type: 'url', protocols: ['postgres:', 'postgresql:'], shown: 'unset: PGlite in `DATA_DIR`', doc: 'PostgreSQL connection string' },
  DB_POOL_SIZE: { type: 'int', default: 10, min: 1, max: 1000, doc: 'PostgreSQL connections per process. Each connection prepares the statements it runs once (up to 2,000 texts a process), so PostgreSQL does not parse and plan them on every run (behind a pooler, use session pooling: named statements don\'t survive PgBouncer\'s transaction mode)' },
  REDIS_URL: { type: 'url', protocols: ['redis:', 'rediss:'], shown: 'unset: live state in PostgreSQL', doc: 'Redis connection string' },
  REDIS_CLUSTER: { type: 'bool', default: false, doc: '`true`: `REDIS_URL` is one node of a Redis Cluster (Redis 7 or later; database 0), and the others are found from it. Keep `{}` out of `REDIS_PREFIX`, or every key hashes to one slot' },
  REDIS_PREFIX: { type: 'string', default: 'fl:', doc: 'prefix of every Redis key and channel' },
  DATA_DIR: { type: 'string', default: './data', doc: 'where the embedded database keeps its files' },
  BCRYPT_COST: { type: 'int', default: 12, min: 4, max: 31, doc: 'bcrypt work factor (4 to 31)' },
  // Hashing threads run below the event loop's priority, so they may have every core.
  BCRYPT_CONCURRENCY: { type: 'int', default: () => Math.min(availableParallelism(), 64), min: 1, max: 64, shown: 'one per core', doc: 'password hashes computed at once, on worker threads below the event loop\'s CPU priority; more wait in line, so a flood of sign-ins can\'t starve the other routes' },
  SESSION_IDLE_TTL: { type: 'int', default: 30 * 24 * 3600, min: 1, max: 365 * 24 * 3600, shown: '`2592000` (30 days)', doc: 'seconds a token lives unused' },
  SESSION_MAX_AGE: { type: 'int', default: 90 * 24 * 3600, min: 1, max: 5 * 365 * 24 * 3600, shown: '`7776000` (90 days)', doc: 'seconds a token lives at most' },
  SESSIONS_PER_USER: { type: 'int', default: 10, min: 1, max: 1000, doc: 'sessions one user may hold at once' },
  SESSION_CACHE_SIZE: { type: 'int', default: 100_000, min: 1, max: 10_000_000, doc: 'authentications each process keeps in memory (the least recently used go first; about 1.1 kB each, so 100,000 take about 105 MB of heap), so a warm authenticated request reads no storage' },
  LOCATION_DEFAULT_TTL: { type: 'int', default: 300, min: 1, max: 86400, doc: 'seconds a posted location lives by default' },
  RATE_LIMIT_MAX: { type: 'int', default: 1200, min: 1, max: 10_000_000, doc: 'requests a minute from one address, all routes' },
  AUTH_RATE_LIMIT_MAX: { type: 'int', default: 30, min: 1, max: 10_000_000, doc: 'requests a minute from one address to `/signup` and to `/authorize`' },
  LOGIN_FAILURES_PER_HOUR: { type: 'int', default: 100, min: 1, max: 1_000_000, doc: 'failed sign-ins an hour from one address on one account; past it that address waits (the account is never locked for its owner elsewhere)' },
  LOGIN_FAILURES_PER_ADDRESS_PER_HOUR: { type: 'int', default: 1000, min: 1, max: 1_000_000, doc: 'failed sign-ins an hour from one address, on any accounts; past it that address waits' },
  SEND_RATE_LIMIT: { type: 'int', default: 60, min: 1, max: 1_000_000, doc: 'messages a minute one user may send' },
  WS_HEARTBEAT_INTERVAL: { type: 'int', default: 30_000, min: 100, max: 600_000, doc: 'milliseconds between WebSocket pings; a peer that misses a pong is dropped' },
  WS_MAX_BUFFERED_BYTES: { type: 'int', default: 1024 * 1024, min: 1024, max: 1024 * 1024 * 1024, doc: 'bytes waiting for a slow WebSocket client before it is closed' },
  WS_TICKET_TTL: { type: 'int', default: 30, min: 1, max: 3600, doc: 'seconds a `/ws` ticket lives' },
  WS_MAX_PER_USER: { type: 'int', default: 10, min: 1, max: 10_000, doc: 'WebSockets one user may hold on one process; one more closes the user\'s oldest with 4008' },
  WS_MAX_CONNECTIONS: { type: 'int', default: 10_000, min: 1, max: 10_000_000, doc: 'WebSockets one process holds at most (keep it under the file descriptor limit, `ulimit -n`); past it an upgrade is answered 503 `too_many_sockets` with `Retry-After`' },
  JOB_SWEEP_INTERVAL: { type: 'int', default: 30, min: 0, max: 86400, doc: 'seconds between sweeps for due job work (expiry, reminders, auto-approval, payments), a queue task; 0: this process adds no sweep' },
  QUEUE_WORK: { type: 'bool', default: true, doc: 'whether this process runs background tasks (`false`: it only adds them)' },
  QUEUE_POLL_INTERVAL: { type: 'int', default: 2000, min: 500, max: 600_000, doc: 'milliseconds between a task worker\'s polls when no commit woke it (500 at least)' },
  QUEUE_MAINTENANCE_INTERVAL: { type: 'int', default: 30, min: 1, max: 3600, doc: 'seconds between the queue\'s upkeep: tasks of dead workers back in line, done ones archived' },
  QUEUE_INLINE_GRACE: { type: 'int', default: 30, min: 1, max: 3600, doc: 'seconds a task run at once after its commit is left to that run before a worker takes it' },
  JOB_REMINDER_BEFORE: { type: 'int', default: 24 * 3600, min: 60, max: 30 * 24 * 3600, doc: 'seconds before an offer expires that the worker is reminded' },
  JOB_AUTO_APPROVE_AFTER: { type: 'int', default: 7 * 24 * 3600, min: 60, max: 365 * 24 * 3600, doc: 'seconds a COMPLETED job waits for the client before payment starts by itself' },
  PAYMENTS: { type: 'enum', values: ['local', 'stripe'], default: 'local', doc: 'payment provider: `local` behaves like Stripe\'s test mode with no account (test payment methods such as `pm_card_visa`); `stripe` uses Stripe Connect (`STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET`)' },
  PLATFORM_FEE_BPS: { type: 'int', default: 1000, min: 0, max: 10_000, doc: 'the platform\'s fee on each job, in basis points of the price (1000: 10%); the worker is paid the rest' },
  STRIPE_SECRET_KEY: { type: 'string', shown: 'unset', doc: 'Stripe secret key (`sk_test_...` or `sk_live_...`), with `PAYMENTS=stripe`' },
  STRIPE_WEBHOOK_SECRET: { type: 'string', shown: 'unset', doc: 'signing secret of the `POST /webhooks/stripe` endpoint (`whsec_...`), with `PAYMENTS=stripe`' },
  STRIPE_API_URL: { type: 'url', protocols: ['http:', 'https:'], shown: 'unset: https://api.stripe.com', doc: 'where the Stripe SDK sends its calls (a local Stripe peer in tests)' },
  NOTIFICATION_SWEEP_INTERVAL: { type: 'int', default: 15, min: 0, max: 86400, doc: 'seconds between sweeps that send notifications held for quiet hours or for a conversation\'s minute of grouping (each commit that makes a notification wakes the relay at once); 0: only when woken' },
  VAPID_PUBLIC_KEY: { type: 'string', shown: 'unset: made on first start and kept in the database', doc: 'Web Push VAPID public key (base64url, from `npx web-push generate-vapid-keys`); set with `VAPID_PRIVATE_KEY`' },
  VAPID_PRIVATE_KEY: { type: 'string', shown: 'unset: made on first start and kept in the database', doc: 'Web Push VAPID private key (base64url); set with `VAPID_PUBLIC_KEY`' },
  VAPID_SUBJECT: { type: 'string', default: 'mailto:admin@localhost', doc: 'who push services may contact about this sender: a `mailto:` or `https:` URL' },
  PUSH_ENDPOINT_ALLOW: { type: 'string', shown: 'unset: none', doc: 'comma-separated hosts (`host` or `host:port`) whose push endpoints are taken even where they resolve to private, loopback or link-local addresses: a push service on a private network, or the tests\' local one. Every other endpoint must be https on public addresses (400 `invalid_push_endpoint`)' },
  PICTURE_MAX_BYTES: { type: 'int', default: 10 * 1024 * 1024, min: 1024, max: 100 * 1024 * 1024, doc: 'largest picture upload' },
  CORS_ORIGINS: { type: 'string', shown: 'unset: no CORS', doc: 'comma-separated origins allowed to call from a browser' },
  PUBLIC_URL: { type: 'url', protocols: ['http:', 'https:'], shown: 'unset: relative URLs', doc: 'base of absolute URLs in answers (`picture_url`)' },
  PRODUCT_NAME: { type: 'string', default: 'Freelancer', doc: 'the product\'s name as mails show it' },
  SMTP_URL: { type: 'url', protocols: ['smtp:', 'smtps:'], shown: 'unset: mails written as `.eml` files in `MAIL_DIR`', doc: 'SMTP server that sends the mails (`smtp://user:pass@host:587`, `smtps://...:465`); every mail goes through the task queue, so an SMTP server that is down delays mail and loses none' },
  MAIL_FROM: { type: 'string', default: 'Freelancer <no-reply@localhost>', doc: 'sender of the mails' },
  MAIL_DIR: { type: 'string', shown: '`DATA_DIR/mail` (a temporary folder when `DATA_DIR` is `memory://`)', doc: 'where mails are written as `.eml` files when `SMTP_URL` is unset (each file\'s path is logged)' },
  MAIL_RETRY_DELAY: { type: 'int', default: 10, min: 1, max: 3600, doc: 'seconds before a mail that could not be sent is tried again; each next try waits about twice as long, 20 tries in all' },
  EMAIL_CONFIRMATION: { type: 'enum', values: ['required', 'off'], default: 'required', doc: '`required`: a user whose email is unconfirmed can sign in and edit the profile, but not send messages, offer, accept or pay for jobs (403 `email_unconfirmed`); `off`: no such rule (development)' },
  WORKERS: { type: 'int', default: 1, min: 1, max: 256, doc: 'processes sharing the port (`node:cluster`); above 1 needs `DATABASE_URL`' },
  TRUST_PROXY: { type: 'proxies', shown: '`false`: the peer is the client', doc: 'whose `X-Forwarded-For` to believe for the client\'s address (the per-address rate limits, logs): `true` (any peer), a hop count (the nearest that many), or comma-separated proxy addresses and CIDRs (`10.0.0.0/8,127.0.0.1`; also `loopback`, `linklocal`, `uniquelocal`). See Behind a proxy' },
  REDIS_COMMAND_TIMEOUT: { type: 'int', default: 500, min: 10, max: 60_000, doc: 'milliseconds a Redis command may wait for its answer; then what needs it answers 503 `store_unavailable` with `Retry-After`, so a Redis that is down or paused never holds requests for long' },
  READY_TIMEOUT: { type: 'int', default: 500, min: 10, max: 60_000, doc: 'milliseconds each check of `GET /ready` (the database, the live store) may take before it counts as failing' },
  RECONNECT_MIN_DELAY: { type: 'int', default: 100, min: 1, max: 60_000, doc: 'milliseconds before the first attempt to make a lost Redis or PostgreSQL `LISTEN` connection again; each next attempt waits about twice as long' },
  RECONNECT_MAX_DELAY: { type: 'int', default: 5_000, min: 1, max: 600_000, doc: 'milliseconds between reconnection attempts at most' },
  HTTP_HEADERS_TIMEOUT: { type: 'int', default: 20_000, min: 100, max: 600_000, doc: 'milliseconds a client has to send a request\'s headers (a few hundred bytes: ample on any link); then the connection is closed' },
  HTTP_REQUEST_TIMEOUT: { type: 'int', default: 120_000, min: 100, max: 3_600_000, doc: 'milliseconds a client has to send a whole request, body included, or it is answered 408 and closed: a 5 MB picture from a phone at 350 kbit/s takes about 115 s, while a body dribbled a byte at a time can\'t hold a connection longer' },
  HTTP_KEEP_ALIVE_TIMEOUT: { type: 'int', default: 5_000, min: 100, max: 600_000, doc: 'milliseconds an idle connection is kept open for its next request (Node\'s default); behind a load balancer, set it above the balancer\'s idle timeout' },
  SHUTDOWN_TIMEOUT: { type: 'int', default: 10_000, min: 0, max: 600_000, doc: 'milliseconds shutdown waits for requests in flight' },
  OIDC_PROVIDERS: { type: 'string', shown: 'unset: no sign-in with providers', doc: 'OpenID Connect providers for sign-in, JSON keyed by the provider\'s name: `{"google": {"issuer": "https://accounts.google.com", "client_id": "...", "client_secret": "...", "scopes": ["openid", "email", "profile"]}}`. Instead of `client_secret`: `private_key` (PKCS#8 PEM) with `key_id` signs a `private_key_jwt` assertion; with `team_id` as well (Apple: `{"issuer": "https://appleid.apple.com", "client_id": "<Services ID>", "team_id": "...", "key_id": "...", "private_key": "<.p8 key>"}`), the client secret itself is an ES256 JWT signed with that key (iss the team id, sub the client id, aud the issuer, an hour long), signed anew before it lapses. `allow_http: true` lets an `http:` issuer on a loopback address through (local development and tests only). Needs `PUBLIC_URL` (the providers call back to `PUBLIC_URL/auth/<name>/callback`). See Sign-in with a provider' },
  OIDC_APP_REDIRECTS: { type: 'string', shown: 'unset: none', doc: 'comma-separated addresses of the apps that sign in with a provider (`redirect_uri` of `GET /auth/{provider}/start`), matched exactly' },
  TOTP_ENCRYPTION_KEY: { type: 'string', shown: 'unset: secrets stored as they are', doc: '32 bytes in base64: two-factor (TOTP) secrets are sealed with it (AES-256-GCM) in the database. Secrets stored before it was set still work; once set, keep it: without it the sealed ones can\'t be read' },
  DEBUG: { type: 'bool', default: false, doc: '`true`: debug level, human-readable logs' },
  LOG_LEVEL: { type: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], shown: '`info` (`debug` with `DEBUG`)', doc: '`fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`' },
} as const satisfies Record<string, SettingSpec>

export type SettingName = keyof typeof SETTINGS
/** The names of the settings of one kind. */
export type SettingOf<T extends SettingSpec['type']> = { [K in SettingName]: (typeof SETTINGS)[K]['type'] extends T ? K : never }[SettingName]
