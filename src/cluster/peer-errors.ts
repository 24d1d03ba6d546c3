// How a forward to a peer node fails: unreachable (serve the request elsewhere) or failed after
// the request went out (the user gets a 502).
import { ErrorCodes, LamplighterError, type LamplighterErrorOptions } from '../errors/index.js';
import { MalformedResponseError } from '../runtime/process/index.js';

/**
 * The peer could not be reached, and nothing of the request got to it: the connection was
 * refused, timed out, or had no route. The request is untouched and may be served elsewhere.
 * A user who sees it anyway (no other node could take the request) gets a 503.
 */
export class PeerUnreachableError extends LamplighterError {
  override name = 'PeerUnreachableError';
  /** `host:port` of the peer. */
  readonly address: string;

  constructor(address: string, message: string, options: LamplighterErrorOptions = {}) {
    super(ErrorCodes.UPSTREAM_UNAVAILABLE, message, options);
    this.address = address;
  }
}

/** True when a forward failed before anything reached the peer, so the request may be served elsewhere. */
export function isPeerUnreachable(err: unknown): err is PeerUnreachableError {
  return err instanceof PeerUnreachableError;
}

/**
 * Errors a connection attempt fails with before it is open. A socket that never opened carried
 * no byte of the request, whatever the method.
 */
const CONNECT_ERRORS: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ETIMEDOUT', // the connect timeout: the pools used here raise it only before the connection opened
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EADDRNOTAVAIL',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Who a failed forward was for, to name in its error. */
export interface ForwardContext {
  /** The peer as messages name it, e.g. "node 'b' (10.0.0.2:8080)". */
  readonly label: string;
  readonly address: string;
  /** The peer's node name, when known. */
  readonly peer: string | undefined;
  readonly requestId: string;
  /** True for an upgrade (WebSocket handshake) rather than a plain request. */
  readonly upgrade: boolean;
  /** When the forward was asked for, on the `performance.now()` clock. */
  readonly startedAt: number;
}

/** The errno-style code of `err` or of its cause, if any. */
function codeOf(err: unknown): string | undefined {
  const own = (err as { code?: unknown } | null)?.code;
  if (typeof own === 'string' && !own.startsWith('LL_')) return own;
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause;
  return typeof cause?.code === 'string' ? cause.code : undefined;
}

/** The underlying error's message: the proxy's own wraps speak of a child process, not of a node. */
function rawMessage(err: unknown): string {
  const cause = err instanceof LamplighterError && err.cause instanceof Error ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}

/**
 * Turns what a forward failed with into the error the dispatcher gets: a PeerUnreachableError
 * when the connection never opened; the request's own abandonment (`aborted`: its client left or
 * its deadline passed) as a timeout; otherwise, since the request or part of it went out, a 502
 * naming the peer, so that a request the peer may have acted on is never run twice.
 */
export function toForwardError(err: unknown, context: ForwardContext, aborted: boolean): LamplighterError {
  const { label, address, requestId } = context;
  const what = context.upgrade ? `the upgrade of request ${requestId}` : `request ${requestId}`;
  const code = codeOf(err);
  if (code !== undefined && CONNECT_ERRORS.has(code)) {
    return new PeerUnreachableError(address, `Cannot reach ${label} to forward ${what}: ${rawMessage(err)} (${code})`, { cause: err });
  }
  if (aborted) {
    if (err instanceof LamplighterError && err.code === ErrorCodes.TIMEOUT) return err;
    return new LamplighterError(ErrorCodes.TIMEOUT, `Forwarded ${what} was abandoned (its client left or its deadline passed) before ${label} answered`, { cause: err });
  }
  const inner = err instanceof LamplighterError && err.cause !== undefined ? err.cause : err;
  if (inner instanceof MalformedResponseError) {
    return new LamplighterError(ErrorCodes.BAD_HANDLER_RESPONSE, `${capitalize(label)} sent a malformed answer to forwarded ${what}: ${inner.message}`, { cause: err });
  }
  // Without a code, or with a reset: the peer closed the connection before its answer's head.
  const detail = code === undefined || code === 'ECONNRESET' || code === 'EPIPE' ? 'the connection closed before an answer came' : rawMessage(err);
  return new LamplighterError(
    ErrorCodes.BAD_HANDLER_RESPONSE,
    `${capitalize(label)} failed to answer forwarded ${what}: ${detail}${code ? ` (${code})` : ''}; the node may be stopping or overloaded`,
    { cause: err },
  );
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
