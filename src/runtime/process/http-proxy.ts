// Forwards one invocation to a child's HTTP server through an undici Pool, streaming both bodies.
import type { IncomingHttpHeaders } from 'node:http';
import type { Pool } from 'undici';
import { ErrorCodes, LamplighterError } from '../../errors/index.js';
import type { HeaderPairs, InvocationRequest, InvocationResponse } from '../../instance/index.js';

/** Headers that describe one connection, not the message; never forwarded in either direction. */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Request headers dropped besides the hop-by-hop ones: `expect` (the proxy answers continues itself). */
const DROPPED_REQUEST_HEADERS: ReadonlySet<string> = new Set(['expect']);

const NO_TOKENS: ReadonlySet<string> = new Set();

function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> {
  if (value === undefined) return NO_TOKENS;
  const text = Array.isArray(value) ? value.join(',') : value;
  // The common values name nothing but hop-by-hop headers already dropped.
  if (text === 'keep-alive' || text === 'close' || text === 'Keep-Alive') return NO_TOKENS;
  return new Set(text.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''));
}

/**
 * The headers sent to the child: the client's, minus hop-by-hop ones (and any the client's
 * `connection` header names), plus `x-forwarded-for` (appended to), `x-forwarded-host` and
 * `x-forwarded-proto` (set from what the gateway saw). `host` is kept as the client sent it.
 */
export function forwardRequestHeaders(request: InvocationRequest): Record<string, string | string[]> {
  const headers = request.headers;
  const named = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  // node:http gives lower-case names; a loop over them beats building entry arrays here.
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* ':' */) continue;
    if (HOP_BY_HOP_HEADERS.has(name) || DROPPED_REQUEST_HEADERS.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  const priorFor = headers['x-forwarded-for'];
  const prior = Array.isArray(priorFor) ? priorFor.join(', ') : priorFor;
  const remote = request.remoteAddress;
  const forwardedFor = prior ? (remote ? `${prior}, ${remote}` : prior) : remote;
  if (forwardedFor) out['x-forwarded-for'] = forwardedFor;
  const host = headers.host ?? request.host;
  out['x-forwarded-host'] = host;
  out['x-forwarded-proto'] = 'http';
  if (out.host === undefined) out.host = host;
  return out;
}

/** The child's response headers as pairs, minus hop-by-hop ones and any its `connection` header names. */
export function responseHeaderPairs(headers: IncomingHttpHeaders): HeaderPairs {
  const named = connectionTokens(headers.connection);
  const pairs: HeaderPairs = [];
  for (const rawName in headers) {
    const value = headers[rawName];
    const name = rawName.toLowerCase();
    if (value === undefined || HOP_BY_HOP_HEADERS.has(name) || named.has(name)) continue;
    if (Array.isArray(value)) for (const v of value) pairs.push([name, v]);
    else pairs.push([name, value]);
  }
  return pairs;
}

function hasBody(request: InvocationRequest): boolean {
  const length = request.headers['content-length'];
  if (request.headers['transfer-encoding'] !== undefined) return true;
  return length !== undefined && length.trim() !== '0';
}

/** Options for {@link proxyRequest}. */
export interface ProxyRequestOptions {
  /** Names the instance in error messages, e.g. "Function 'echo' instance 'i1'". */
  label: string;
  /** `host:port` the pool connects to, for messages. */
  target: string;
  /** Time the child has to send response headers; 0 waits for the request's signal alone. @default 0 */
  headersTimeoutMs?: number;
  /** Called once when the exchange is over: failed, or the response body ended or was destroyed. @default undefined */
  onSettled?: () => void;
}

/** Turns a failed upstream exchange into the LamplighterError a user should see. */
export function toProxyError(err: unknown, request: InvocationRequest, options: ProxyRequestOptions): LamplighterError {
  if (err instanceof LamplighterError) return err;
  const { label, target } = options;
  if (request.signal.aborted) {
    const reason: unknown = request.signal.reason;
    if (reason instanceof LamplighterError) return reason;
    const why = reason instanceof Error ? reason.message : String(reason);
    return new LamplighterError(ErrorCodes.TIMEOUT, `Request ${request.id} to ${label} was aborted before it finished: ${why}`, { cause: err });
  }
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ECONNREFUSED':
      return new LamplighterError(
        ErrorCodes.UPSTREAM_UNAVAILABLE,
        `${label} refused the connection on ${target}: the process is not listening on its PORT`,
        { cause: err },
      );
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
      return new LamplighterError(
        ErrorCodes.UPSTREAM_UNAVAILABLE,
        `${label} closed the connection on ${target} before answering (${e.message})`,
        { cause: err },
      );
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new LamplighterError(
        ErrorCodes.TIMEOUT,
        `${label} sent no response headers within ${options.headersTimeoutMs ?? 0} ms`,
        { cause: err },
      );
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
      return new LamplighterError(ErrorCodes.UPSTREAM_UNAVAILABLE, `${label} is shutting down`, { cause: err });
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return new LamplighterError(ErrorCodes.BAD_REQUEST, `Request ${request.id}: body length does not match its content-length`, { cause: err });
    default:
      return new LamplighterError(
        ErrorCodes.UPSTREAM_UNAVAILABLE,
        `${label} failed to answer on ${target}: ${e?.message ?? String(err)}`,
        { cause: err },
      );
  }
}

/**
 * What undici listens to for an abort. A request that offers `onAbort` gets a small object with
 * the two EventTarget methods undici calls, instead of an AbortSignal: making a signal and
 * registering on it cost a quarter of this path's throughput.
 */
function abortSource(request: InvocationRequest): AbortSignal {
  const onAbort = request.onAbort?.bind(request);
  if (!onAbort || request.aborted === undefined) return request.signal;
  const removers = new Map<() => void, () => void>();
  const source = {
    get aborted(): boolean {
      return request.aborted === true;
    },
    reason: undefined,
    addEventListener(_type: 'abort', listener: () => void): void {
      removers.set(listener, onAbort(listener));
    },
    removeEventListener(_type: 'abort', listener: () => void): void {
      removers.get(listener)?.();
      removers.delete(listener);
    },
  };
  return source as unknown as AbortSignal;
}

/**
 * Sends `request` to the child behind `pool` and returns its response with the body still
 * streaming (each chunk is passed on as it arrives, so server-sent events flow). The request's
 * signal aborts the upstream exchange, before or after the headers.
 */
export async function proxyRequest(pool: Pool, request: InvocationRequest, options: ProxyRequestOptions): Promise<InvocationResponse> {
  let settled = false;
  const settle = (): void => {
    if (settled) return;
    settled = true;
    options.onSettled?.();
  };
  const withBody = hasBody(request);
  if (!withBody) request.body.resume();
  try {
    const response = await pool.request({
      method: request.method,
      path: request.url,
      headers: forwardRequestHeaders(request),
      body: withBody ? request.body : null,
      signal: abortSource(request),
      headersTimeout: options.headersTimeoutMs ?? 0,
      bodyTimeout: 0,
    });
    const headers = responseHeaderPairs(response.headers as IncomingHttpHeaders);
    const noBody = request.method === 'HEAD' || response.statusCode === 204 || response.statusCode === 304;
    if (noBody) {
      await response.body.dump().catch(() => {});
      settle();
      return { status: response.statusCode, headers, body: null };
    }
    const body = response.body;
    body.once('close', settle);
    if (body.destroyed) settle();
    return { status: response.statusCode, headers, body };
  } catch (err) {
    settle();
    throw toProxyError(err, request, options);
  }
}
