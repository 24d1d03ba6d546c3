// The InvocationRequest the gateway builds per request; its AbortSignal is made only if someone asks.
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { InvocationRequest, MatchedRoute } from '../instance/index.js';

/**
 * One request on its way to an instance. Most requests finish without anyone listening for an
 * abort, so the AbortController behind `signal` is created on first use — if the client has gone
 * by then, the signal is created already aborted.
 */
export class GatewayRequest implements InvocationRequest {
  private controller: AbortController | undefined;
  private gone = false;

  constructor(
    readonly id: string,
    readonly method: string,
    readonly url: string,
    readonly headers: IncomingHttpHeaders,
    readonly body: Readable,
    readonly remoteAddress: string,
    readonly host: string,
    readonly serverPort: number,
    readonly route: MatchedRoute,
    readonly deadline: number | undefined,
  ) {}

  /** Aborted when the client goes away or the deadline passes. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.gone) this.controller.abort();
    }
    return this.controller.signal;
  }

  /** Marks the request abandoned, aborting its signal if one was made. */
  abort(): void {
    if (this.gone) return;
    this.gone = true;
    this.controller?.abort();
  }
}
