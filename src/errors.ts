// Errors that services throw. They know nothing of HTTP; src/http/problems.ts maps each one to
// a status and an application/problem+json answer, in one place.

export interface FieldError {
  /** JSON pointer or name of the field, as the client sent it ("/email", "cursor"). */
  field: string
  message: string
}

export abstract class AppError extends Error {
  abstract readonly status: number
  /** A stable, machine-readable name for what went wrong, for clients to branch on. */
  readonly code: string
  /** Members of the problem beyond the standard ones (RFC 9457 extensions), such as the current state of what the request would have changed. */
  readonly extensions?: Record<string, unknown>

  constructor(detail: string, code: string) {
    super(detail)
    this.code = code
    this.name = new.target.name
  }
}

export class InvalidInputError extends AppError {
  readonly status = 400
  constructor(detail: string, readonly errors: FieldError[] = [], code = 'invalid_input') {
    super(detail, code)
  }
}

export class UnauthenticatedError extends AppError {
  readonly status = 401
  constructor(detail = 'A valid access token is required', code = 'unauthenticated') {
    super(detail, code)
  }
}

export class ForbiddenError extends AppError {
  readonly status = 403
  constructor(detail: string, code = 'forbidden') {
    super(detail, code)
  }
}

export class NotFoundError extends AppError {
  readonly status = 404
  constructor(detail: string, code = 'not_found') {
    super(detail, code)
  }
}

export class ConflictError extends AppError {
  readonly status = 409
  constructor(detail: string, code = 'conflict') {
    super(detail, code)
  }
}

export class PreconditionFailedError extends AppError {
  readonly status = 412
  constructor(detail: string, code = 'precondition_failed', override readonly extensions?: Record<string, unknown>) {
    super(detail, code)
  }
}

/** The request must be conditional (name the version it was made on, with If-Match) and is not. */
export class PreconditionRequiredError extends AppError {
  readonly status = 428
  constructor(detail: string, code = 'precondition_required') {
    super(detail, code)
  }
}

export class PayloadTooLargeError extends AppError {
  readonly status = 413
  constructor(detail: string, code = 'payload_too_large') {
    super(detail, code)
  }
}

export class UnsupportedMediaTypeError extends AppError {
  readonly status = 415
  constructor(detail: string, code = 'unsupported_media_type') {
    super(detail, code)
  }
}

export class TooManyRequestsError extends AppError {
  readonly status = 429
  constructor(detail: string, readonly retryAfterSeconds: number, code = 'rate_limited') {
    super(detail, code)
  }
}

export class UnavailableError extends AppError {
  readonly status = 503
  constructor(detail: string, code = 'unavailable') {
    super(detail, code)
  }
}
