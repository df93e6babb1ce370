import { AsyncLocalStorage } from 'node:async_hooks'
import { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import pino, { type DestinationStream } from 'pino'
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { DatabaseHandle } from '../platform/db/index.js'

// Secrets never reach a log line: these paths are censored wherever they appear.
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.password',
  '*.current_password',
  '*.password_hash',
  '*.access_token',
  '*.token',
  '*.ticket',
  '*.mfa_token',
  '*.code',
  '*.recovery_code',
  '*.recovery_codes',
  '*.secret',
  '*.otpauth_uri',
  '*.client_secret',
  '*.private_key',
]

/**
 * Query values that are secrets (a one-time WebSocket ticket; a provider's authorization code and
 * state on its way back to /auth/{provider}/callback) are cut from logged URLs.
 */
const SECRET_QUERY = /([?&](?:ticket|token|access_token|code|state|id_token)=)[^&]*/gi

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/

/** One access-log line a request, when it completes (the incoming line only at debug level). */
class AccessLog extends LogController {
  override incomingRequest(request: FastifyRequest) {
    if (!this.isLogDisabled(request) && (request.log as RequestLogger).isLevelEnabled('debug')) request.log.debug({ req: request }, 'incoming request')
  }

  /**
   * The logger of the lines that go well, without redaction: they hold only what the serializers
   * pick (method, URL with its secret values cut, address, user agent, status), which no secret
   * path matches, and censoring them was a tenth of a request's CPU.
   */
  private completed: FastifyBaseLogger | undefined

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply) {
    if (this.isLogDisabled(request)) return
    const line = { req: request, res: reply, responseTime: Math.round(reply.elapsedTime * 100) / 100 }
    if (error) return reply.log.error({ ...line, err: error }, 'request errored')
    // The route's own level (`logLevel` in its options) is on the request's logger.
    if (!(reply.log as RequestLogger).isLevelEnabled('info')) return
    this.completed ??= request.server.log.child({}, { redact: { paths: [] } })
    this.completed.info({ request_id: request.id, ...line }, 'request completed')
  }
}

type LogArgs = Parameters<pino.LogFn>

/**
 * A request's logger, made when first used. Most requests write nothing but their access line
 * (written apart, above), and a child of the redacting logger costs as much as that line: made
 * for every request, it was a twentieth of a request's CPU.
 */
class RequestLogger implements FastifyBaseLogger {
  #made: FastifyBaseLogger | undefined

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: pino.Bindings,
  ) {}

  private get made(): FastifyBaseLogger {
    return (this.#made ??= this.parent.child(this.bindings))
  }

  get level() {
    return (this.#made ?? this.parent).level
  }

  set level(level: string) {
    this.made.level = level
  }

  isLevelEnabled(level: string): boolean {
    return ((this.#made ?? this.parent) as pino.Logger).isLevelEnabled(level)
  }

  fatal(...args: LogArgs) {
    this.made.fatal(...args)
  }
  error(...args: LogArgs) {
    this.made.error(...args)
  }
  warn(...args: LogArgs) {
    this.made.warn(...args)
  }
  info(...args: LogArgs) {
    this.made.info(...args)
  }
  debug(...args: LogArgs) {
    this.made.debug(...args)
  }
  trace(...args: LogArgs) {
    this.made.trace(...args)
  }
  silent(...args: LogArgs) {
    this.made.silent(...args)
  }
  child(bindings: pino.Bindings, options?: pino.ChildLoggerOptions): FastifyBaseLogger {
    return this.made.child(bindings, options)
  }
}

export function loggerOptions(options: { level: string; pretty: boolean; stream?: DestinationStream }): Pick<FastifyServerOptions, 'logger' | 'genReqId' | 'logController' | 'childLoggerFactory'> {
  const base = {
    level: options.level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    serializers: {
      req: (req: { method: string; url: string; ip?: string; headers?: Record<string, unknown> }) => ({
        method: req.method,
        url: req.url.replace(SECRET_QUERY, '$1[redacted]'),
        ip: req.ip,
        user_agent: req.headers?.['user-agent'],
      }),
    },
  }
  const logger = options.stream
    ? { ...base, stream: options.stream }
    : options.pretty
      ? { ...base, transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } }
      : // Buffered asynchronous writes: lines go out together once 8 KB gather or a quarter of a
        // second has passed, instead of a write per line (a fifth of a request's CPU under load);
        // what is left is flushed at exit.
        { ...base, stream: pino.destination({ dest: 1, sync: false, minLength: 8192, periodicFlush: 250 }) }
  return {
    logger,
    logController: new AccessLog({ requestIdLogLabel: 'request_id' }),
    // A route's own options (its `logLevel`) make its logger at once; the rest, when first used.
    childLoggerFactory: (logger, bindings, childOptions) =>
      Object.keys(childOptions).length > 0 ? logger.child(bindings, childOptions) : new RequestLogger(logger, bindings),
    // A caller's own request id is kept when it is sane, so one id follows a request across services.
    genReqId: (req: IncomingMessage) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    },
  }
}

/** The request being served, for log lines written far from it (the SQL it runs). */
const requestContext = new AsyncLocalStorage<FastifyRequest>()

/**
 * DEBUG=true: every SQL statement is logged with its time, under the request that ran it (its
 * request_id), failures with their error. Only the SQL text: its values may be secrets.
 */
export function logStatements(app: FastifyInstance, database: Pick<DatabaseHandle, 'logQueries'>) {
  app.addHook('onRequest', (request, _reply, done) => requestContext.run(request, done))
  database.logQueries((event) => {
    const log = requestContext.getStore()?.log ?? app.log
    const line = { sql: event.query.sql, duration_ms: Math.round(event.queryDurationMillis * 100) / 100 }
    if (event.level === 'error') log.debug({ ...line, err: event.error }, 'sql failed')
    else log.debug(line, 'sql')
  })
  app.addHook('onClose', async () => database.logQueries(undefined))
}
