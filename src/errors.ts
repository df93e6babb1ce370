// Errors that services throw. They know nothing of HTTP; src/http/problems.ts maps each one to
// a status and an application/problem+json answer, in one place.

import type { ProblemCode } from './problem-codes.js'

export type { ProblemCode } from './problem-codes.js'

export interface FieldError {
  /** JSON pointer or name of the field, as the client sent it ("/email", "cursor"). */
  field: string
  message: string
  /** The values the field may take, when it takes one of a set. */
  allowed?: unknown[]
}

export abstract class AppError extends Error {
  abstract readonly status: number
  /** A stable, machine-readable name for what went wrong, for clients to branch on. */
  readonly code: ProblemCode
  /** Members of the problem beyond the standard ones (RFC 9457 extensions), such as the current state of what the request would have changed. */
  readonly extensions?: Record<string, unknown>

  constructor(detail: string, code: ProblemCode) {
    super(detail)
    this.code = code
    this.name = new.target.name
  }
}

export class InvalidInputError extends AppError {
  readonly status = 400
  constructor(detail: string, readonly errors: FieldError[] = [], code: ProblemCode = 'invalid_input') {
    super(detail, code)
  }
}

export class UnauthenticatedError extends AppError {
  readonly status = 401
  constructor(detail = 'A valid access token is required', code: ProblemCode = 'unauthenticated') {
    super(detail, code)
  }
}

/** The password was right, and the account asks for its second factor: POST /authorize/mfa with `mfa_token`. */
export class MfaRequiredError extends AppError {
  readonly status = 401
  override readonly extensions: Record<string, unknown>
  constructor(mfaToken: string, expiresIn: number) {
    super('This account has two-factor sign-in on: send a code from the authenticator app (or a recovery code) to POST /authorize/mfa with this mfa_token', 'mfa_required')
    this.extensions = { mfa_token: mfaToken, mfa_expires_in: expiresIn }
  }
}

/** The payment method was declined: the problem carries the provider's `decline_code` and the job it was for. */
export class PaymentRequiredError extends AppError {
  readonly status = 402
  constructor(detail: string, code: ProblemCode, override readonly extensions?: Record<string, unknown>) {
    super(detail, code)
  }
}

/** Well-formed, but not what this key was first used with (an Idempotency-Key reused with another body). */
export class UnprocessableError extends AppError {
  readonly status = 422
  constructor(detail: string, code: ProblemCode) {
    super(detail, code)
  }
}

export class ForbiddenError extends AppError {
  readonly status = 403
  constructor(detail: string, code: ProblemCode = 'forbidden') {
    super(detail, code)
  }
}

export class NotFoundError extends AppError {
  readonly status = 404
  constructor(detail: string, code: ProblemCode = 'not_found') {
    super(detail, code)
  }
}

export class ConflictError extends AppError {
  readonly status = 409
  constructor(detail: string, code: ProblemCode = 'conflict') {
    super(detail, code)
  }
}

export class PreconditionFailedError extends AppError {
  readonly status = 412
  constructor(detail: string, code: ProblemCode = 'precondition_failed', override readonly extensions?: Record<string, unknown>) {
    super(detail, code)
  }
}

/** The request must be conditional (name the version it was made on, with If-Match) and is not. */
export class PreconditionRequiredError extends AppError {
  readonly status = 428
  constructor(detail: string, code: ProblemCode = 'precondition_required') {
    super(detail, code)
  }
}

export class PayloadTooLargeError extends AppError {
  readonly status = 413
  constructor(detail: string, code: ProblemCode = 'payload_too_large') {
    super(detail, code)
  }
}

export class UnsupportedMediaTypeError extends AppError {
  readonly status = 415
  constructor(detail: string, code: ProblemCode = 'unsupported_media_type') {
    super(detail, code)
  }
}

export class TooManyRequestsError extends AppError {
  readonly status = 429
  constructor(detail: string, readonly retryAfterSeconds: number, code: ProblemCode = 'rate_limited') {
    super(detail, code)
  }
}

export class UnavailableError extends AppError {
  readonly status = 503
  constructor(detail: string, code: ProblemCode = 'unavailable') {
    super(detail, code)
  }
}

/**
 * A store the request needs is out of reach for now (Redis gone, stalled or restarting): the
 * client is told when to try again.
 */
export class StoreUnavailableError extends AppError {
  readonly status = 503
  constructor(detail: string, readonly retryAfterSeconds: number, code: ProblemCode = 'store_unavailable') {
    super(detail, code)
  }
}
