// The InvocationRequest the gateway builds per request; its AbortSignal and its body stream are
// made only if someone asks.
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { LamplighterError } from '../errors/index.js';
import { HOP_HEADER, type MatchedRoute, type RoutedRequest } from '../instance/index.js';
import { REQUEST_TRACE, type RequestTrace, type Traceable } from '../tracing/index.js';

/** Where a request's method, headers, peer and body come from: the server's request, or an in-process one. */
export interface RequestSource {
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  readonly remoteAddress: string;
  readonly body: Readable;
  /** @default 'http' */
  readonly scheme?: 'http' | 'https';
}

/** Prefix of the headers that carry a route's named parameters to processes and components (as Spin names them). */
const PATH_MATCH_HEADER_PREFIX = 'spin-path-match-';

/** `url` without `prefix` at the start of its path: `/api/users?x=1` less `/api` is `/users?x=1`. */
function stripPrefix(url: string, prefix: string): string {
  const rest = url.slice(prefix.length);
  return rest === '' || rest.startsWith('?') ? `/${rest}` : rest;
}

/**
 * What the matched route changes in a request: the target without the matched prefix (when the
 * function strips it; the original is kept for peers), and Spin's header per named parameter,
 * replacing any a client sent under that name.
 */
export function applyRoute(url: string, headers: IncomingHttpHeaders, route: MatchedRoute): { url: string; originalUrl: string | undefined } {
  if (route.params) for (const name in route.params) headers[`${PATH_MATCH_HEADER_PREFIX}${name.toLowerCase()}`] = route.params[name];
  if (route.stripPrefix !== true || route.scriptName === '') return { url, originalUrl: undefined };
  return { url: stripPrefix(url, route.scriptName), originalUrl: url };
}

/**
 * One request on its way to an instance. Most requests finish without anyone listening for an
 * abort, so the AbortController behind `signal` is created on first use — if the client has gone
 * by then, the signal is created already aborted.
 */
export class GatewayRequest implements RoutedRequest, Traceable {
  /** The request's trace when tracing is on; set by the gateway, read by the dispatcher and runtimes through `traceOf`. */
  [REQUEST_TRACE]: RequestTrace | undefined = undefined;
  private controller: AbortController | undefined;
  private gone = false;
  private reason: LamplighterError | undefined;
  private listeners: Array<() => void> | undefined;

  /** The request target as the function sees it: without the matched prefix when the route strips it. */
  readonly url: string;
  /** The target as the client sent it, when `url` is stripped. */
  readonly originalUrl: string | undefined;

  constructor(
    readonly id: string,
    /** The request as the server read it (or as handed in): method, headers, peer and body come from it. */
    private readonly req: RequestSource,
    url: string,
    readonly host: string,
    readonly serverPort: number,
    readonly route: MatchedRoute,
    readonly deadline: number | undefined,
  ) {
    const routed = applyRoute(url, req.headers, route);
    this.url = routed.url;
    this.originalUrl = routed.originalUrl;
  }

  get method(): string {
    return this.req.method;
  }

  get headers(): IncomingHttpHeaders {
    return this.req.headers;
  }

  get scheme(): 'http' | 'https' {
    return this.req.scheme ?? 'http';
  }

  /** The node that forwarded this request, from its hop header. */
  get forwardedBy(): string | undefined {
    const hop = this.req.headers[HOP_HEADER];
    return typeof hop === 'string' ? hop : undefined;
  }

  get remoteAddress(): string {
    return this.req.remoteAddress;
  }

  /** The request body; the server makes the stream on first use. */
  get body(): Readable {
    return this.req.body;
  }

  /** Aborted when the client goes away or the deadline passes. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.gone) this.controller.abort();
    }
    return this.controller.signal;
  }

  /** True once the request is abandoned. */
  get aborted(): boolean {
    return this.gone;
  }

  /** Calls `listener` once when the request is abandoned; returns its remover. No EventTarget involved. */
  onAbort(listener: () => void): () => void {
    if (this.gone) {
      queueMicrotask(listener);
      return () => {};
    }
    (this.listeners ??= []).push(listener);
    return () => {
      const list = this.listeners;
      const i = list ? list.indexOf(listener) : -1;
      if (i >= 0) list!.splice(i, 1);
    };
  }

  /** Why the platform abandoned the request (its deadline), if it did. */
  get abortReason(): LamplighterError | undefined {
    return this.reason;
  }

  /** Marks the request abandoned, aborting its signal if one was made. */
  abort(reason?: LamplighterError): void {
    if (this.gone) return;
    this.gone = true;
    this.reason = reason;
    this.controller?.abort();
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const listener of listeners) listener();
  }
}
