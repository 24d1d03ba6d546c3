// An HTTP/1.1 response parser for the proxy's upstream connections: status line and headers,
// then the body by its framing (content-length, chunked, or until close). Strict about what could
// be read two ways (RFC 9112 §6.3); a child that sends something else gets a clear error.
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
const DIGITS = /^[0-9]+$/;
const HEX = /^[0-9a-fA-F]{1,12}$/;
const HEX_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX_VALUE['0123456789abcdef'.charCodeAt(i)] = i;
  HEX_VALUE['0123456789ABCDEF'.charCodeAt(i)] = i;
}

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
  #keepAliveParams: string | undefined;
  #keepAliveMs: number | undefined;

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
          at = this.#readChunkSize(chunk, at);
          break;
        case State.Trailers:
          // Almost always no trailers: the empty line that ends the body.
          if (this.#line === '' && chunk[at] === 13 && chunk[at + 1] === 10) {
            at += 2;
            this.#end();
          } else {
            at = this.#readLine(chunk, at);
          }
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
    // One pass over the lines by index: no split, no per-line regex.
    for (let at = lineEnd + 1; at < text.length; ) {
      let next = text.indexOf('\n', at);
      if (next < 0) next = text.length;
      const stop = text.charCodeAt(next - 1) === 13 ? next - 1 : next;
      const first = text.charCodeAt(at);
      if (first === 32 || first === 9) throw new MalformedResponseError('it folded a header over several lines (obsolete line folding is not accepted)');
      let colon = at;
      while (colon < stop) {
        const c = text.charCodeAt(colon);
        if (c === 58) break;
        if (c >= 128 || TOKEN[c] !== 1) throw new MalformedResponseError(`a header line does not start with a valid name: ${JSON.stringify(text.slice(at, Math.min(stop, at + 80)))}`);
        colon++;
      }
      if (colon === at || colon === stop) throw new MalformedResponseError(`a header line has no name: ${JSON.stringify(text.slice(at, Math.min(stop, at + 80)))}`);
      let vs = colon + 1;
      let ve = stop;
      while (vs < ve && (text.charCodeAt(vs) === 32 || text.charCodeAt(vs) === 9)) vs++;
      while (ve > vs && (text.charCodeAt(ve - 1) === 32 || text.charCodeAt(ve - 1) === 9)) ve--;
      for (let k = vs; k < ve; k++) {
        const c = text.charCodeAt(k);
        if ((c < 32 && c !== 9) || c === 127) throw new MalformedResponseError(`header '${text.slice(at, colon).toLowerCase()}' has a control character in its value`);
      }
      const name = text.slice(at, colon).toLowerCase();
      const value = text.slice(vs, ve);
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
      const lower = connection.toLowerCase();
      const tokens = lower === 'keep-alive' || lower === 'close' ? [lower] : lower.split(',').map((t) => t.trim());
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
      const codings = transferEncoding === 'chunked' ? ['chunked'] : transferEncoding.toLowerCase().split(',').map((t) => t.trim());
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

  // A size line wholly inside this chunk, with no extension, is read in place; anything else
  // (split across reads, extensions, odd spacing) goes through the general line reader.
  #readChunkSize(chunk: Buffer, at: number): number {
    if (this.#line === '') {
      let size = 0;
      let k = at;
      const limit = Math.min(chunk.length, at + 12);
      for (; k < limit; k++) {
        const d = HEX_VALUE[chunk[k]!]!;
        if (d < 0) break;
        size = size * 16 + d;
      }
      if (k > at && k < chunk.length) {
        const c = chunk[k];
        const after = c === 10 ? k + 1 : c === 13 && chunk[k + 1] === 10 ? k + 2 : -1;
        if (after > 0) {
          this.#remaining = size;
          this.#state = size === 0 ? State.Trailers : State.ChunkData;
          return after;
        }
      }
    }
    return this.#readLine(chunk, at);
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
    let sizeEnd = semi < 0 ? line.length : semi;
    // Only spaces and tabs may stand between the size and an extension (RFC 9112 §7.1.1).
    while (sizeEnd > 0 && (line.charCodeAt(sizeEnd - 1) === 32 || line.charCodeAt(sizeEnd - 1) === 9)) sizeEnd--;
    const size = line.slice(0, sizeEnd);
    if (!HEX.test(size)) throw new MalformedResponseError(`a chunk size of its chunked body is not a hex number: ${JSON.stringify(line.slice(0, 40))}`);
    this.#remaining = parseInt(size, 16);
    this.#state = this.#remaining === 0 ? State.Trailers : State.ChunkData;
    return lf + 1;
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

function stripCr(line: string): string {
  return line.charCodeAt(line.length - 1) === 13 ? line.slice(0, -1) : line;
}

/** `timeout=N` (seconds) out of a keep-alive header's parameters, in ms. */
function keepAliveTimeout(params: string | undefined): number | undefined {
  if (params === undefined) return undefined;
  const m = /(?:^|[,;\s])timeout\s*=\s*(\d+)/i.exec(params);
  return m ? Number(m[1]) * 1000 : undefined;
}
