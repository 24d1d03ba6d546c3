// A request as it goes on to a peer: the original, with the hop header and its id added to its headers.
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { isAborted, listenForAbort, TIME_LEFT_HEADER, type InvocationRequest, type MatchedRoute } from '../instance/index.js';
import { REQUEST_TRACE, traceOf, type RequestTrace } from '../tracing/index.js';
import { HOP_HEADER } from './forward-headers.js';

/**
 * Wraps `request` so that its headers carry `HOP_HEADER: node`, passing everything else through
 * (the body stream, the abort signal and hook) untouched. The client's `x-forwarded-*` headers
 * are left for the proxy's head writer, which appends to x-forwarded-for as every hop does.
 */
export class ForwardedRequest implements InvocationRequest {
  readonly headers: IncomingHttpHeaders;
  readonly #inner: InvocationRequest;

  /** The request's trace, when tracing is on: the hop is a span of it, and the peer continues it. */
  get [REQUEST_TRACE](): RequestTrace | undefined {
    return traceOf(this.#inner);
  }

  constructor(inner: InvocationRequest, node: string) {
    this.#inner = inner;
    // The peer takes the request id as its own, so both nodes' logs name the request alike.
    this.headers = { ...inner.headers, [HOP_HEADER]: node, 'x-request-id': inner.id };
    // The peer's gateway starts no fresh timeout: the time spent here already counts.
    if (inner.deadline !== undefined) this.headers[TIME_LEFT_HEADER] = String(Math.max(0, Math.floor(inner.deadline - performance.now())));
  }

  get id(): string {
    return this.#inner.id;
  }
  get method(): string {
    return this.#inner.method;
  }
  /** The target as the client sent it: the peer routes it again, prefix and all. */
  get url(): string {
    return this.#inner.originalUrl ?? this.#inner.url;
  }
  get body(): Readable {
    return this.#inner.body;
  }
  get remoteAddress(): string {
    return this.#inner.remoteAddress;
  }
  get host(): string {
    return this.#inner.host;
  }
  get serverPort(): number {
    return this.#inner.serverPort;
  }
  get route(): MatchedRoute {
    return this.#inner.route;
  }
  get signal(): AbortSignal {
    return this.#inner.signal;
  }
  get deadline(): number | undefined {
    return this.#inner.deadline;
  }

  /** Defined always, so the proxy takes the abort hook below rather than making a signal. */
  get aborted(): boolean {
    return isAborted(this.#inner);
  }

  /** The original's abort hook when it has one (no AbortController made); else its signal's event. */
  onAbort(listener: () => void): () => void {
    return listenForAbort(this.#inner, listener);
  }
}
