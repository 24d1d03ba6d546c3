// An HTTP/1.1 response parser for the proxy's upstream connections: status line and headers,
// then the body by its framing (content-length, chunked, or until close). Strict about what could
// be read two ways (RFC 9112 §6.3); a child that sends something else gets a clear error.
import { ChunkedDecoder, listTokens, readHeaderLine, type HeaderLine } from '../../http1/index.js';
import { HOP_BY_HOP_HEADERS, type HeaderPairs } from '../../instance/index.js';

/** Raised for a response that does not parse; its message says what was wrong. */
export class MalformedResponseError extends Error {
  override readonly name = 'MalformedResponseError';
}

/** How a response's body is delimited. */
export type BodyFraming = 'none' | 'length' | 'chunked' | 'close';

/** A parsed status line and header section. */
export interface ResponseHead {
  readonly status: number;
  /**
   * End-to-end header pairs in the order received, names lower-cased, values with surrounding
   * whitespace trimmed; hop-by-hop ones (and those the `connection` header names) left out.
   */
  readonly headers: HeaderPairs;
  readonly framing: BodyFraming;
  /** Body length for `length` framing; otherwise -1. */
  readonly length: number;
  /** Whether the connection may carry another exchange after this one. */
  readonly keepAlive: boolean;
  /** The child's `keep-alive: timeout=N`, in ms; undefined when it gave none. */
  readonly keepAliveTimeoutMs: number | undefined;
}

/** What the parser reports as it reads. */
export interface ResponseEvents {
  onHead(head: ResponseHead): void;
  onData(chunk: Buffer): void;
  onEnd(): void;
}

/** Largest status line plus header section accepted, in bytes (node:http's own default is 16 KiB). */
export const MAX_HEAD_BYTES = 64 * 1024;

const enum State {
  Head,
  Length,
  Chunked,
  Close,
  Done,
}

const DIGITS = /^[0-9]+$/;

/**
 * Parses one response at a time from a connection's bytes. Call {@link expect} before each
 * exchange, then {@link execute} with each chunk read; events fire synchronously. After `onEnd`
 * the parser ignores nothing: {@link execute} returns how many bytes of the chunk it used, so the
 * caller can tell a child that sent more than one response's worth.
 */
export class ResponseParser {
  #events: ResponseEvents | undefined;
  #state: State = State.Done;
  #headRequest = false;
  #upgrade = false;
  #pending: Buffer | undefined;
  #remaining = 0;
  readonly #chunked = new ChunkedDecoder({
    subject: 'its chunked body',
    strict: false,
    maxTrailerBytes: MAX_HEAD_BYTES,
    fail: (_status, message) => new MalformedResponseError(message),
  });
  readonly #onData = (data: Buffer): void => this.#events!.onData(data);
  #keepAliveParams: string | undefined;
  #keepAliveMs: number | undefined;

  /**
   * Readies the parser for the response to a request with method `method`. For an `upgrade`
   * request a `101` is a final answer: `onHead` fires and parsing stops after its head.
   */
  expect(method: string, events: ResponseEvents, upgrade = false): void {
    this.#events = events;
    this.#state = State.Head;
    this.#headRequest = method === 'HEAD';
    this.#upgrade = upgrade;
    this.#pending = undefined;
    this.#remaining = 0;
  }

  /** True while the body runs until the connection closes; call {@link finish} at end of stream. */
  get readsUntilClose(): boolean {
    return this.#state === State.Close;
  }

  /** True once the whole response has been read. */
  get done(): boolean {
    return this.#state === State.Done;
  }

  /** The connection ended: completes a close-delimited body, or throws for a truncated response. */
  finish(): void {
    if (this.#state === State.Close) {
      this.#end();
      return;
    }
    if (this.#state === State.Done) return;
    throw new MalformedResponseError(this.#state === State.Head ? 'the connection closed before the response headers' : 'the connection closed in the middle of the response body');
  }

  /** Feeds bytes read from the connection; returns how many were used (less only after the end). */
  execute(chunk: Buffer): number {
    let at = 0;
    while (at < chunk.length && this.#state !== State.Done) {
      switch (this.#state) {
        case State.Head:
          at = this.#readHead(chunk, at);
          break;
        case State.Length: {
          const take = Math.min(this.#remaining, chunk.length - at);
          this.#remaining -= take;
          this.#events!.onData(at === 0 && take === chunk.length ? chunk : chunk.subarray(at, at + take));
          at += take;
          if (this.#remaining === 0) this.#end();
          break;
        }
        case State.Chunked:
          at = this.#chunked.execute(chunk, at, this.#onData);
          if (this.#chunked.done) this.#end();
          break;
        case State.Close:
          this.#events!.onData(at === 0 ? chunk : chunk.subarray(at));
          at = chunk.length;
          break;
      }
    }
    // A response with no body at all ends as soon as its head is read.
    return at;
  }

  // The exchange is let go of as the response ends: a keep-alive connection that then sits idle
  // must not keep its last request, and all that it reaches, alive until it is used again.
  #end(): void {
    const events = this.#events!;
    this.#events = undefined;
    this.#state = State.Done;
    events.onEnd();
  }

  #readHead(chunk: Buffer, at: number): number {
    let buf: Buffer;
    let base: number;
    if (this.#pending) {
      buf = Buffer.concat([this.#pending, at === 0 ? chunk : chunk.subarray(at)]);
      base = this.#pending.length;
      this.#pending = undefined;
    } else {
      buf = at === 0 ? chunk : chunk.subarray(at);
      base = 0;
    }
    // The head ends at the first empty line: a LF followed by LF or by CRLF.
    let end = -1;
    let sep = 0;
    for (let i = buf.indexOf(10); i >= 0 && i < buf.length - 1; i = buf.indexOf(10, i + 1)) {
      const c = buf[i + 1];
      if (c === 10) {
        end = i;
        sep = 2;
        break;
      }
      if (c === 13 && buf[i + 2] === 10) {
        end = i;
        sep = 3;
        break;
      }
      if (i > MAX_HEAD_BYTES) break;
    }
    if (end < 0) {
      if (buf.length > MAX_HEAD_BYTES) throw new MalformedResponseError(`its response headers are larger than ${MAX_HEAD_BYTES / 1024} KiB`);
      this.#pending = Buffer.from(buf);
      return chunk.length;
    }
    if (end > MAX_HEAD_BYTES) throw new MalformedResponseError(`its response headers are larger than ${MAX_HEAD_BYTES / 1024} KiB`);
    const used = end + sep - base; // bytes of `chunk` (from `at`) that belong to this head
    const head = this.#parseHead(buf.toString('latin1', 0, end));
    if (head.status < 200) {
      // 100 Continue, 103 Early Hints and the like: informational, the real response follows.
      // 101 is the final answer to an upgrade request, and the end of HTTP on this connection.
      if (head.status !== 101) return at + used;
      if (!this.#upgrade) throw new MalformedResponseError('it answered 101 Switching Protocols to a request that asked for no upgrade');
      this.#events!.onHead(head);
      this.#state = State.Done;
      return at + used;
    }
    this.#events!.onHead(head);
    switch (head.framing) {
      case 'none':
        this.#end();
        break;
      case 'length':
        this.#remaining = head.length;
        if (head.length === 0) this.#end();
        else this.#state = State.Length;
        break;
      case 'chunked':
        this.#chunked.reset();
        this.#state = State.Chunked;
        break;
      case 'close':
        this.#state = State.Close;
        break;
    }
    return at + used;
  }

  #parseHead(text: string): ResponseHead {
    let lineEnd = text.indexOf('\n');
    if (lineEnd < 0) lineEnd = text.length;
    const statusEnd = text.charCodeAt(lineEnd - 1) === 13 ? lineEnd - 1 : lineEnd;
    const status = statusCode(text, statusEnd);
    if (status < 0) throw new MalformedResponseError(`its status line is not HTTP/1.x: ${JSON.stringify(text.slice(0, Math.min(statusEnd, 80)))}`);
    const minor = text.charCodeAt(7) === 49 ? '1' : '0';
    const headers: HeaderPairs = [];
    let contentLength: string | undefined;
    let transferEncoding: string | undefined;
    let connection: string | undefined;
    let keepAliveParams: string | undefined;
    const line: HeaderLine = { name: '', value: '' };
    // One pass over the lines by index: no split, no per-line regex.
    for (let at = lineEnd + 1; at < text.length; ) {
      let next = text.indexOf('\n', at);
      if (next < 0) next = text.length;
      const stop = text.charCodeAt(next - 1) === 13 ? next - 1 : next;
      const bad = readHeaderLine(text, at, stop, line);
      if (bad !== undefined) throw new MalformedResponseError(bad);
      const { name, value } = line;
      at = next + 1;
      switch (name) {
        case 'content-length':
          contentLength = contentLength === undefined ? value : `${contentLength},${value}`;
          break;
        case 'transfer-encoding':
          transferEncoding = transferEncoding === undefined ? value : `${transferEncoding},${value}`;
          continue;
        case 'connection':
          connection = connection === undefined ? value : `${connection},${value}`;
          continue;
        case 'keep-alive':
          keepAliveParams = value;
          continue;
      }
      // Headers about this connection are read above and not passed on.
      if (HOP_BY_HOP_HEADERS.has(name)) continue;
      headers.push([name, value]);
    }
    let keepAlive: boolean;
    let filtered = headers;
    if (connection === undefined) keepAlive = minor === '1';
    else {
      const tokens = listTokens(connection);
      keepAlive = minor === '1' ? !tokens.includes('close') : tokens.includes('keep-alive');
      // Headers the connection header names are hop-by-hop too (RFC 9110 §7.6.1).
      const named = tokens.filter((t) => t !== '' && t !== 'close' && t !== 'keep-alive' && t !== 'content-length');
      if (named.length > 0) filtered = headers.filter(([n]) => !named.includes(n));
    }
    // Both framings named, or a transfer coding from an HTTP/1.0 server: whatever is read, the
    // connection is not trusted with another exchange (RFC 9112 §6.1, §6.3).
    if (transferEncoding !== undefined && (contentLength !== undefined || minor === '0')) keepAlive = false;
    let framing: BodyFraming;
    let length = -1;
    if (this.#headRequest || status < 200 || status === 204 || status === 304) {
      framing = 'none';
    } else if (transferEncoding !== undefined) {
      const codings = listTokens(transferEncoding);
      // Chunked must come last to delimit the body; otherwise the body runs until close.
      framing = codings[codings.length - 1] === 'chunked' ? 'chunked' : 'close';
      // A length beside a transfer coding is ignored, but the connection is not trusted after it.
      if (contentLength !== undefined || framing === 'close') keepAlive = false;
      if (contentLength !== undefined) filtered = filtered.filter(([n]) => n !== 'content-length');
    } else if (contentLength !== undefined) {
      const values = contentLength.indexOf(',') < 0 ? [contentLength] : contentLength.split(',').map((v) => v.trim());
      const firstValue = values[0]!;
      if (!DIGITS.test(firstValue) || values.some((v) => v !== firstValue) || firstValue.length > 15) {
        throw new MalformedResponseError(`its content-length is not one valid number: ${JSON.stringify(contentLength.slice(0, 80))}`);
      }
      framing = 'length';
      length = Number(firstValue);
    } else {
      framing = 'close';
      keepAlive = false;
    }
    // Children send the same keep-alive parameters every time; parse them once per connection.
    if (keepAliveParams !== this.#keepAliveParams) {
      this.#keepAliveParams = keepAliveParams;
      this.#keepAliveMs = keepAliveTimeout(keepAliveParams);
    }
    return { status, headers: filtered, framing, length, keepAlive, keepAliveTimeoutMs: this.#keepAliveMs };
  }
}

/** The status code of an `HTTP/1.x NNN reason` line ending at `end`, or -1 when it is not one. */
function statusCode(text: string, end: number): number {
  if (end < 12 || !text.startsWith('HTTP/1.') || text.charCodeAt(8) !== 32) return -1;
  const minor = text.charCodeAt(7);
  if (minor !== 48 && minor !== 49) return -1;
  const a = text.charCodeAt(9) - 48;
  const b = text.charCodeAt(10) - 48;
  const c = text.charCodeAt(11) - 48;
  if (a < 1 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) return -1;
  if (end > 12) {
    if (text.charCodeAt(12) !== 32) return -1;
    for (let k = 13; k < end; k++) {
      const ch = text.charCodeAt(k);
      if ((ch < 32 && ch !== 9) || ch === 127) return -1;
    }
  }
  return a * 100 + b * 10 + c;
}

/** `timeout=N` (seconds) out of a keep-alive header's parameters, in ms. */
function keepAliveTimeout(params: string | undefined): number | undefined {
  if (params === undefined) return undefined;
  const m = /(?:^|[,;\s])timeout\s*=\s*(\d+)/i.exec(params);
  return m ? Number(m[1]) * 1000 : undefined;
}
