// Keep-alive HTTP/1.1 connections to one child's port, and the exchange of one request on them.
// Written here rather than taken from undici: on the gateway's hot path a general-purpose client
// cost about half of the proxied throughput (measured in bench/proxy.ts). This one does what a
// loopback reverse proxy needs and no more: one request per connection at a time, no pipelining,
// bodies streamed both ways, small responses handed back whole.
import net from 'node:net';
import { Readable } from 'node:stream';
import type { HeaderPairs } from '../../instance/index.js';
import { ResponseParser, type ResponseEvents, type ResponseHead } from './response-parser.js';

/** Options for an {@link UpstreamPool}. */
export interface UpstreamPoolOptions {
  host: string;
  port: number;
  /** How long an idle connection is kept when the child names no keep-alive timeout. @default 4000 */
  idleTimeoutMs?: number;
  /** How long a new connection may take to open. @default 5000 */
  connectTimeoutMs?: number;
}

/** What one exchange sends: the head is already serialized; the body, if any, streams after it. */
export interface UpstreamRequest {
  method: string;
  /** The request line and header section, ending in an empty line. */
  head: string;
  /** The body to send, framed as `framing` says; null when there is none. */
  body: Readable | null;
  /** `chunked`: each body chunk is sent as a chunk; `raw`: sent as is (a content-length was given). */
  framing: 'chunked' | 'raw' | 'none';
  /** Whether the method is idempotent, so the request may be sent again if its connection fails before any answer. */
  retryable: boolean;
}

/** The child's answer: head, then a body that is either whole already or still streaming. */
export interface UpstreamResponse {
  status: number;
  headers: HeaderPairs;
  /** The whole body when it came with the head; otherwise a stream of it; null for none. */
  body: Buffer | Readable | null;
}

/** Called once when an exchange is over (response read, failed or abandoned). */
export type SettleHook = () => void;

/** One exchange's hooks into the pool: abort it, and hear when it is over. */
export interface ExchangeControl {
  /** Set by the pool: abandons the exchange, closing its connection. */
  abort?: (reason: Error) => void;
  /** Called once when the exchange is over. */
  onSettled?: SettleHook;
  /** Turns a failure into what the promise rejects with. @default the failure as is */
  mapError?: (err: Error) => Error;
}

const EMPTY = Buffer.alloc(0);
/** Where every pool connection's reads land before they are copied out; reads are handled synchronously. */
const READ_BUFFER = Buffer.alloc(64 * 1024);
const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';

/** A connection's error, with the errno-style code node gives (ECONNREFUSED and the like). */
type ConnectionError = Error & { code?: string };

class Connection {
  readonly socket: net.Socket;
  readonly parser = new ResponseParser();
  /** Performance-clock time it last went idle; used to retire it before the child does. */
  idleSince = 0;
  /** How long the child keeps it open when idle, as it told us; otherwise the pool's default. */
  keepAliveMs: number;
  exchange: Exchange | undefined;

  constructor(socket: net.Socket, keepAliveMs: number) {
    this.socket = socket;
    this.keepAliveMs = keepAliveMs;
  }
}

/**
 * A pool of keep-alive connections to one `host:port`. It does not queue: the dispatcher never
 * sends an instance more requests than `limits.concurrency`, so a request without an idle
 * connection opens one.
 */
export class UpstreamPool {
  readonly #host: string;
  readonly #port: number;
  readonly #idleTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #idle: Connection[] = [];
  readonly #all = new Set<Connection>();
  #sweeper: NodeJS.Timeout | undefined;
  #destroyed = false;

  constructor(options: UpstreamPoolOptions) {
    this.#host = options.host;
    this.#port = options.port;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 4_000;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  }

  /** Open connections, idle or busy. */
  get connections(): number {
    return this.#all.size;
  }

  /** Open connections with no exchange on them. */
  get idleConnections(): number {
    return this.#idle.length;
  }

  /**
   * Sends `request` and resolves with the response once its head is read (and its body, when
   * that came in the same read). Rejects with the socket's error (code ECONNREFUSED, ECONNRESET…)
   * or a MalformedResponseError. `control.abort` is set for the caller to abandon the exchange.
   */
  request(request: UpstreamRequest, control: ExchangeControl): Promise<UpstreamResponse> {
    return new Promise<UpstreamResponse>((resolve, reject) => {
      if (this.#destroyed) {
        const err = Object.assign(new Error('the connection pool is closed'), { code: 'ERR_POOL_CLOSED' });
        reject(control.mapError ? control.mapError(err) : err);
        control.onSettled?.();
        return;
      }
      const exchange = new Exchange(this, request, control, resolve, reject);
      exchange.start(this.#take());
    });
  }

  /** Closes every connection, idle or busy; exchanges in progress fail. */
  destroy(): void {
    this.#destroyed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const c of [...this.#all]) c.socket.destroy();
    this.#idle.length = 0;
  }

  /** Whether {@link destroy} has been called. */
  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Opens a connection for a retry, never an idle one. @internal */
  fresh(): Connection {
    return this.#open();
  }

  /** Returns a connection after a completed exchange. @internal */
  release(c: Connection): void {
    c.exchange = undefined;
    if (this.#destroyed) {
      c.socket.destroy();
      return;
    }
    // A body's reader may have paused the socket on the last chunk; the next exchange must read.
    if (c.socket.isPaused()) c.socket.resume();
    c.idleSince = performance.now();
    this.#idle.push(c);
    if (!this.#sweeper) {
      this.#sweeper = setInterval(() => this.#sweep(), 1_000);
      this.#sweeper.unref();
    }
  }

  /** Forgets a connection that closed or will not be reused. @internal */
  discard(c: Connection): void {
    this.#all.delete(c);
    const i = this.#idle.indexOf(c);
    if (i >= 0) this.#idle.splice(i, 1);
    if (!c.socket.destroyed) c.socket.destroy();
  }

  // The most recently used idle connection (its child-side state is warmest), unless it has been
  // idle for about as long as the child keeps connections: then the child may be closing it now.
  #take(): Connection {
    const now = performance.now();
    for (;;) {
      const c = this.#idle.pop();
      if (!c) return this.#open();
      if (!c.socket.destroyed && now - c.idleSince < c.keepAliveMs) return c;
      this.discard(c);
    }
  }

  #sweep(): void {
    const now = performance.now();
    for (const c of [...this.#idle]) if (now - c.idleSince >= c.keepAliveMs) this.discard(c);
    if (this.#idle.length === 0 && this.#sweeper) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  #open(): Connection {
    // Reads land in one shared buffer and are copied out (into node's pooled small buffers), which
    // skips the stream machinery and the 64 KiB allocation node makes for every read otherwise.
    const socket = net.connect({
      host: this.#host,
      port: this.#port,
      noDelay: true,
      onread: {
        buffer: READ_BUFFER,
        callback: (bytes: number, buf: Uint8Array): boolean => {
          const chunk = Buffer.from(buf.subarray(0, bytes));
          const ex = c.exchange;
          if (ex) ex.fromSocket(chunk);
          else this.discard(c); // bytes nobody asked for: the connection can no longer be trusted
          return true;
        },
      },
    });
    const c = new Connection(socket, this.#idleTimeoutMs);
    this.#all.add(c);
    const connectTimer = setTimeout(() => {
      socket.destroy(Object.assign(new Error(`connecting took longer than ${this.#connectTimeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, this.#connectTimeoutMs);
    socket.once('connect', () => clearTimeout(connectTimer));
    socket.on('end', () => {
      const ex = c.exchange;
      if (ex) ex.socketEnded();
      else this.discard(c);
    });
    socket.on('error', (err: ConnectionError) => {
      clearTimeout(connectTimer);
      c.exchange?.socketFailed(err);
    });
    socket.on('close', () => {
      clearTimeout(connectTimer);
      const ex = c.exchange;
      this.discard(c);
      ex?.socketFailed(Object.assign(new Error('the connection closed'), { code: 'ECONNRESET' }));
    });
    return c;
  }
}

const NOTHING = (): void => {};

/** Request body bytes kept for a possible resend; a larger body is not resent. */
const REPLAY_LIMIT = 64 * 1024;

/** One request and its response on one connection (or two, when the first failed before an answer). */
class Exchange implements ResponseEvents {
  readonly #pool: UpstreamPool;
  readonly #request: UpstreamRequest;
  readonly #control: ExchangeControl;
  #resolve: ((r: UpstreamResponse) => void) | undefined;
  #reject: ((e: Error) => void) | undefined;
  #conn!: Connection;
  #head: ResponseHead | undefined;
  #pieces: Buffer[] | undefined;
  #stream: Readable | undefined;
  /** The whole request has been written. */
  #sentAll = false;
  /** Some of the answer has been read. */
  #gotBytes = false;
  #settled = false;
  #retried = false;
  /** Body chunks written so far, kept while small enough to resend: none yet while undefined, null once too many. */
  #written: Buffer[] | null | undefined;
  #writtenBytes = 0;
  /** Detaches this exchange from the client's body; a no-op when there is none. */
  #stopBody: () => void = NOTHING;
  /** Lets the client's body flow again after a resend; a no-op when there is none. */
  #onResend: () => void = NOTHING;

  constructor(pool: UpstreamPool, request: UpstreamRequest, control: ExchangeControl, resolve: (r: UpstreamResponse) => void, reject: (e: Error) => void) {
    this.#pool = pool;
    this.#request = request;
    this.#control = control;
    this.#resolve = resolve;
    this.#reject = reject;
    control.abort = (reason) => this.#fail(reason, true);
  }

  start(conn: Connection): void {
    this.#attach(conn);
    conn.socket.write(this.#request.head, 'latin1');
    const body = this.#request.body;
    if (body === null || this.#request.framing === 'none') this.#sentAll = true;
    else this.#pipeBody(body);
  }

  #attach(conn: Connection): void {
    this.#conn = conn;
    conn.exchange = this;
    conn.parser.expect(this.#request.method, this);
  }

  #writeChunk(chunk: Buffer): boolean {
    const socket = this.#conn.socket;
    if (this.#request.framing !== 'chunked') return socket.write(chunk);
    socket.cork();
    socket.write(`${chunk.length.toString(16)}${CRLF}`, 'latin1');
    socket.write(chunk);
    const ok = socket.write(CRLF, 'latin1');
    socket.uncork();
    return ok;
  }

  #pipeBody(body: Readable): void {
    const chunked = this.#request.framing === 'chunked';
    let drainOn: net.Socket | undefined;
    const onDrain = (): void => {
      drainOn = undefined;
      body.resume();
    };
    const onData = (chunk: Buffer): void => {
      if (chunk.length === 0) return;
      if (this.#written !== null) {
        this.#writtenBytes += chunk.length;
        if (this.#writtenBytes <= REPLAY_LIMIT) (this.#written ??= []).push(chunk);
        else this.#written = null;
      }
      if (!this.#writeChunk(chunk)) {
        body.pause();
        drainOn = this.#conn.socket;
        drainOn.once('drain', onDrain);
      }
    };
    const onEnd = (): void => {
      cleanup();
      if (chunked) this.#conn.socket.write(LAST_CHUNK, 'latin1');
      this.#sentAll = true;
    };
    const onAborted = (): void => {
      cleanup();
      this.#fail(Object.assign(new Error('the client went away while sending the request body'), { code: 'ECONNRESET' }), true);
    };
    const onClose = (): void => {
      if (!body.readableEnded) onAborted();
    };
    let listening = true;
    const cleanup = (): void => {
      listening = false;
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onAborted);
      body.off('aborted', onAborted);
      body.off('close', onClose);
      drainOn?.off('drain', onDrain);
      drainOn = undefined;
    };
    this.#stopBody = () => {
      if (!listening) return;
      cleanup();
      // The rest of the client's body is of no use now; the gateway's connection reads and drops it.
      body.resume();
    };
    this.#onResend = () => {
      // The old connection's backpressure no longer applies; the new one's will pause us again.
      drainOn?.off('drain', onDrain);
      drainOn = undefined;
      if (listening && body.isPaused()) body.resume();
    };
    // Whoever made the body may not listen for its errors: one it raises after this exchange let
    // go of it (the child answered first, the client left later) must not end the process.
    body.on('error', NOTHING);
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onAborted);
    body.once('aborted', onAborted);
    body.once('close', onClose);
    if (body.isPaused()) body.resume();
  }

  /** Bytes read from the connection. */
  fromSocket(chunk: Buffer): void {
    this.#gotBytes = true;
    const conn = this.#conn;
    let used: number;
    try {
      used = conn.parser.execute(chunk);
    } catch (err) {
      this.#fail(err as Error, true);
      return;
    }
    // More bytes than the response framed: the connection is out of step with the child.
    if (used < chunk.length) this.#pool.discard(conn);
    if (this.#resolve && this.#head) this.#answer();
  }

  /** The child ended the connection. */
  socketEnded(): void {
    if (!this.#head) {
      this.#failOrResend(Object.assign(new Error('the child closed the connection before answering'), { code: 'ECONNRESET' }));
      return;
    }
    try {
      this.#conn.parser.finish();
    } catch (err) {
      this.#fail(err as Error, true);
      return;
    }
    if (this.#resolve) this.#answer();
  }

  /** The connection failed or closed. */
  socketFailed(err: ConnectionError): void {
    if (this.#settled) return;
    this.#failOrResend(err);
  }

  // ResponseEvents ---------------------------------------------------------------------------

  onHead(head: ResponseHead): void {
    this.#head = head;
    if (head.keepAliveTimeoutMs !== undefined) {
      // Retire the connection a second before the child would, so a request never meets its close.
      this.#conn.keepAliveMs = Math.max(0, head.keepAliveTimeoutMs - 1_000);
    }
    if (head.framing !== 'none') this.#pieces = [];
  }

  onData(chunk: Buffer): void {
    const stream = this.#stream;
    if (stream) {
      if (!stream.push(chunk)) this.#conn.socket.pause();
      return;
    }
    this.#pieces!.push(chunk);
  }

  onEnd(): void {
    this.#stream?.push(null);
    // The child may answer before the whole body is sent; then stop sending: the connection is spent.
    if (!this.#sentAll) this.#stopBody();
    this.#complete();
  }

  // -------------------------------------------------------------------------------------------

  // Hands the response to the caller: whole if the parser already reached its end, else streaming.
  #answer(): void {
    const resolve = this.#resolve!;
    this.#resolve = undefined;
    this.#reject = undefined;
    const head = this.#head!;
    if (head.framing === 'none') {
      resolve({ status: head.status, headers: head.headers, body: null });
      return;
    }
    const pieces = this.#pieces!;
    this.#pieces = undefined;
    if (this.#conn.parser.done) {
      resolve({ status: head.status, headers: head.headers, body: pieces.length === 1 ? pieces[0]! : pieces.length === 0 ? EMPTY : Buffer.concat(pieces) });
      return;
    }
    const socket = this.#conn.socket;
    const stream = new Readable({
      read: () => {
        if (socket.isPaused()) socket.resume();
      },
      destroy: (err, callback) => {
        // The reader let go before the end (the client left): the connection is out of step.
        if (!this.#settled) this.#fail(err ?? new Error('the response body was abandoned'), false);
        callback(err);
      },
    });
    // Its reader hears of a failure as it reads; one raised after the reader let go (the client
    // left) must not end the process as an unhandled 'error' event.
    stream.on('error', NOTHING);
    this.#stream = stream;
    for (const piece of pieces) stream.push(piece);
    resolve({ status: head.status, headers: head.headers, body: stream });
  }

  // The whole response is read (and the request sent, or given up once the answer came).
  #complete(): void {
    if (this.#settled) return;
    this.#settled = true;
    const conn = this.#conn;
    if (this.#head?.keepAlive && this.#sentAll) this.#pool.release(conn);
    else {
      conn.exchange = undefined;
      this.#pool.discard(conn);
    }
    this.#control.onSettled?.();
  }

  // A connection that fails before a byte of answer has come may not have reached the child's
  // handler at all: a reused one the child closed as we sent (its keep-alive ran out), a new one
  // its full accept queue reset. It may also have: a handler that cut the connection. Only an
  // idempotent request (RFC 9110 §9.2.2), for which running twice is by definition harmless,
  // whose body, if any, is still held, is sent again — once, on a new connection.
  #failOrResend(err: ConnectionError): void {
    if (this.#settled) return;
    if (this.#pool.destroyed) {
      this.#fail(Object.assign(new Error('the connection pool is closed'), { code: 'ERR_POOL_CLOSED', cause: err }), true);
      return;
    }
    const resendable = !this.#gotBytes && !this.#retried && this.#request.retryable && (this.#request.body === null || this.#written !== null);
    if (!resendable) {
      this.#fail(err, true);
      return;
    }
    this.#retried = true;
    const old = this.#conn;
    old.exchange = undefined;
    this.#pool.discard(old);
    this.#attach(this.#pool.fresh());
    const socket = this.#conn.socket;
    socket.write(this.#request.head, 'latin1');
    for (const chunk of this.#written ?? []) this.#writeChunk(chunk);
    if (this.#sentAll && this.#request.framing === 'chunked') socket.write(LAST_CHUNK, 'latin1');
    this.#onResend();
  }

  #fail(err: Error, destroyStream: boolean): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#stopBody();
    const conn = this.#conn;
    conn.exchange = undefined;
    this.#pool.discard(conn);
    const reject = this.#reject;
    this.#resolve = undefined;
    this.#reject = undefined;
    if (reject) reject(this.#control.mapError ? this.#control.mapError(err) : err);
    else if (destroyStream && this.#stream && !this.#stream.destroyed) this.#stream.destroy(err);
    this.#control.onSettled?.();
  }
}
