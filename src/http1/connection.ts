// One client connection of the gateway's HTTP/1.1 server: reads requests one at a time, hands each
// to the handler, holds pipelined bytes until the answer before them is written (and, for a client
// that does not read its answers, until they drain), and closes the connection when the client,
// the protocol or the server asks.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { RequestError, RequestParser, type RequestHead } from './request-parser.js';
import { RequestAbortedError, ServerRequest, type BodySource } from './server-request.js';
import { closingResponse, ServerResponse, type ResponseSink } from './server-response.js';

/** An answer to a request that cannot be read: headers flat (`[name, value…]`, no framing) and body. */
export interface Refusal {
  headers: readonly string[];
  body: Buffer;
}

/** What a connection needs from its server. */
export interface ConnectionHost {
  /** The `date` header's value, current to the second. */
  readonly date: string;
  /** A coarse clock (ms), advanced by the server's sweep; never ahead of the real time. */
  readonly now: number;
  /** True once the server is closing: each connection closes after the exchange it is in. */
  readonly closing: boolean;
  /**
   * Time for a request head to arrive, and for an unread body to be dropped after its answer;
   * 0 for no limit.
   */
  readonly headersMs: number;
  /** Time an idle connection is kept between requests; 0 for no limit. */
  readonly keepAliveMs: number;
  /** How far behind the real time the coarse clock may be: one sweep. */
  readonly sweepMs: number;
  onRequest(req: ServerRequest, res: ServerResponse): void;
  /** The headers (flat, no framing) and body of the answer to a request that cannot be read. */
  refusal(status: number, message: string): Refusal;
  /** Takes over the socket of an upgrade request; undefined when upgrades are refused. */
  readonly onUpgrade: ((req: ServerRequest, socket: Socket, head: Buffer) => void) | undefined;
  /** The connection is closed, or handed over (then `upgraded` is its socket). */
  forget(connection: Connection, upgraded?: Socket): void;
}


/** Unread request body the connection reads and drops after the answer; past it, it closes. */
const DISCARD_LIMIT = 1024 * 1024;
/** Time a connection we ended may wait for the client's FIN before it is cut. */
const LINGER_MS = 5000;
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');

export class Connection implements BodySource, ResponseSink {
  readonly #parser: RequestParser;
  #req: ServerRequest | undefined;
  #res: ServerResponse | undefined;
  /** Bytes of the next request, read while the current one is being answered. */
  #held: Buffer | undefined;
  /** Waiting for the client to read its answers before the next request is parsed. */
  #blocked = false;
  #inFeed = false;
  #upgrading = false;
  /** No more requests are read: the connection is ending or gone. */
  #closed = false;
  /** Bytes of an unread body dropped since its answer was sent; -1 when not dropping. */
  #discarded = -1;
  // Times on the host's coarse clock; -1 when not in that phase. A new connection waits for its
  // first head from the moment it connects.
  #idleSince = -1;
  #headSince: number;
  #discardSince = -1;
  #lingerSince = -1;

  constructor(
    readonly socket: Socket,
    private readonly host: ConnectionHost,
  ) {
    this.#headSince = host.now;
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
   * Called by the server's sweep with the real time: closes a connection idle past the keep-alive
   * limit, one whose request head is not in within the headers limit (408), one still sending an
   * unread body that long after its answer, and one we ended whose client has not closed.
   */
  sweep(now: number): void {
    const { headersMs, keepAliveMs, sweepMs } = this.host;
    const over = (since: number, limit: number): boolean => limit > 0 && since >= 0 && now - since > limit + sweepMs;
    if (this.#lingerSince >= 0) {
      if (over(this.#lingerSince, LINGER_MS)) this.socket.destroy();
      return;
    }
    if (this.#closed) return;
    if (this.#discarded >= 0) {
      if (over(this.#discardSince, headersMs)) this.socket.destroy();
      return;
    }
    if (this.#req) return;
    if (this.#headSince >= 0) {
      if (over(this.#headSince, headersMs)) this.#timeOut(headersMs);
    } else if (over(this.#idleSince, keepAliveMs)) {
      this.socket.destroy();
    }
  }

  /** Closes the connection now if it is between requests; otherwise after the current answer. */
  closeIfIdle(): void {
    if (!this.#req) this.socket.destroy();
    else if (this.#res && !this.#res.headersSent) this.#res.keepAlive = false;
  }

  resumeBody(): void {
    if (!this.#held && !this.#blocked && !this.#closed) this.socket.resume();
  }

  pauseBody(): void {
    this.socket.pause();
  }

  responseDone(): void {
    this.#settle();
  }

  #onData(chunk: Buffer): void {
    // The socket is paused while bytes are held; a read already under way may still land here.
    if (this.#held || this.#blocked) {
      this.#held = this.#held ? Buffer.concat([this.#held, chunk]) : chunk;
      this.socket.pause();
      return;
    }
    this.#feed(chunk);
  }

  #feed(chunk: Buffer): void {
    this.#inFeed = true;
    try {
      let at = 0;
      while (at < chunk.length && !this.#closed) {
        if ((this.#req && this.#parser.done) || this.#blocked) {
          // The next request is here before this one is answered (or before the client read the
          // answers it has): it waits, and so does the socket.
          this.#held = at === 0 ? chunk : chunk.subarray(at);
          this.socket.pause();
          return;
        }
        at += this.#parser.execute(at === 0 ? chunk : chunk.subarray(at));
        if (this.#upgrading) return this.#handOver(chunk.subarray(at));
        this.#settle();
      }
      // Part of a head is in: from now the headers timeout runs (empty lines do not count).
      if (!this.#req && this.#headSince < 0 && !this.#parser.idle) this.#headSince = this.host.now;
    } catch (err) {
      this.#refuse(err);
    } finally {
      this.#inFeed = false;
    }
  }

  #onHead(head: RequestHead): boolean {
    this.#headSince = -1;
    const req = new ServerRequest(head, this.socket.remoteAddress ?? '', this, (this.socket as Partial<TLSSocket>).encrypted === true ? 'https' : 'http');
    this.#req = req;
    if (head.upgrade && this.host.onUpgrade) {
      this.#upgrading = true;
      return false;
    }
    const res = new ServerResponse(this, head.method, head.minor, head.keepAlive && !this.host.closing);
    this.#res = res;
    if (head.expectContinue) this.socket.write(CONTINUE);
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
    if (!res.keepAlive || this.host.closing) return this.#end();
    if (!this.#parser.done) {
      // Answered before the body was read (a 404, a 413): the rest of the body is read and dropped.
      if (this.#discarded < 0) {
        this.#discarded = 0;
        this.#discardSince = this.host.now;
        this.#req?.failBody(new RequestAbortedError('the response was sent before the request body was read'));
        if (!this.#held && !this.#blocked) this.socket.resume();
      }
      return;
    }
    this.#req = undefined;
    this.#res = undefined;
    this.#discarded = -1;
    this.#parser.next();
    this.#idleSince = this.host.now;
    if (this.socket.writableNeedDrain) {
      // A client that pipelines without reading its answers gets no more parsed until it reads.
      this.#blocked = true;
      this.socket.pause();
      this.socket.once('drain', this.#unblock);
      return;
    }
    if (!this.#inFeed) this.#resumeHeld();
  }

  readonly #unblock = (): void => {
    this.#blocked = false;
    if (!this.#closed) this.#resumeHeld();
  };

  #resumeHeld(): void {
    const held = this.#held;
    this.#held = undefined;
    this.socket.resume();
    if (held) this.#feed(held);
  }

  /** Ends our side once the answer is out; the client has LINGER_MS to close its side. */
  #end(): void {
    this.#closed = true;
    this.#lingerSince = this.host.now;
    this.socket.end();
  }

  #handOver(rest: Buffer): void {
    const socket = this.socket;
    // Paused, so that nothing the client sends is lost before the new owner starts reading.
    socket.pause();
    socket.removeAllListeners('data');
    socket.removeAllListeners('end');
    socket.removeAllListeners('error');
    socket.removeAllListeners('close');
    // The new owner adds its own handlers; until then, and whatever it does, an error on the
    // socket only closes it.
    socket.on('error', () => socket.destroy());
    this.#closed = true;
    this.host.forget(this, socket);
    this.host.onUpgrade!(this.#req!, socket, rest);
  }

  #timeOut(limitMs: number): void {
    this.#refuse(new RequestError(408, `the request head did not arrive within ${limitMs} ms`));
  }

  /** Answers a request that cannot be read (or a client that sent nothing in time) and closes. */
  #refuse(err: unknown): void {
    const res = this.#res;
    this.#req?.failBody(new RequestAbortedError(err instanceof Error ? err.message : String(err)));
    if (!(err instanceof RequestError) || (res && res.headersSent) || this.#closed) {
      this.socket.destroy();
      return;
    }
    res?.abandon();
    const { headers, body } = this.host.refusal(err.status, err.message);
    this.socket.write(closingResponse(err.status, headers, body, this.host.date));
    this.#end();
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
    this.socket.off('drain', this.#unblock);
    this.#req?.failBody(new RequestAbortedError('the client closed the connection before the request body ended'));
    this.#res?.abandon();
    this.host.forget(this);
  }
}
