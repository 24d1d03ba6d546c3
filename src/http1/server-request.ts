// One request as the gateway's HTTP/1.1 server hands it over; its body stream is made on first use.
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { RequestHead } from './request-parser.js';

/** What a request needs from its connection: flow control for a body that is read slowly. */
export interface BodySource {
  /** The body's reader wants more: read from the socket again. */
  resumeBody(): void;
  /** The body's reader has too much: stop reading the socket for now. */
  pauseBody(): void;
}

/** Raised on a request body the client stopped sending (it closed the connection, or it was malformed). */
export class RequestAbortedError extends Error {
  override readonly name = 'RequestAbortedError';
  readonly code = 'ECONNRESET';
}

/** Chunks that arrive before anyone asks for the body, up to this many bytes, wait in memory; then the socket waits. */
const QUEUE_BYTES = 64 * 1024;

/** A request read from a client connection. Most requests have no body, and never make a stream. */
export class ServerRequest {
  /** True once the whole body has arrived. */
  complete: boolean;
  #body: RequestBody | undefined;
  #queued: Buffer[] | undefined;
  #queuedBytes = 0;
  #failure: Error | undefined;

  constructor(
    readonly head: RequestHead,
    readonly remoteAddress: string,
    private readonly source: BodySource,
    /** `https` when the request came over TLS. */
    readonly scheme: 'http' | 'https' = 'http',
  ) {
    this.complete = head.framing === 'none';
  }

  get method(): string {
    return this.head.method;
  }

  get url(): string {
    return this.head.url;
  }

  get headers(): IncomingHttpHeaders {
    return this.head.headers;
  }

  /** The request body as a stream of Buffers; empty when the request has none. */
  get body(): Readable {
    if (!this.#body) {
      const body = new RequestBody(this.source);
      this.#body = body;
      const queued = this.#queued;
      this.#queued = undefined;
      if (queued) for (const chunk of queued) body.push(chunk);
      if (this.#failure) body.destroy(this.#failure);
      else if (this.complete) body.push(null);
    }
    return this.#body;
  }

  /** Called by the connection with each chunk of body. */
  pushBody(chunk: Buffer): void {
    const body = this.#body;
    if (body) {
      if (!body.push(chunk)) this.source.pauseBody();
      return;
    }
    (this.#queued ??= []).push(chunk);
    this.#queuedBytes += chunk.length;
    if (this.#queuedBytes >= QUEUE_BYTES) this.source.pauseBody();
  }

  /** Called by the connection when the body has ended. */
  endBody(): void {
    this.complete = true;
    this.#body?.push(null);
  }

  /** Called by the connection when the body will never end. */
  failBody(err: Error): void {
    if (this.complete) return;
    this.#failure = err;
    this.#queued = undefined;
    const body = this.#body;
    if (body && !body.destroyed) body.destroy(err);
  }
}

/** Listens for a body's errors on behalf of no one. */
const IGNORE = (): void => {};

/**
 * A request body's stream. It always has an 'error' listener of its own: its reader hears of a
 * failure as it reads (its own listener, async iteration, pipeline), and one raised when nobody
 * listens, or after the reader has let go (the client left mid-body while the handler was
 * detaching), is dropped here instead of ending the process as an unhandled 'error' event.
 */
class RequestBody extends Readable {
  constructor(private readonly source: BodySource) {
    super();
    this.on('error', IGNORE);
  }

  override _read(): void {
    this.source.resumeBody();
  }
}
