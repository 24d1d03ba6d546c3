// An HTTP/1.1 response parser for the proxy's upstream connections: status line and headers,
// then the body by its framing (content-length, chunked, or until close). Strict about what could
// be read two ways (RFC 9112 §6.3); a child that sends something else gets a clear error.
import type { HeaderPairs } from '../../instance/index.js';

/** Raised for a response that does not parse; its message says what was wrong. */
export class MalformedResponseError extends Error {
  override readonly name = 'MalformedResponseError';
}

/** How a response's body is delimited. */
export type BodyFraming = 'none' | 'length' | 'chunked' | 'close';

/** A parsed status line and header section. */
export interface ResponseHead {
  readonly status: number;
  /** Header pairs in the order received, names lower-cased, values with surrounding whitespace trimmed. */
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
const MAX_CHUNK_LINE = 4096;

const enum State {
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  Close,
  Done,
}

// Token characters of RFC 9110 §5.6.2, for header names.
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN[c.charCodeAt(0)] = 1;
// Control characters other than horizontal tab may not appear in a header value.
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9][0-9][0-9])(?: [^\x00-\x08\x0a-\x1f\x7f]*)?$/;
const DIGITS = /^[0-9]+$/;
const HEX = /^[0-9a-fA-F]{1,12}$/;
const CRLFCRLF = Buffer.from('\r\n\r\n');
const LFLF = Buffer.from('\n\n');

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
  #pending: Buffer | undefined;
  #remaining = 0;
  #line = '';
  #trailerBytes = 0;

  /** Readies the parser for the response to a request with method `method`. */
  expect(method: string, events: ResponseEvents): void {
    this.#events = events;
    this.#state = State.Head;
    this.#headRequest = method === 'HEAD';
    this.#pending = undefined;
    this.#remaining = 0;
    this.#line = '';
    this.#trailerBytes = 0;
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
      this.#state = State.Done;
      this.#events?.onEnd();
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
        case State.ChunkSize:
        case State.Trailers:
          at = this.#readLine(chunk, at);
          break;
        case State.ChunkData: {
          const take = Math.min(this.#remaining, chunk.length - at);
          this.#remaining -= take;
          this.#events!.onData(chunk.subarray(at, at + take));
          at += take;
          if (this.#remaining === 0) this.#state = State.ChunkDataEnd;
          break;
        }
        case State.ChunkDataEnd: {
          // CRLF after the data; a bare LF is accepted, anything else is not.
          const c = chunk[at]!;
          if (c === 13 && this.#line === '') {
            this.#line = '\r';
            at += 1;
          } else if (c === 10) {
            this.#line = '';
            this.#state = State.ChunkSize;
            at += 1;
          } else {
            throw new MalformedResponseError('a chunk of the chunked body is longer than its size line says');
          }
          break;
        }
        case State.Close:
          this.#events!.onData(at === 0 ? chunk : chunk.subarray(at));
          at = chunk.length;
          break;
      }
    }
    // A response with no body at all ends as soon as its head is read.
    return at;
  }

  #end(): void {
    this.#state = State.Done;
    this.#events!.onEnd();
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
    let end = buf.indexOf(CRLFCRLF);
    let sep = 4;
    if (end < 0) {
      end = buf.indexOf(LFLF);
      sep = 2;
    } else {
      const lf = buf.indexOf(LFLF);
      if (lf >= 0 && lf < end) {
        end = lf;
        sep = 2;
      }
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
      // 101 is only ever sent to an upgrade request, which does not come this way.
      if (head.status === 101) throw new MalformedResponseError('it answered 101 Switching Protocols to a request that asked for no upgrade');
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
        this.#state = State.ChunkSize;
        this.#line = '';
        break;
      case 'close':
        this.#state = State.Close;
        break;
    }
    return at + used;
  }

  #parseHead(text: string): ResponseHead {
    const lines = text.split('\n');
    const statusLine = stripCr(lines[0]!);
    const m = STATUS_LINE.exec(statusLine);
    if (!m) throw new MalformedResponseError(`its status line is not HTTP/1.x: ${JSON.stringify(statusLine.slice(0, 80))}`);
    const minor = m[1]!;
    const status = Number(m[2]);
    const headers: HeaderPairs = [];
    let contentLength: string | undefined;
    let transferEncoding: string | undefined;
    let connection: string | undefined;
    let keepAliveParams: string | undefined;
    for (let i = 1; i < lines.length; i++) {
      const line = stripCr(lines[i]!);
      const first = line.charCodeAt(0);
      if (first === 32 || first === 9) throw new MalformedResponseError('it folded a header over several lines (obsolete line folding is not accepted)');
      const colon = line.indexOf(':');
      if (colon <= 0) throw new MalformedResponseError(`a header line has no name: ${JSON.stringify(line.slice(0, 80))}`);
      for (let k = 0; k < colon; k++) {
        const c = line.charCodeAt(k);
        if (c >= 128 || TOKEN[c] !== 1) throw new MalformedResponseError(`a header name is not a valid token: ${JSON.stringify(line.slice(0, colon))}`);
      }
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (BAD_VALUE.test(value)) throw new MalformedResponseError(`header '${name}' has a control character in its value`);
      headers.push([name, value]);
      switch (name) {
        case 'content-length':
          contentLength = contentLength === undefined ? value : `${contentLength},${value}`;
          break;
        case 'transfer-encoding':
          transferEncoding = transferEncoding === undefined ? value : `${transferEncoding},${value}`;
          break;
        case 'connection':
          connection = connection === undefined ? value : `${connection},${value}`;
          break;
        case 'keep-alive':
          keepAliveParams = value;
          break;
      }
    }
    const tokens = connection === undefined ? undefined : connection.toLowerCase().split(',').map((t) => t.trim());
    let keepAlive = minor === '1' ? !tokens?.includes('close') : tokens?.includes('keep-alive') === true;
    let framing: BodyFraming;
    let length = -1;
    if (this.#headRequest || status < 200 || status === 204 || status === 304) {
      framing = 'none';
    } else if (transferEncoding !== undefined) {
      const codings = transferEncoding.toLowerCase().split(',').map((t) => t.trim());
      // Chunked must come last to delimit the body; otherwise the body runs until close.
      framing = codings[codings.length - 1] === 'chunked' ? 'chunked' : 'close';
      // A length beside a transfer coding is ignored, but the connection is not trusted after it.
      if (contentLength !== undefined || framing === 'close') keepAlive = false;
    } else if (contentLength !== undefined) {
      const values = contentLength.split(',').map((v) => v.trim());
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
    return { status, headers, framing, length, keepAlive, keepAliveTimeoutMs: keepAliveTimeout(keepAliveParams) };
  }

  // Reads one line of the chunked framing (a size line or a trailer line) a byte range at a time.
  #readLine(chunk: Buffer, at: number): number {
    const lf = chunk.indexOf(10, at);
    const upto = lf < 0 ? chunk.length : lf;
    this.#line += chunk.toString('latin1', at, upto);
    if (this.#state === State.Trailers) this.#trailerBytes += upto - at;
    if (this.#line.length > MAX_CHUNK_LINE && this.#state === State.ChunkSize) throw new MalformedResponseError('a chunk size line of its chunked body is too long');
    if (this.#trailerBytes > MAX_HEAD_BYTES) throw new MalformedResponseError(`its trailers are larger than ${MAX_HEAD_BYTES / 1024} KiB`);
    if (lf < 0) return chunk.length;
    const line = stripCr(this.#line);
    this.#line = '';
    if (this.#state === State.Trailers) {
      // Trailers are read and dropped: node:http would have to be asked for them up front.
      if (line === '') this.#end();
      return lf + 1;
    }
    const semi = line.indexOf(';');
    const size = (semi < 0 ? line : line.slice(0, semi)).trimEnd();
    if (!HEX.test(size)) throw new MalformedResponseError(`a chunk size of its chunked body is not a hex number: ${JSON.stringify(line.slice(0, 40))}`);
    this.#remaining = parseInt(size, 16);
    this.#state = this.#remaining === 0 ? State.Trailers : State.ChunkData;
    return lf + 1;
  }
}

function stripCr(line: string): string {
  return line.charCodeAt(line.length - 1) === 13 ? line.slice(0, -1) : line;
}

/** `timeout=N` (seconds) out of a keep-alive header's parameters, in ms. */
function keepAliveTimeout(params: string | undefined): number | undefined {
  if (params === undefined) return undefined;
  const m = /(?:^|[,;\s])timeout\s*=\s*(\d+)/i.exec(params);
  return m ? Number(m[1]) * 1000 : undefined;
}
