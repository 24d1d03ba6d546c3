// Forwards one invocation to a child's HTTP server over the instance's UpstreamPool, streaming both bodies.
import { ErrorCodes, LamplighterError } from '../../errors/index.js';
import { listTokens } from '../../http1/index.js';
import { HOP_BY_HOP_HEADERS, hasRequestBody, listenForAbort, type InvocationRequest, type InvocationResponse } from '../../instance/index.js';
import { traceOf, type RunRuntime, type TraceSpan } from '../../tracing/index.js';
import { MalformedResponseError } from './response-parser.js';
import type { ExchangeControl, UpstreamPool } from './upstream-pool.js';

/** Request headers dropped besides the hop-by-hop ones: `expect` (the proxy answers continues itself). */
const DROPPED_REQUEST_HEADERS: ReadonlySet<string> = new Set(['expect']);

/** Set by the gateway from what it saw, replacing what the client sent (x-forwarded-for is appended to). */
const FORWARDED_HEADERS: ReadonlySet<string> = new Set(['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto']);

/**
 * The x-forwarded-* header lines a child gets: `priorFor` (the client's own x-forwarded-for, if
 * any) with `remote` appended, and the host and protocol the gateway saw. Each line ends in CRLF.
 */
function forwardedHeaderLines(priorFor: string | undefined, remote: string, host: string, proto: string): string {
  const forwardedFor = priorFor ? (remote ? `${priorFor}, ${remote}` : priorFor) : remote;
  const forLine = forwardedFor ? `x-forwarded-for: ${forwardedFor}\r\n` : '';
  return `${forLine}x-forwarded-host: ${host}\r\nx-forwarded-proto: ${proto}\r\n`;
}

const NO_TOKENS: ReadonlySet<string> = new Set();

function connectionTokens(value: string | undefined): ReadonlySet<string> {
  // The common values name nothing but hop-by-hop headers already dropped.
  if (value === undefined || value === 'keep-alive' || value === 'close' || value === 'Keep-Alive') return NO_TOKENS;
  return new Set(listTokens(value).filter((t) => t !== ''));
}

/** Headers a client's `connection` header may not take away: the message's framing and its host. */
const FRAMING_HEADERS: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding', 'host']);

/**
 * The request line and headers sent to the child. For a request: the client's headers minus
 * hop-by-hop ones (and any the client's `connection` header names), plus `x-forwarded-for`
 * (appended to), `x-forwarded-host` and `x-forwarded-proto` (set from what the gateway saw), plus
 * the body's framing, which is always written here from what `framing` says and never left to the
 * client's headers: a body sent without its length would be read by the child as a second
 * request. For an `upgrade`, the client's headers as they came (`connection` and `upgrade` are
 * what it asks for) plus the x-forwarded-* ones. `host` is kept as the client sent it. The
 * gateway's parser has already refused names and values that could not be written back as they came.
 */
export function requestHead(request: InvocationRequest, framing: 'chunked' | 'raw' | 'none' | 'upgrade', options?: RequestHeadOptions): string {
  const headers = request.headers;
  const traceparent = options?.traceparent;
  const upgrade = framing === 'upgrade';
  const named = upgrade ? NO_TOKENS : connectionTokens(headers.connection);
  let head = `${request.method} ${request.url} HTTP/1.1\r\n`;
  // The gateway's parser gives lower-case names; a loop over them beats building entry arrays here.
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || FORWARDED_HEADERS.has(name) || (traceparent !== undefined && name === 'traceparent')) continue;
    if (!upgrade) {
      if (HOP_BY_HOP_HEADERS.has(name) || DROPPED_REQUEST_HEADERS.has(name) || name === 'content-length') continue;
      if (named.size > 0 && named.has(name) && !FRAMING_HEADERS.has(name)) continue;
    }
    if (typeof value === 'string') head += `${name}: ${value}\r\n`;
    else for (const v of value) head += `${name}: ${v}\r\n`;
  }
  const priorFor = headers['x-forwarded-for'];
  const host = headers.host ?? request.host;
  if (headers.host === undefined) head += `host: ${host}\r\n`;
  head += forwardedHeaderLines(Array.isArray(priorFor) ? priorFor.join(', ') : priorFor, request.remoteAddress, host, request.scheme ?? 'http');
  if (traceparent !== undefined) head += `traceparent: ${traceparent}\r\n`;
  if (framing === 'chunked') head += 'transfer-encoding: chunked\r\n';
  else if (framing === 'raw') head += `content-length: ${headers['content-length']}\r\n`;
  return `${head}\r\n`;
}

/** Options for {@link requestHead}. */
export interface RequestHeadOptions {
  /** The call's span as a W3C traceparent, sent in place of the client's. @default the client's header, if any */
  traceparent?: string;
}

/** How the client's body is sent on: as it came (content-length), re-chunked, or not at all. */
function bodyFraming(request: InvocationRequest): 'chunked' | 'raw' | 'none' {
  if (!hasRequestBody(request)) return 'none';
  return request.headers['transfer-encoding'] !== undefined ? 'chunked' : 'raw';
}

/** Methods a request may be sent again with (RFC 9110 §9.2.2) when its connection failed before any answer. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Options for {@link proxyRequest}. */
export interface ProxyRequestOptions {
  /** Names the instance in error messages, e.g. "Function 'echo' instance 'i1'". */
  label: string;
  /** `host:port` the pool connects to, for messages. */
  target: string;
  /**
   * Time the child has to send response headers, for requests without a deadline of their own
   * (the gateway gives every request one); 0 waits for the request's abort alone. @default 0
   */
  headersTimeoutMs?: number;
  /** Called once when the exchange is over: failed, or the response body ended or was destroyed. @default undefined */
  onSettled?: () => void;
  /** The instance's id, named on the span of a traced call. @default undefined */
  instanceId?: string;
  /** Name of a traced call's span, and the runtime it names. @default 'run in process', 'process' */
  span?: { name: string; runtime: RunRuntime };
}

/** Turns a failed upstream exchange into the LamplighterError a user should see. */
function toProxyError(err: unknown, options: ProxyRequestOptions): LamplighterError {
  if (err instanceof LamplighterError) return err;
  const { label, target } = options;
  if (err instanceof MalformedResponseError) {
    return new LamplighterError(ErrorCodes.BAD_HANDLER_RESPONSE, `${label} sent a malformed response: ${err.message}`, { cause: err });
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
      return new LamplighterError(
        ErrorCodes.UPSTREAM_UNAVAILABLE,
        `${label} closed the connection on ${target} before answering (${e.message})`,
        { cause: err },
      );
    case 'ETIMEDOUT':
      return new LamplighterError(ErrorCodes.UPSTREAM_UNAVAILABLE, `${label} did not accept a connection on ${target}: ${e.message}`, { cause: err });
    case 'LL_HEADERS_TIMEOUT':
      return new LamplighterError(ErrorCodes.TIMEOUT, `${label} sent no response headers within ${options.headersTimeoutMs ?? 0} ms`, { cause: err });
    case 'ERR_POOL_CLOSED':
      return new LamplighterError(ErrorCodes.UPSTREAM_UNAVAILABLE, `${label} is shutting down`, { cause: err });
    default:
      return new LamplighterError(
        ErrorCodes.UPSTREAM_UNAVAILABLE,
        `${label} failed to answer on ${target}: ${e?.message ?? String(err)}`,
        { cause: err },
      );
  }
}

/** Why an exchange was abandoned on the request's side: the client left or its deadline passed. */
function abandonReason(request: InvocationRequest, label: string): Error {
  const reason: unknown = request.aborted === undefined ? request.signal.reason : undefined;
  if (reason instanceof LamplighterError) return reason;
  const why = reason instanceof Error ? reason.message : 'the client went away or its deadline passed';
  return new LamplighterError(ErrorCodes.TIMEOUT, `Request ${request.id} to ${label} was aborted before it finished: ${why}`);
}

/**
 * Sends `request` to the child behind `pool` and returns its response: whole when it came in one
 * read, otherwise with the body still streaming (each chunk is passed on as it arrives, so
 * server-sent events flow). Abandoning the request, before or after the headers, closes the
 * upstream connection. Rejects with a LamplighterError. Not `async`: this is the hot path, and
 * the pool's own promise is all it needs.
 */
export function proxyRequest(pool: UpstreamPool, request: InvocationRequest, options: ProxyRequestOptions): Promise<InvocationResponse> {
  // A request without a body leaves its (empty) body stream alone: the gateway makes none unless asked.
  const framing = bodyFraming(request);
  const exchange = new ProxiedExchange(request, options);
  const trace = traceOf(request);
  // Traced: the call is a span, lasting until the response body ends, and the program gets it as its traceparent.
  const span = trace === undefined ? undefined : trace.startCall(request.method, `http://${options.target}${request.url}`, { name: options.span?.name ?? 'run in process', runtime: options.span?.runtime ?? 'process', instanceId: options.instanceId });
  exchange.span = span;
  const pending = pool.request(
    {
      method: request.method,
      head: span === undefined ? requestHead(request, framing) : requestHead(request, framing, { traceparent: span.traceparent }),
      body: framing === 'none' ? null : request.body,
      framing,
      retryable: IDEMPOTENT.has(request.method),
    },
    exchange,
  );
  exchange.listen();
  if (span !== undefined) pending.then((response) => exchange.answered(response.status), () => undefined);
  const headersTimeoutMs = options.headersTimeoutMs ?? 0;
  if (headersTimeoutMs <= 0 || request.deadline !== undefined) return pending;
  const timer = setTimeout(() => {
    exchange.abort?.(Object.assign(new Error('no response headers in time'), { code: 'LL_HEADERS_TIMEOUT' }));
  }, headersTimeoutMs);
  return pending.finally(() => clearTimeout(timer));
}

/** The pool's hooks for one proxied request: its abort, its settling, its errors, in one object per request. */
class ProxiedExchange implements ExchangeControl {
  abort?: (reason: Error) => void;
  /** The call's span, when the request is traced; ended once both its outcome is known and the exchange is over. */
  span: TraceSpan | undefined;
  #removeAbort: (() => void) | undefined;
  #settled = false;
  #outcomeKnown = false;

  constructor(
    private readonly request: InvocationRequest,
    private readonly options: ProxyRequestOptions,
  ) {}

  /** Starts listening for the request being abandoned (the client left, the deadline passed). */
  listen(): void {
    if (this.#settled) return;
    this.#removeAbort = listenForAbort(this.request, this.abandon);
  }

  readonly abandon = (): void => {
    this.abort?.(abandonReason(this.request, this.options.label));
  };

  onSettled(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#removeAbort?.();
    this.options.onSettled?.();
    // A whole response settles before its status reaches answered(); the span ends there then.
    if (this.#outcomeKnown) this.span?.end();
  }

  /** The child answered with `status` (traced requests only). */
  answered(status: number): void {
    const span = this.span!;
    span.setStatus(status);
    this.#outcomeKnown = true;
    if (this.#settled) span.end();
  }

  mapError(err: Error): Error {
    const mapped = toProxyError(err, this.options);
    if (this.span !== undefined) {
      this.span.fail(mapped);
      this.#outcomeKnown = true;
    }
    return mapped;
  }
}
