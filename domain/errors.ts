/** Base class of errors the HTTP layer maps to a status code. */
export class AppError extends Error {
  /** HTTP status this error is answered with. */
  status = 500;
  /** Name of the offending parameter, when there is one. */
  field?: string;
}

/** Bad input: answered 400 and names the field. */
export class ValidationError extends AppError {
  override name = "ValidationError";
  override status = 400;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

/** A record the request points at does not exist: answered 404. */
export class NotFoundError extends AppError {
  override name = "NotFoundError";
  override status = 404;
  constructor(message: string, field?: string) {
    super(message);
    this.field = field;
  }
}

/** A uniqueness clash or a refused state change: answered 409. */
export class ConflictError extends AppError {
  override name = "ConflictError";
  override status = 409;
  constructor(message: string, field?: string) {
    super(message);
    this.field = field;
  }
}

/** Missing or unknown API key: answered 401. */
export class AuthError extends AppError {
  override name = "AuthError";
  override status = 401;
}

/** A valid key that may not do this: answered 403. */
export class ForbiddenError extends AppError {
  override name = "ForbiddenError";
  override status = 403;
}

/** The request is well-formed but cannot be processed as sent (idempotency key reuse): 422. */
export class UnprocessableError extends AppError {
  override name = "UnprocessableError";
  override status = 422;
  constructor(message: string, field?: string) {
    super(message);
    this.field = field;
  }
}

/** The request body is over the size limit: answered 413. */
export class PayloadTooLargeError extends AppError {
  override name = "PayloadTooLargeError";
  override status = 413;
}

/** Shortens a raw value for quoting in an error message. */
export function quote(value: string): string {
  if (value.length <= 40) return value;
  // Cut by code points, never between the two halves of a surrogate pair (a reply must stay valid UTF-8 text).
  const points = [...value];
  return points.length > 40 ? `${points.slice(0, 40).join("")}…` : value;
}
