// The answer to one request: status line and headers written in one piece with the body's framing,
// then the body whole (one write) or streamed with the socket's backpressure.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { isToken } from './token.js';

/** What a response needs from its connection. */
export interface ResponseSink {
  readonly socket: Socket;
  /** The `date` header's value, kept current to the second. */
  readonly date: string;
  /** The response is written out (or given up); the connection decides what comes next. */
  responseDone(): void;
}

// Values of tab, visible ASCII and obs-text only (no CR, LF, NUL); names must be tokens.
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const REASONS: string[] = [];
for (const [code, text] of Object.entries(STATUS_CODES)) REASONS[Number(code)] = text ?? '';
/** A whole body up to this size is copied behind its head for one write; larger ones go as a second buffer. */
const COPY_LIMIT = 16 * 1024;
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');
/** Listens for a response body's errors once nobody else does. */
const IGNORE = (): void => {};

/**
 * One response. Headers are given flat (`[name, value, name, value…]`) and must not carry the
 * message's framing or connection headers: `content-length`, `transfer-encoding` and
 * `connection` are written here, from the body actually sent and the connection's state.
 */
export class ServerResponse {
  /** True once the status line and headers are written. */
  headersSent = false;
  /** True once the response is written whole. */
  finished = false;
  /** True once the exchange is over: written whole, or the connection closed first. */
  closed = false;
  /** Called once when the exchange is over; `finished` says whether the response was written whole. */
  onClose: ((finished: boolean) => void) | undefined;

  constructor(
    private readonly sink: ResponseSink,
    /** The request's method: the answer to a HEAD carries no body. */
    readonly method: string,
    /** The request's HTTP minor version: HTTP/1.0 gets no chunked framing. */
    private readonly minor: 0 | 1,
    /** Whether the connection stays open after this exchange; the connection may still close it. */
    public keepAlive: boolean,
  ) {}

  /**
   * Writes a whole response. `lengthOfHead` is the `content-length` a body-less answer (to HEAD,
   * or a 304) reports for the body a GET would get (none when undefined); other answers report
   * `body.length`, and 204 none.
   * Throws, writing nothing, when the status or a header could not be written as it is.
   */
  send(status: number, headers: readonly string[], body: Buffer, lengthOfHead?: string): void {
    if (this.headersSent) throw new Error('the response has already been sent');
    // The client left before anything was sent: there is no one to answer.
    if (this.closed) return;
    const bodyless = this.#bodyless(status);
    let head = this.#head(status, headers);
    if (!bodyless) head += `content-length: ${body.length}\r\n`;
    else if (status !== 204 && lengthOfHead !== undefined) {
      if (!/^[0-9]{1,15}$/.test(lengthOfHead)) throw new Error(`content-length ${JSON.stringify(lengthOfHead)} is not a number`);
      head += `content-length: ${lengthOfHead}\r\n`;
    }
    head += this.#connectionLine();
    const socket = this.sink.socket;
    if (bodyless || body.length === 0) socket.write(head, 'latin1');
    else if (body.length <= COPY_LIMIT) {
      const out = Buffer.allocUnsafe(head.length + body.length);
      out.write(head, 0, 'latin1');
      body.copy(out, head.length);
      socket.write(out);
    } else {
      socket.cork();
      socket.write(head, 'latin1');
      socket.write(body);
      socket.uncork();
    }
    this.headersSent = true;
    this.#finish();
  }

  /**
   * Writes the head now and then `body` as it comes: framed by `length` when it is known (a body
   * that turns out shorter or longer closes the connection), otherwise chunked, or for an
   * HTTP/1.0 client until the connection closes. Throws, writing nothing, like {@link send}.
   */
  stream(status: number, headers: readonly string[], body: Readable, length?: string): void {
    if (this.headersSent) throw new Error('the response has already been sent');
    // The body is the server's now: an error it raises once the exchange is over (the client
    // left, the listeners below are gone) is dropped rather than left to end the process.
    body.on('error', IGNORE);
    if (this.closed) {
      body.destroy();
      return;
    }
    const bodyless = this.#bodyless(status);
    let head = this.#head(status, headers);
    let expected = -1;
    let chunked = false;
    if (length !== undefined) {
      if (!/^[0-9]{1,15}$/.test(length)) throw new Error(`content-length ${JSON.stringify(length)} is not a number`);
      if (status !== 204) head += `content-length: ${length}\r\n`;
      expected = Number(length);
    } else if (!bodyless) {
      if (this.minor === 1) {
        head += 'transfer-encoding: chunked\r\n';
        chunked = true;
      } else {
        this.keepAlive = false;
      }
    }
    head += this.#connectionLine();
    const socket = this.sink.socket;
    socket.write(head, 'latin1');
    this.headersSent = true;
    if (bodyless) {
      body.destroy();
      this.#finish();
      return;
    }
    let sent = 0;
    const onDrain = (): void => {
      body.resume();
    };
    const cleanup = (): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onError);
      socket.off('drain', onDrain);
    };
    const onData = (data: Buffer | string): void => {
      const chunk = typeof data === 'string' ? Buffer.from(data) : data;
      if (chunk.length === 0 || this.closed) return;
      sent += chunk.length;
      if (expected >= 0 && sent > expected) return onError();
      let flushed: boolean;
      if (chunked) {
        socket.cork();
        socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
        socket.write(chunk);
        flushed = socket.write(CRLF);
        socket.uncork();
      } else {
        flushed = socket.write(chunk);
      }
      if (!flushed) {
        body.pause();
        socket.once('drain', onDrain);
      }
    };
    const onEnd = (): void => {
      cleanup();
      if (this.closed) return;
      if (expected >= 0 && sent !== expected) return onError();
      if (chunked) socket.write(LAST_CHUNK);
      this.#finish();
    };
    // A body that fails, or does not match its length, leaves the client a response it cannot
    // complete: the connection is closed so that it cannot mistake what it got for the whole.
    const onError = (): void => {
      cleanup();
      if (!body.destroyed) body.destroy();
      this.destroy();
    };
    this.#onAbandon = () => {
      cleanup();
      if (!body.destroyed) body.destroy();
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    // Destroyed without an error and without ending: as cut short as an error.
    body.once('close', onError);
  }

  /** Closes the connection, whatever was written: the client sees a response cut short. */
  destroy(): void {
    this.sink.socket.destroy();
  }

  #onAbandon: (() => void) | undefined;

  /** Called by the connection when it closes before the response was written whole. */
  abandon(): void {
    if (this.closed) return;
    this.closed = true;
    this.#onAbandon?.();
    this.onClose?.(false);
  }

  #finish(): void {
    if (this.closed) return;
    this.finished = true;
    this.closed = true;
    this.sink.responseDone();
    this.onClose?.(true);
  }

  #bodyless(status: number): boolean {
    return this.method === 'HEAD' || status === 204 || status === 304;
  }

  #head(status: number, headers: readonly string[]): string {
    return responseHead(status, headers, this.sink.date);
  }


  #connectionLine(): string {
    if (!this.keepAlive) return 'connection: close\r\n\r\n';
    return this.minor === 0 ? 'connection: keep-alive\r\n\r\n' : '\r\n';
  }
}

/**
 * A whole response that ends its connection: head, `content-length`, `connection: close`, body.
 * For answers written straight to a socket (refusals), outside any ServerResponse.
 */
export function closingResponse(status: number, headers: readonly string[], body: Buffer, date: string): Buffer {
  const head = `${responseHead(status, headers, date)}content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/**
 * A status line and header lines (no final empty line), with a `date` unless the headers carry
 * one, as node:http does. Throws, naming the fault, for a status that is not a final one, a name
 * that is not a token, or a value with CR, LF, NUL or another character that cannot be sent.
 */
export function responseHead(status: number, headers: readonly string[], date: string): string {
  if (!Number.isInteger(status) || status < 200 || status > 999) throw new Error(`status ${status} cannot be sent as a final response`);
  let head = `HTTP/1.1 ${status} ${REASONS[status] ?? 'Unknown'}\r\n`;
  let dated = false;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (!isToken(name)) throw new Error(`header name ${JSON.stringify(name.slice(0, 60))} is not a token`);
    if (BAD_VALUE.test(value)) throw new Error(`header '${name}' has a character that cannot be sent in its value`);
    if (name.length === 4 && name.toLowerCase() === 'date') dated = true;
    head += `${name}: ${value}\r\n`;
  }
  return dated ? head : `${head}date: ${date}\r\n`;
}
