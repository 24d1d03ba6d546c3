// The InvocationRequest the gateway builds per request; its AbortSignal and its body stream are
// made only if someone asks.
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { ServerRequest } from '../http1/index.js';
import { HOP_HEADER, type InvocationRequest, type MatchedRoute } from '../instance/index.js';

/**
 * One request on its way to an instance. Most requests finish without anyone listening for an
 * abort, so the AbortController behind `signal` is created on first use — if the client has gone
 * by then, the signal is created already aborted.
 */
export class GatewayRequest implements InvocationRequest {
  private controller: AbortController | undefined;
  private gone = false;
  private listeners: Array<() => void> | undefined;

  constructor(
    readonly id: string,
    /** The request as the server read it: method, headers, peer and body come from it. */
    private readonly req: ServerRequest,
    readonly url: string,
    readonly host: string,
    readonly serverPort: number,
    readonly route: MatchedRoute,
    readonly deadline: number | undefined,
  ) {}

  get method(): string {
    return this.req.method;
  }

  get headers(): IncomingHttpHeaders {
    return this.req.headers;
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

  /** Marks the request abandoned, aborting its signal if one was made. */
  abort(): void {
    if (this.gone) return;
    this.gone = true;
    this.controller?.abort();
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const listener of listeners) listener();
  }
}
