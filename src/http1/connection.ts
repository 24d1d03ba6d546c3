// One client connection of the gateway's HTTP/1.1 server: reads requests one at a time, hands each
// to the handler, holds pipelined bytes until the answer before them is written, and closes the
// connection when the client, the protocol or the server asks.
import type { Socket } from 'node:net';
import { RequestError, RequestParser, type RequestHead } from './request-parser.js';
import { RequestAbortedError, ServerRequest, type BodySource } from './server-request.js';
import { ServerResponse, type ResponseSink } from './server-response.js';

/** What a connection needs from its server. */
export interface ConnectionHost {
  /** The `date` header's value, current to the second. */
  readonly date: string;
  /** A coarse clock (ms), advanced by the server's sweep. */
  readonly now: number;
  /** True once the server is closing: each connection closes after the exchange it is in. */
  readonly closing: boolean;
  onRequest(req: ServerRequest, res: ServerResponse): void;
  /** Takes over the socket of an upgrade request; undefined when upgrades are refused. */
  readonly onUpgrade: ((req: ServerRequest, socket: Socket, head: Buffer) => void) | undefined;
  /** The connection is closed or handed over. */
  forget(connection: Connection): void;
}

/** Pipelined bytes held while an answer is pending, past which the socket stops being read. */
const HELD_LIMIT = 64 * 1024;
/** Unread request body the connection reads and drops after the answer; past it, it closes. */
const DISCARD_LIMIT = 1024 * 1024;
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');

export class Connection implements BodySource, ResponseSink {
  readonly #parser: RequestParser;
  #req: ServerRequest | undefined;
  #res: ServerResponse | undefined;
  /** Bytes of the next request, read while the current one is being answered. */
  #held: Buffer | undefined;
  #inFeed = false;
  #discarded = -1;
  #upgrading = false;
  #closed = false;
  /** When the connection began to wait for the current request's head (coarse clock). */
  #waitingSince: number;
  /** True until the first request's head is read: a fresh connection is held to the headers timeout. */
  #fresh = true;

  constructor(
    readonly socket: Socket,
    private readonly host: ConnectionHost,
  ) {
    this.#waitingSince = host.now;
    this.#parser = new RequestParser({
      onHead: (head) => this.#onHead(head),
      onData: (chunk) => this.#onBody(chunk),
      onEnd: () => this.#onBodyEnd(),
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.#onClose());
  }

  get date(): string {
    return this.host.date;
  }

  /**
   * Called by the server's sweep: closes a connection idle past `keepAliveMs`, or one whose
   * request head is not in after `headersMs` (408).
   */
  sweep(now: number, headersMs: number, keepAliveMs: number): void {
    if (this.#req || this.#closed) return;
    if (this.#parser.idle && !this.#fresh) {
      if (now - this.#waitingSince > keepAliveMs) this.socket.destroy();
    } else if (now - this.#waitingSince > headersMs) {
      this.#refuse(new RequestError(408, `the request head did not arrive within ${Math.round(headersMs / 1000)} s`));
    }
  }

  /** Closes the connection now if it is between requests; otherwise after the current answer. */
  closeIfIdle(): void {
    if (!this.#req) this.socket.destroy();
    else if (this.#res && !this.#res.headersSent) this.#res.keepAlive = false;
  }

  resumeBody(): void {
    if (!this.#held && !this.#closed) this.socket.resume();
  }

  pauseBody(): void {
    this.socket.pause();
  }

  responseDone(): void {
    this.#settle();
  }

  #onData(chunk: Buffer): void {
    if (this.#held) {
      this.#held = Buffer.concat([this.#held, chunk]);
      if (this.#held.length > HELD_LIMIT) this.socket.pause();
      return;
    }
    if (!this.#req && this.#parser.idle) this.#waitingSince = this.host.now;
    this.#feed(chunk);
  }

  #feed(chunk: Buffer): void {
    this.#inFeed = true;
    try {
      let at = 0;
      while (at < chunk.length && !this.#closed) {
        if (this.#req && this.#parser.done) {
          // The next request is here before this one is answered: it waits, and so does the socket.
          this.#held = at === 0 ? chunk : chunk.subarray(at);
          this.socket.pause();
          return;
        }
        at += this.#parser.execute(at === 0 ? chunk : chunk.subarray(at));
        if (this.#upgrading) return this.#handOver(chunk.subarray(at));
        this.#settle();
      }
    } catch (err) {
      this.#refuse(err);
    } finally {
      this.#inFeed = false;
    }
  }

  #onHead(head: RequestHead): boolean {
    this.#fresh = false;
    const keepAlive = head.keepAlive && !this.host.closing;
    const req = new ServerRequest(head, this.socket.remoteAddress ?? '', this);
    this.#req = req;
    if (head.upgrade && this.host.onUpgrade) {
      this.#upgrading = true;
      return false;
    }
    const res = new ServerResponse(this, head.method, head.minor, keepAlive);
    this.#res = res;
    if (head.expectContinue && head.framing !== 'none') this.socket.write(CONTINUE);
    this.host.onRequest(req, res);
    return true;
  }

  #onBody(chunk: Buffer): void {
    if (this.#discarded >= 0) {
      this.#discarded += chunk.length;
      if (this.#discarded > DISCARD_LIMIT) this.socket.destroy();
      return;
    }
    this.#req!.pushBody(chunk);
  }

  #onBodyEnd(): void {
    if (this.#discarded < 0) this.#req!.endBody();
  }

  /** Moves on once the current exchange is over: closes, drops the rest of the body, or starts the next request. */
  #settle(): void {
    const res = this.#res;
    if (!res?.finished || this.#closed) return;
    if (!res.keepAlive || this.host.closing) {
      this.#closed = true;
      this.socket.end();
      return;
    }
    if (!this.#parser.done) {
      // Answered before the body was read (a 404, a 413): the rest of the body is read and dropped.
      if (this.#discarded < 0) {
        this.#discarded = 0;
        this.#req?.failBody(new RequestAbortedError('the response was sent before the request body was read'));
        this.socket.resume();
      }
      return;
    }
    this.#req = undefined;
    this.#res = undefined;
    this.#discarded = -1;
    this.#parser.next();
    this.#waitingSince = this.host.now;
    if (this.#inFeed) return;
    const held = this.#held;
    this.#held = undefined;
    this.socket.resume();
    if (held) this.#feed(held);
  }

  #handOver(rest: Buffer): void {
    const socket = this.socket;
    // Paused, so that nothing the client sends is lost before the new owner starts reading.
    socket.pause();
    socket.removeAllListeners('data');
    socket.removeAllListeners('end');
    socket.removeAllListeners('error');
    socket.removeAllListeners('close');
    this.#closed = true;
    this.host.forget(this);
    this.host.onUpgrade!(this.#req!, socket, rest);
  }

  /** Answers a request that cannot be read (or the client that sent nothing in time) and closes. */
  #refuse(err: unknown): void {
    const res = this.#res;
    const req = this.#req;
    req?.failBody(new RequestAbortedError(err instanceof Error ? err.message : String(err)));
    if (!(err instanceof RequestError) || (res && res.headersSent) || this.#closed) {
      this.socket.destroy();
      return;
    }
    this.#closed = true;
    res?.abandon();
    const body = Buffer.from(JSON.stringify({ error: { code: 'LL_BAD_REQUEST', message: `Bad request: ${err.message}` } }));
    const head = `HTTP/1.1 ${err.status} ${statusText(err.status)}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\ndate: ${this.host.date}\r\nconnection: close\r\n\r\n`;
    this.socket.end(Buffer.concat([Buffer.from(head, 'latin1'), body]));
    // A client that neither reads nor closes is not waited for.
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  #onEnd(): void {
    // The client will send nothing more. As with node:http, that means it has gone: a request
    // not yet answered is abandoned (its handler sees the abort), and the connection closes.
    if (this.#closed) return;
    this.#closed = true;
    const res = this.#res;
    if (res && !res.finished) {
      this.#req?.failBody(new RequestAbortedError('the client closed the connection before it was answered'));
      res.abandon();
      this.socket.destroy();
      return;
    }
    this.socket.end();
  }

  #onClose(): void {
    this.#closed = true;
    this.#req?.failBody(new RequestAbortedError('the client closed the connection before the request body ended'));
    this.#res?.abandon();
    this.host.forget(this);
  }
}

function statusText(status: number): string {
  switch (status) {
    case 408:
      return 'Request Timeout';
    case 417:
      return 'Expectation Failed';
    case 431:
      return 'Request Header Fields Too Large';
    case 501:
      return 'Not Implemented';
    case 505:
      return 'HTTP Version Not Supported';
    default:
      return 'Bad Request';
  }
}
