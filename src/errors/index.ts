// Errors a user can cause, each with a stable code and the HTTP status it becomes.

/** Stable error codes; clients and tests match on these, never on messages. */
export const ErrorCodes = {
  MANIFEST_INVALID: 'LL_MANIFEST_INVALID',
  MODULE_INVALID: 'LL_MODULE_INVALID',
  DEPLOY_CONFLICT: 'LL_DEPLOY_CONFLICT',
  NOT_FOUND: 'LL_NOT_FOUND',
  ROUTE_NOT_FOUND: 'LL_ROUTE_NOT_FOUND',
  UNAUTHORIZED: 'LL_UNAUTHORIZED',
  BAD_REQUEST: 'LL_BAD_REQUEST',
  BODY_TOO_LARGE: 'LL_BODY_TOO_LARGE',
  TIMEOUT: 'LL_TIMEOUT',
  COLD_START_TIMEOUT: 'LL_COLD_START_TIMEOUT',
  OVER_CAPACITY: 'LL_OVER_CAPACITY',
  BREAKER_OPEN: 'LL_BREAKER_OPEN',
  HANDLER_TRAP: 'LL_HANDLER_TRAP',
  BAD_HANDLER_RESPONSE: 'LL_BAD_HANDLER_RESPONSE',
  RESPONSE_TOO_LARGE: 'LL_RESPONSE_TOO_LARGE',
  FUNCTION_FAILED: 'LL_FUNCTION_FAILED',
  UPSTREAM_UNAVAILABLE: 'LL_UPSTREAM_UNAVAILABLE',
  SHUTTING_DOWN: 'LL_SHUTTING_DOWN',
  STORAGE_FULL: 'LL_STORAGE_FULL',
  STORE_DAMAGED: 'LL_STORE_DAMAGED',
  TLS_INVALID: 'LL_TLS_INVALID',
  INTERNAL: 'LL_INTERNAL',
} as const;

/** One of the values of {@link ErrorCodes}. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** The HTTP status each code becomes at the gateway or the admin API. */
export const httpStatusOf: Readonly<Record<ErrorCode, number>> = {
  LL_MANIFEST_INVALID: 400,
  LL_MODULE_INVALID: 400,
  LL_DEPLOY_CONFLICT: 409,
  LL_NOT_FOUND: 404,
  LL_ROUTE_NOT_FOUND: 404,
  LL_UNAUTHORIZED: 401,
  LL_BAD_REQUEST: 400,
  LL_BODY_TOO_LARGE: 413,
  LL_TIMEOUT: 504,
  LL_COLD_START_TIMEOUT: 504,
  LL_OVER_CAPACITY: 503,
  LL_BREAKER_OPEN: 503,
  LL_HANDLER_TRAP: 500,
  LL_BAD_HANDLER_RESPONSE: 502,
  LL_RESPONSE_TOO_LARGE: 502,
  LL_FUNCTION_FAILED: 503,
  LL_UPSTREAM_UNAVAILABLE: 503,
  LL_SHUTTING_DOWN: 503,
  LL_STORAGE_FULL: 507,
  LL_STORE_DAMAGED: 500,
  LL_TLS_INVALID: 400,
  LL_INTERNAL: 500,
};

/** Options for {@link LamplighterError}. */
export interface LamplighterErrorOptions {
  /** The underlying error, kept for logs. @default undefined */
  cause?: unknown;
  /** Seconds a client should wait before retrying (sets `Retry-After`). @default undefined */
  retryAfter?: number;
  /** Structured detail returned to API clients, e.g. the failing field path. @default undefined */
  detail?: Record<string, unknown>;
}

/** Base class of every error Lamplighter reports to a user. */
export class LamplighterError extends Error {
  override name = 'LamplighterError';
  readonly code: ErrorCode;
  readonly retryAfter: number | undefined;
  readonly detail: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: LamplighterErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryAfter = options.retryAfter;
    this.detail = options.detail;
  }

  /** The HTTP status this error becomes. */
  get status(): number {
    return httpStatusOf[this.code];
  }
}

/** A manifest that does not parse or does not validate. */
export class ManifestError extends LamplighterError {
  override name = 'ManifestError';
  constructor(message: string, options: LamplighterErrorOptions = {}) {
    super(ErrorCodes.MANIFEST_INVALID, message, options);
  }
}

/** A WebAssembly module or component rejected at deploy time. */
export class ModuleError extends LamplighterError {
  override name = 'ModuleError';
  constructor(message: string, options: LamplighterErrorOptions = {}) {
    super(ErrorCodes.MODULE_INVALID, message, options);
  }
}

/** True when `err` is a {@link LamplighterError}. */
export function isLamplighterError(err: unknown): err is LamplighterError {
  return err instanceof LamplighterError;
}

/** Wraps anything thrown into a LamplighterError, keeping known ones as they are. */
export function toLamplighterError(err: unknown): LamplighterError {
  if (err instanceof LamplighterError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new LamplighterError(ErrorCodes.INTERNAL, message, { cause: err });
}

/**
 * The error of a function that did not answer within its limits.timeout: one text wherever the
 * deadline is noticed first (the admission step, a WAGI sandbox, a component worker).
 */
export function functionTimeout(functionName: string, timeoutMs: number): LamplighterError {
  return new LamplighterError(ErrorCodes.TIMEOUT, `Function '${functionName}' did not answer within ${timeoutMs} ms (limits.timeout)`);
}
