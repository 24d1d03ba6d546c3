// An HTTP/1.1 request parser for the gateway: request line and headers, then the body by its
// framing (content-length or chunked). Strict where a lenient reading could be read a second way
// by the next hop (RFC 9112 §2.2, §6.1, §6.3, §11.2): CRLF only, no folding, one framing.
import type { IncomingHttpHeaders } from 'node:http';
import { ChunkedDecoder } from './chunked-decoder.js';
import { readHeaderLine, type HeaderLine } from './header-line.js';
import { isToken, listTokens } from './token.js';

/** A request that cannot be read; `status` is what the client is told (400, 431, 501, 505…). */
export class RequestError extends Error {
  override readonly name = 'RequestError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A parsed request line and header section. */
export interface RequestHead {
  readonly method: string;
  /** Origin-form path and query; an absolute-form target is reduced to its path (its authority becomes `host`). */
  readonly url: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: 0 | 1;
  /**
   * Lower-case names, as node:http gives them: a repeated header joined with ", " (cookie with
   * "; "), set-cookie as an array, and repeats of single-valued ones (user-agent…) dropped.
   */
  readonly headers: IncomingHttpHeaders;
  /** Whether the client keeps the connection for another request. */
  readonly keepAlive: boolean;
  /** The client asks to switch protocols (`connection: upgrade` with an `upgrade` header, HTTP/1.1, no body). */
  readonly upgrade: boolean;
  /** The client waits for `100 Continue` before it sends its body (HTTP/1.1, with a body): send one. */
  readonly expectContinue: boolean;
  /** Whether a body follows: `length` bytes, or chunked. */
  readonly framing: 'none' | 'length' | 'chunked';
  /** Body length for `length` framing; otherwise -1. */
  readonly length: number;
}

/** What the parser reports as it reads. */
export interface RequestEvents {
  /** The head is read; return false to stop parsing after it (an upgrade takes over the bytes). */
  onHead(head: RequestHead): boolean;
  onData(chunk: Buffer): void;
  onEnd(): void;
}

/** Largest request line plus header section accepted, in bytes (node:http's default too). */
export const MAX_REQUEST_HEAD_BYTES = 16 * 1024;
/** Most header lines accepted in one request. */
export const MAX_REQUEST_HEADERS = 256;

const enum State {
  Head,
  Length,
  Chunked,
  Done,
}

const CRLF2 = Buffer.from('\r\n\r\n', 'latin1');

/**
 * The headers object: its prototype has no prototype, so a header named `constructor` or
 * `__proto__` is an own property like any other, and unlike `Object.create(null)` objects V8
 * keeps it in fast mode (a header lookup is a hidden-class load, not a dictionary probe).
 */
type HeaderRecord = Record<string, string | string[]>;
const HeaderBag = function HeaderBag() {} as unknown as new () => HeaderRecord;
HeaderBag.prototype = Object.create(null) as object;

/** Headers node:http keeps only the first of; the same list keeps the two sides of the gateway alike. */
const SINGLE_VALUED: ReadonlySet<string> = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host',
  'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards',
  'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
]);

/**
 * Parses the requests of one connection, one at a time. Call {@link execute} with each chunk
 * read; events fire synchronously. Once a request has ended (`onEnd`), `execute` uses no more
 * bytes until {@link next} readies the parser for the following request, and returns how many
 * it used, so the connection can keep a pipelined request for later.
 */
export class RequestParser {
  #events: RequestEvents;
  #state: State = State.Head;
  #pending: Buffer[] | undefined;
  #pendingBytes = 0;
  #remaining = 0;
  readonly #chunked = new ChunkedDecoder({
    subject: 'the chunked request body',
    strict: true,
    maxTrailerBytes: MAX_REQUEST_HEAD_BYTES,
    fail: (status, message) => new RequestError(status, message),
  });
  readonly #onData = (data: Buffer): void => this.#events.onData(data);

  constructor(events: RequestEvents) {
    this.#events = events;
  }

  /** True once the current request (head and body) has been read. */
  get done(): boolean {
    return this.#state === State.Done;
  }

  /** True while no byte of the next request's head has arrived. */
  get idle(): boolean {
    return this.#state === State.Head && this.#pending === undefined;
  }

  /** Readies the parser for the next request on the connection. */
  next(): void {
    this.#state = State.Head;
    this.#pending = undefined;
    this.#pendingBytes = 0;
  }

  /** Feeds bytes; returns how many were used. Throws a {@link RequestError} for bytes that are not a request. */
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
          this.#events.onData(at === 0 && take === chunk.length ? chunk : chunk.subarray(at, at + take));
          at += take;
          if (this.#remaining === 0) this.#end();
          break;
        }
        case State.Chunked:
          at = this.#chunked.execute(chunk, at, this.#onData);
          if (this.#chunked.done) this.#end();
          break;
      }
    }
    return at;
  }

  #end(): void {
    this.#state = State.Done;
    this.#events.onEnd();
  }

  // Finds the end of the head (the first empty line) in `chunk` from `at`, or keeps the bytes for
  // the next read. A head that comes in pieces is kept as a list and searched only where the new
  // piece begins, so one sent a byte at a time costs no more than one sent whole.
  #readHead(chunk: Buffer, at: number): number {
    const pieces = this.#pending;
    if (pieces === undefined) {
      // Empty lines before a request line are skipped (RFC 9112 §2.2); a client may send one after a body.
      let start = at;
      while (chunk[start] === 13 && chunk[start + 1] === 10) start += 2;
      const end = chunk.indexOf(CRLF2, start);
      if (end >= 0) {
        if (end - start > MAX_REQUEST_HEAD_BYTES) throw tooLarge();
        return this.#head(chunk.toString('latin1', start, end + 2), end + 4);
      }
      // Up to three bytes of the empty line may be here already; they do not count against the limit.
      if (chunk.length - start > MAX_REQUEST_HEAD_BYTES + 3) throw tooLarge();
      checkLineEnds(chunk, start, chunk.length, -1);
      if (start < chunk.length) {
        // Copied: a slice would keep the whole read buffer alive while the rest of the head comes.
        this.#pending = [Buffer.from(chunk.subarray(start))];
        this.#pendingBytes = chunk.length - start;
      }
      return chunk.length;
    }
    // An empty line that straddles the boundary, else one inside the new piece.
    const tail = tailBytes(pieces, 3);
    const bridge = Buffer.concat([tail, chunk.subarray(at, Math.min(chunk.length, at + 3))]);
    const b = bridge.indexOf(CRLF2);
    let after: number; // index in `chunk` just past the empty line, or -1
    if (b >= 0) after = at + b + 4 - tail.length;
    else {
      const e = chunk.indexOf(CRLF2, at);
      after = e < 0 ? -1 : e + 4;
    }
    // Only the head's own bytes must end their lines in CRLF; what follows it in this read is body.
    const last = pieces[pieces.length - 1]!;
    checkLineEnds(chunk, at, after < 0 ? chunk.length : after, last[last.length - 1]!);
    const total = this.#pendingBytes + (after < 0 ? chunk.length : after) - at;
    if (total > MAX_REQUEST_HEAD_BYTES + (after < 0 ? 3 : 4) + this.#pendingLead()) throw tooLarge();
    if (after < 0) {
      pieces.push(Buffer.from(chunk.subarray(at)));
      this.#pendingBytes = total;
      return chunk.length;
    }
    pieces.push(chunk.subarray(at, after));
    const whole = Buffer.concat(pieces, total);
    this.#pending = undefined;
    this.#pendingBytes = 0;
    let start = 0;
    while (whole[start] === 13 && whole[start + 1] === 10) start += 2;
    if (total - 4 - start > MAX_REQUEST_HEAD_BYTES) throw tooLarge();
    return this.#head(whole.toString('latin1', start, total - 2), after);
  }

  // Empty-line bytes at the start of the held head (only a lone CR can be held: pairs are skipped).
  #pendingLead(): number {
    const first = this.#pending?.[0];
    return first !== undefined && first[0] === 13 ? 2 : 0;
  }

  // Parses a head and readies the body; returns `after`, where the head ended in the chunk.
  #head(text: string, after: number): number {
    const head = parseHead(text);
    const keepParsing = this.#events.onHead(head);
    if (!keepParsing) {
      this.#state = State.Done;
      return after;
    }
    switch (head.framing) {
      case 'none':
        this.#end();
        break;
      case 'length':
        this.#remaining = head.length;
        this.#state = State.Length;
        break;
      case 'chunked':
        this.#chunked.reset();
        this.#state = State.Chunked;
        break;
    }
    return after;
  }
}

/** Parses a request line and its header lines; `text` ends with the CRLF of the last line. */
export function parseHead(text: string): RequestHead {
  const lineEnd = text.indexOf('\r\n');
  const { method, target, minor } = requestLine(text, lineEnd);
  const headers = new HeaderBag();
  let count = 0;
  let sawHost = false;
  let contentLength: string | undefined;
  let transferEncoding: string | undefined;
  let connection: string | undefined;
  let upgradeHeader = false;
  let expect: string | undefined;
  const line: HeaderLine = { name: '', value: '' };
  // One pass over the lines by index: no split, no per-line regex.
  for (let at = lineEnd + 2; at < text.length; ) {
    const stop = text.indexOf('\r\n', at);
    if (++count > MAX_REQUEST_HEADERS) throw new RequestError(431, `the request has more than ${MAX_REQUEST_HEADERS} header lines`);
    const bad = readHeaderLine(text, at, stop, line);
    if (bad !== undefined) throw new RequestError(400, bad);
    const { name, value } = line;
    const lineStart = at;
    at = stop + 2;
    switch (name) {
      case 'host':
        if (sawHost) throw new RequestError(400, 'the request has more than one host header');
        sawHost = true;
        break;
      case 'content-length':
        if (contentLength !== undefined) throw new RequestError(400, 'the request has more than one content-length header');
        tablessFraming(text, lineStart, stop, name);
        contentLength = value;
        break;
      case 'transfer-encoding':
        tablessFraming(text, lineStart, stop, name);
        transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
        break;
      case 'connection':
        connection = connection === undefined ? value : `${connection}, ${value}`;
        break;
      case 'upgrade':
        upgradeHeader = true;
        break;
      case 'expect':
        expect = expect === undefined ? value : `${expect}, ${value}`;
        break;
    }
    addHeader(headers, name, value);
  }

  let url = target;
  if (target.indexOf('#') >= 0) throw new RequestError(400, 'the request target has a fragment (#), which is never sent to a server');
  if (target.charCodeAt(0) !== 47 /* '/' */) {
    const absolute = absoluteTarget(target, method);
    if (absolute !== undefined) {
      // The authority of an absolute-form target replaces any host header (RFC 9112 §3.2.2).
      url = absolute.path;
      headers.host = absolute.authority;
    }
  }
  // Even beside an absolute-form target (RFC 9112 §3.2: the client sends both; a server answers 400 to one without).
  if (minor === 1 && !sawHost) throw new RequestError(400, 'an HTTP/1.1 request must have a host header');

  const tokens = connection === undefined ? undefined : listTokens(connection);
  const keepAlive = minor === 1 ? !tokens?.includes('close') : tokens?.includes('keep-alive') === true;

  let framing: RequestHead['framing'] = 'none';
  let length = -1;
  if (transferEncoding !== undefined) {
    // One framing only: a length beside a transfer coding is how requests are smuggled.
    if (contentLength !== undefined) throw new RequestError(400, 'the request has both content-length and transfer-encoding');
    if (minor === 0) throw new RequestError(400, 'an HTTP/1.0 request may not use transfer-encoding');
    const codings = listTokens(transferEncoding);
    if (codings[codings.length - 1] !== 'chunked') throw new RequestError(400, `the request's transfer-encoding does not end with chunked: ${JSON.stringify(transferEncoding.slice(0, 60))}`);
    if (codings.length > 1) throw new RequestError(501, `transfer codings other than chunked are not supported: ${JSON.stringify(transferEncoding.slice(0, 60))}`);
    framing = 'chunked';
  } else if (contentLength !== undefined) {
    // Leading zeros are still a number; past 15 digits a length is not exact in a double.
    if (!/^0*[0-9]{1,15}$/.test(contentLength)) throw new RequestError(400, `the request's content-length is not a number: ${JSON.stringify(contentLength.slice(0, 40))}`);
    length = Number(contentLength);
    framing = length > 0 ? 'length' : 'none';
    if (length === 0) length = -1;
  }

  // An upgrade asked of HTTP/1.0 is ignored (RFC 9110 §7.8), and so is one whose request carries
  // a body (§7.8 lets a server ignore any): the request is served as an ordinary one, so it is
  // answered like any other, within its function's timeout, and no byte of its body can be taken
  // for the new protocol's.
  const upgrade = minor === 1 && upgradeHeader && framing === 'none' && tokens?.includes('upgrade') === true;

  let expectContinue = false;
  // An HTTP/1.0 client's expectations are ignored (RFC 9110 §10.1.1), as node:http does. Empty
  // list items count for nothing (§5.6.1), but an expect header with none at all is refused.
  const expected = expect === undefined || minor === 0 ? undefined : listTokens(expect).filter((t) => t !== '');
  if (expected !== undefined) {
    if (expected.length === 0 || expected.some((t) => t !== '100-continue')) throw new RequestError(417, `the request expects ${JSON.stringify(expect!.slice(0, 40))}; only 100-continue is supported`);
    // Only an HTTP/1.1 client sending a body waits for the interim answer.
    expectContinue = minor === 1 && framing !== 'none';
  }
  return { method, url, minor, headers: headers as IncomingHttpHeaders, keepAlive, upgrade, expectContinue, framing, length };
}

function requestLine(text: string, lineEnd: number): { method: string; target: string; minor: 0 | 1 } {
  // Empty lines before a request line are skipped only as CRLF.
  const first = text.charCodeAt(0);
  if (first === 13 || first === 10) throw new RequestError(400, `an empty line before the request line ends in a bare ${first === 13 ? 'CR' : 'LF'} (CRLF is required)`);
  const sp1 = text.indexOf(' ');
  const sp2 = sp1 < 0 ? -1 : text.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || sp2 > lineEnd || sp2 === sp1 + 1) {
    throw new RequestError(400, `the request line is not "METHOD target HTTP/1.x": ${JSON.stringify(text.slice(0, Math.min(lineEnd, 80)))}`);
  }
  const method = text.slice(0, sp1);
  if (!isToken(method)) throw new RequestError(400, `the request method is not a token: ${JSON.stringify(method.slice(0, 40))}`);
  for (let k = sp1 + 1; k < sp2; k++) {
    const c = text.charCodeAt(k);
    // Only visible ASCII (RFC 3986): a raw byte past it is sent percent-encoded.
    if (c <= 32 || c >= 127) {
      throw new RequestError(400, c === 10 ? 'the request line ends in a bare LF (CRLF is required)' : 'the request target has a control character or a space in it, or a byte that is not ASCII (send it percent-encoded)');
    }
  }
  const version = text.slice(sp2 + 1, lineEnd);
  let minor: 0 | 1;
  if (version === 'HTTP/1.1') minor = 1;
  else if (version === 'HTTP/1.0') minor = 0;
  else if (/^HTTP\/[0-9]\.[0-9]$/.test(version)) throw new RequestError(505, `HTTP version ${version.slice(5)} is not supported; use HTTP/1.1`);
  else throw new RequestError(400, `the request line does not end with an HTTP version: ${JSON.stringify(text.slice(0, Math.min(lineEnd, 80)))}`);
  if (method === 'CONNECT') throw new RequestError(501, 'CONNECT is not supported: the gateway is not a forward proxy');
  return { method, target: text.slice(sp1 + 1, sp2), minor };
}

/**
 * The authority and origin-form path of an `http://` or `https://` absolute-form target; undefined
 * for the asterisk-form of OPTIONS. The path is what follows the authority (`/` when nothing or
 * only a query does): a slash inside the query is not the path.
 */
function absoluteTarget(target: string, method: string): { authority: string; path: string } | undefined {
  const lower = target.slice(0, 8).toLowerCase();
  const schemeEnd = lower.startsWith('http://') ? 7 : lower.startsWith('https://') ? 8 : -1;
  if (schemeEnd < 0) {
    if (target === '*' && method === 'OPTIONS') return undefined;
    throw new RequestError(400, `the request target is not a path or an absolute http URL: ${JSON.stringify(target.slice(0, 60))}`);
  }
  let end = target.length;
  const slash = target.indexOf('/', schemeEnd);
  const query = target.indexOf('?', schemeEnd);
  if (slash >= 0) end = slash;
  if (query >= 0 && query < end) end = query;
  const authority = target.slice(schemeEnd, end);
  if (authority === '' || authority.includes('@')) throw new RequestError(400, `the request target's authority is empty or carries user info: ${JSON.stringify(target.slice(0, 60))}`);
  const rest = target.slice(end);
  return { authority, path: rest === '' ? '/' : rest.charCodeAt(0) === 63 /* '?' */ ? `/${rest}` : rest };
}

/** Adds one header line the way node:http's IncomingMessage does. */
function addHeader(headers: HeaderRecord, name: string, value: string): void {
  const prior = headers[name];
  if (prior === undefined) {
    headers[name] = name === 'set-cookie' ? [value] : value;
    return;
  }
  if (Array.isArray(prior)) prior.push(value);
  else if (SINGLE_VALUED.has(name)) return;
  else headers[name] = `${prior}${name === 'cookie' ? '; ' : ', '}${value}`;
}

/**
 * Refuses a tab after a framing header's value. It is whitespace to the RFC, but part of the value
 * to llhttp (`chunked\t` is another coding to it), and a framing header one hop reads one way and
 * the next another is how requests are smuggled. (`from` is where the line starts: a tab before
 * the value is whitespace to both.)
 */
function tablessFraming(text: string, from: number, to: number, name: string): void {
  for (let k = to - 1; k > from; k--) {
    const c = text.charCodeAt(k);
    if (c === 9) throw new RequestError(400, `the request's ${name} header has a tab after its value`);
    if (c !== 32) return;
  }
}

function tooLarge(): RequestError {
  return new RequestError(431, `the request line and headers are larger than ${MAX_REQUEST_HEAD_BYTES / 1024} KiB`);
}

/**
 * Refuses a head whose lines end in a bare LF as soon as one arrives, rather than waiting for the
 * CRLF CRLF that will never come. Looks at the LFs in `buf` from `from` up to `to` (the end of
 * the head, when it is in `buf`); `before` is the byte that preceded `from` (-1 for none).
 */
function checkLineEnds(buf: Buffer, from: number, to: number, before: number): void {
  for (let i = buf.indexOf(10, from); i >= 0 && i < to; i = buf.indexOf(10, i + 1)) {
    const prev = i > from ? buf[i - 1] : before;
    if (prev !== 13) throw new RequestError(400, 'a line of the request head ends in a bare LF (CRLF is required)');
  }
}

/** The last `n` bytes held in `pieces` (fewer when they hold fewer). */
function tailBytes(pieces: Buffer[], n: number): Buffer {
  const last = pieces[pieces.length - 1]!;
  if (last.length >= n || pieces.length === 1) return last.subarray(Math.max(0, last.length - n));
  return Buffer.concat(pieces).subarray(-n);
}
