// Tests of the gateway's own HTTP/1.1 server (src/http1): the request parser fed whole and byte by
// byte; refusals of malformed or ambiguous requests over real sockets; smuggling; keep-alive;
// pipelining; request bodies; responses; clients that leave; timeouts; upgrades; close(); and
// node's own HTTP client and server as the reference.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http, { STATUS_CODES, type IncomingHttpHeaders } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import {
  Http1Server,
  MAX_REQUEST_HEAD_BYTES,
  MAX_REQUEST_HEADERS,
  parseHead,
  RequestAbortedError,
  RequestError,
  RequestParser,
  type Http1Handlers,
  type Http1ServerOptions,
  type RequestHead,
  type ServerRequest,
  type ServerResponse,
} from '../src/http1/index.js';
import { withTimeout } from './instance-conformance.js';

// ---------------------------------------------------------------------------------------------
// Small helpers: bounded waits, cleanup.

const cleanups: Array<{ what: string; run: () => Promise<void> | void }> = [];
const sockets = new Set<net.Socket>();

after(async () => {
  for (const socket of sockets) socket.destroy();
  // Every step runs, even after one fails, so that nothing is left listening.
  const failures: string[] = [];
  for (const { what, run } of cleanups.reverse()) {
    try {
      await withTimeout(Promise.resolve(run()), 5_000, what);
    } catch (err) {
      failures.push(String(err));
    }
  }
  assert.deepEqual(failures, [], 'cleanup steps that failed');
});

/** Polls `check` every few ms until it holds; fails after `ms`. */
async function pollUntil(check: () => boolean, what: string, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(5);
  }
}

/** Runs `body` and returns the uncaught exceptions raised meanwhile (which would otherwise end the process). */
async function uncaughtDuring(body: () => Promise<void>): Promise<unknown[]> {
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown): void => void uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    await body();
  } finally {
    process.off('uncaughtException', onUncaught);
  }
  return uncaught;
}

/** Polls `read` until its value has not changed for `quietMs`, and returns it; fails after `ms`. */
async function steady(read: () => number, quietMs: number, what: string, ms = 5_000): Promise<number> {
  const deadline = Date.now() + ms;
  let value = read();
  let since = Date.now();
  while (Date.now() - since < quietMs) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what} (last value ${value})`);
    await delay(20);
    const now = read();
    if (now !== value) {
      value = now;
      since = Date.now();
    }
  }
  return value;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function readAll(body: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer | string>) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

/** A Readable yielding `parts` as Buffers, `gapMs` apart. */
function pieces(parts: readonly string[], gapMs: number): Readable {
  return Readable.from(
    (async function* () {
      for (const part of parts) {
        await delay(gapMs);
        yield Buffer.from(part);
      }
    })(),
  );
}

// ---------------------------------------------------------------------------------------------
// A raw client: exact bytes out, exact bytes in, responses parsed by a small independent reader.

class RawResponse {
  constructor(
    readonly version: string,
    readonly status: number,
    readonly reason: string,
    /** Header lines as sent, names lower-cased. */
    readonly fields: ReadonlyArray<readonly [string, string]>,
    readonly body: Buffer,
  ) {}

  /** The value of `name` (repeats joined with ", "), or undefined. */
  get(name: string): string | undefined {
    const values = this.fields.filter(([n]) => n === name).map(([, v]) => v);
    return values.length === 0 ? undefined : values.join(', ');
  }

  count(name: string): number {
    return this.fields.filter(([n]) => n === name).length;
  }

  text(): string {
    return this.body.toString('latin1');
  }

  json<T>(): T {
    return JSON.parse(this.body.toString('utf8')) as T;
  }
}

/** Decodes a chunked body starting at `at`; undefined while incomplete; throws when malformed. */
function decodeChunked(buf: Buffer, at: number): { body: Buffer; end: number } | undefined {
  const parts: Buffer[] = [];
  let pos = at;
  for (let guard = 0; guard < 100_000; guard++) {
    const lineEnd = buf.indexOf('\r\n', pos);
    if (lineEnd < 0) return undefined;
    const sizeText = buf.toString('latin1', pos, lineEnd).split(';')[0]!.trim();
    if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`bad chunk size line ${JSON.stringify(sizeText)}`);
    const size = parseInt(sizeText, 16);
    pos = lineEnd + 2;
    if (size === 0) {
      // Trailer lines until an empty one.
      for (let t = 0; t < 1_000; t++) {
        const end = buf.indexOf('\r\n', pos);
        if (end < 0) return undefined;
        const empty = end === pos;
        pos = end + 2;
        if (empty) return { body: Buffer.concat(parts), end: pos };
      }
      throw new Error('too many trailer lines');
    }
    if (buf.length < pos + size + 2) return undefined;
    parts.push(Buffer.from(buf.subarray(pos, pos + size)));
    if (buf.toString('latin1', pos + size, pos + size + 2) !== '\r\n') throw new Error('chunk data not followed by CRLF');
    pos += size + 2;
  }
  throw new Error('too many chunks');
}

/** Splits the first whole response off `buf`, or undefined while more is needed. */
function takeResponse(buf: Buffer, method: string, eof: boolean): { response: RawResponse; used: number } | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const match = /^(HTTP\/1\.[01]) (\d{3}) (.*)$/.exec(lines[0]!);
  if (!match) throw new Error(`not a status line: ${JSON.stringify(lines[0])}`);
  const fields = lines.slice(1).map((line): [string, string] => {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`not a header line: ${JSON.stringify(line)}`);
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
  });
  const status = Number(match[2]);
  const start = end + 4;
  const make = (body: Buffer, used: number) => ({ response: new RawResponse(match[1]!, status, match[3]!, fields, Buffer.from(body)), used });
  if (status < 200 || method === 'HEAD' || status === 204 || status === 304) return make(Buffer.alloc(0), start);
  const te = fields.find(([n]) => n === 'transfer-encoding')?.[1];
  const cl = fields.find(([n]) => n === 'content-length')?.[1];
  if (te !== undefined) {
    if (te.toLowerCase() !== 'chunked') throw new Error(`unexpected transfer-encoding ${te}`);
    const decoded = decodeChunked(buf, start);
    return decoded && make(decoded.body, decoded.end);
  }
  if (cl !== undefined) {
    const length = Number(cl);
    if (buf.length < start + length) return undefined;
    return make(buf.subarray(start, start + length), start + length);
  }
  return eof ? make(buf.subarray(start), buf.length) : undefined;
}

class RawClient {
  #buf = Buffer.alloc(0);
  #offset = 0;
  /** The server sent FIN. */
  ended = false;
  closed = false;
  error: Error | undefined;
  readonly #waiters = new Set<() => void>();

  private constructor(readonly socket: net.Socket) {
    sockets.add(socket);
    socket.on('data', (chunk: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, chunk]);
      this.#notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.#notify();
    });
    socket.on('error', (err) => {
      this.error = err;
      this.#notify();
    });
    socket.on('close', () => {
      this.closed = true;
      sockets.delete(socket);
      this.#notify();
    });
  }

  /** `allowHalfOpen`: the client keeps its side open after the server's FIN (it never sends its own). */
  static async connect(port: number, allowHalfOpen = false): Promise<RawClient> {
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true, allowHalfOpen });
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }),
      3_000,
      'connecting',
    );
    return new RawClient(socket);
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Bytes received and not yet taken as a response. */
  get unread(): Buffer {
    return this.#buf.subarray(this.#offset);
  }

  /** Resolves once `check` holds, re-checked on every socket event; rejects after `ms`. */
  until(check: () => boolean, what: string, ms = 3_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.#waiters.delete(onEvent);
        if (err) reject(err);
        else resolve();
      };
      const onEvent = (): void => {
        try {
          if (check()) done();
        } catch (err) {
          done(err as Error);
        }
      };
      const timer = setTimeout(() => {
        const seen = JSON.stringify(this.unread.toString('latin1').slice(0, 300));
        done(new Error(`timed out after ${ms} ms waiting for ${what}; unread bytes: ${seen}; closed: ${this.closed}`));
      }, ms);
      this.#waiters.add(onEvent);
    });
  }

  /** Waits for, and takes, the next whole response. */
  async response(method = 'GET', ms = 3_000): Promise<RawResponse> {
    let taken: { response: RawResponse; used: number } | undefined;
    await this.until(() => {
      taken = takeResponse(this.unread, method, this.ended || this.closed);
      if (!taken && this.closed) throw new Error(`the connection closed before a whole response; unread: ${JSON.stringify(this.unread.toString('latin1').slice(0, 300))}`);
      return taken !== undefined;
    }, 'a whole response', ms);
    this.#offset += taken!.used;
    return taken!.response;
  }

  /** Waits until the socket is closed (the server closed its side and we followed). */
  waitClosed(ms = 3_000): Promise<void> {
    return this.until(() => this.closed, 'the connection to close', ms);
  }

  destroy(): void {
    this.socket.destroy();
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

/** Sends `wire` on a new connection and reads one response. */
async function exchange(port: number, wire: string | Buffer, method = 'GET'): Promise<{ client: RawClient; response: RawResponse }> {
  const client = await RawClient.connect(port);
  await client.write(wire);
  return { client, response: await client.response(method) };
}

interface ErrorBody {
  error: { code: string; message: string };
}

/** Asserts a refusal: the status, the JSON error naming the problem, `connection: close`. */
function assertRefusal(response: RawResponse, status: number, message: RegExp): void {
  assert.equal(response.status, status, `status; body: ${response.text()}`);
  assert.equal(response.reason, STATUS_CODES[status]);
  assert.equal(response.get('connection'), 'close');
  assert.equal(response.get('content-type'), 'application/json');
  assert.equal(Number(response.get('content-length')), response.body.length);
  const { error } = response.json<ErrorBody>();
  assert.equal(error.code, 'LL_BAD_REQUEST');
  assert.match(error.message, /^Bad request: /);
  assert.match(error.message, message);
}

// ---------------------------------------------------------------------------------------------
// The server under test: an echo application with a few routes for the behaviours tested.

/** What the echo route answers, as JSON. */
interface Echo {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** The body as latin1 text when at most 64 KiB, else ''. */
  body: string;
  bodyLength: number;
  sha256: string;
}

/** A request parked by `/hold/<tag>`: never answered; what happens to it is recorded. */
interface Held {
  req: ServerRequest;
  res: ServerResponse;
  closedWith: boolean | undefined;
  bodyError: Error | undefined;
  bodyEnded: boolean;
  bodyClosed: boolean;
  bodyBytes: number;
}

const PARTS = ['alpha-', 'beta-', 'gamma'];
const PARTS_TEXT = PARTS.join('');

class EchoApp {
  /** "METHOD url" of each request handed to the handler, in order. */
  readonly seen: string[] = [];
  /** "start url" / "answer url" as the echo route runs. */
  readonly events: string[] = [];
  readonly held = new Map<string, Held>();
  readonly errors: unknown[] = [];
  /** Bodies being streamed by `/stream-destroyed?tag=<tag>`, for the test to destroy. */
  readonly streams = new Map<string, Readable>();
  /** What each second send or stream of `/twice?tag=<tag>` did. */
  readonly twice = new Map<string, string[]>();
  readonly handlers: Http1Handlers = {
    request: (req, res) => {
      this.seen.push(`${req.method} ${req.url}`);
      this.#route(req, res).catch((err: unknown) => {
        this.errors.push(err);
        if (!res.closed) res.send(500, ['content-type', 'text/plain'], Buffer.from(String(err)));
      });
    },
  };

  async #route(req: ServerRequest, res: ServerResponse): Promise<void> {
    const url = new URL(req.url, 'http://server.invalid');
    const path = url.pathname;
    if (path === '/sync') return res.send(200, ['content-type', 'text/plain'], Buffer.from('sync'));
    if (path === '/nobody') return res.send(404, ['content-type', 'text/plain'], Buffer.from('not found'));
    if (path === '/late-nobody') {
      await delay(Number(url.searchParams.get('delay') ?? 50));
      return res.send(404, ['content-type', 'text/plain'], Buffer.from('not found, late'));
    }
    if (path.startsWith('/hold/')) return this.#hold(path.slice('/hold/'.length), req, res, true);
    if (path.startsWith('/hold-lazy/')) return this.#hold(path.slice('/hold-lazy/'.length), req, res, false);
    if (path === '/head') return res.send(200, ['content-type', 'text/plain'], Buffer.from('hello'), '5');
    if (path.startsWith('/status/')) {
      const status = Number(path.slice('/status/'.length));
      return res.send(status, ['x-status', String(status)], Buffer.from(`body of ${status}`));
    }
    if (path.startsWith('/big/')) {
      const size = Number(path.slice('/big/'.length));
      const body = Buffer.alloc(size);
      for (let i = 0; i < size; i++) body[i] = 97 + (i % 26);
      return res.send(200, ['content-type', 'text/plain'], body);
    }
    if (path === '/stream') return this.#stream(url.searchParams.get('mode') ?? 'unknown', res);
    if (path === '/invalid') return this.#invalid(res);
    if (path === '/stream-destroyed') return this.#streamDestroyed(url.searchParams.get('mode') ?? 'unknown', url.searchParams.get('tag') ?? '', res);
    if (path === '/twice') return this.#twice(url.searchParams.get('first') ?? 'send', url.searchParams.get('tag') ?? '', res);
    return this.#echo(req, res, url);
  }

  async #echo(req: ServerRequest, res: ServerResponse, url: URL): Promise<void> {
    this.events.push(`start ${req.url}`);
    const readAfter = Number(url.searchParams.get('readAfter') ?? 0);
    const answerAfter = Number(url.searchParams.get('delay') ?? 0);
    if (readAfter > 0) await delay(readAfter);
    let body: Buffer;
    try {
      body = await readAll(req.body);
    } catch {
      return; // the client left or the body was malformed; the connection has answered or closed
    }
    if (answerAfter > 0) await delay(answerAfter);
    this.events.push(`answer ${req.url}`);
    const echo: Echo = {
      method: req.method,
      url: req.url,
      headers: req.headers,
      body: body.length <= 64 * 1024 ? body.toString('latin1') : '',
      bodyLength: body.length,
      sha256: sha256(body),
    };
    res.send(200, ['content-type', 'application/json', 'x-echo', 'yes'], Buffer.from(JSON.stringify(echo)));
  }

  #hold(tag: string, req: ServerRequest, res: ServerResponse, readBody: boolean): void {
    const held: Held = { req, res, closedWith: undefined, bodyError: undefined, bodyEnded: false, bodyClosed: false, bodyBytes: 0 };
    this.held.set(tag, held);
    res.onClose = (finished) => {
      held.closedWith = finished;
    };
    if (readBody) this.#watchBody(held);
  }

  #watchBody(held: Held): void {
    const body = held.req.body;
    body.on('data', (chunk: Buffer) => {
      held.bodyBytes += chunk.length;
    });
    body.on('end', () => {
      held.bodyEnded = true;
    });
    body.on('error', (err) => {
      held.bodyError = err;
    });
    body.on('close', () => {
      held.bodyClosed = true;
    });
  }

  /** Starts watching the body of a request parked without it (for `/hold-lazy/<tag>`). */
  watchLater(tag: string): Held {
    const held = this.held.get(tag);
    assert.ok(held, `request ${tag} was not held`);
    this.#watchBody(held);
    return held;
  }

  #stream(mode: string, res: ServerResponse): void {
    const body = pieces(PARTS, 5);
    const total = PARTS_TEXT.length;
    const length = mode === 'known' ? String(total) : mode === 'short' ? String(total + 10) : mode === 'long' ? '3' : undefined;
    res.stream(200, ['content-type', 'text/plain'], body, length);
  }

  /** Streams the first part of a body that the test then destroys without an error. */
  #streamDestroyed(mode: string, tag: string, res: ServerResponse): void {
    const body = new Readable({ read() {} });
    this.streams.set(tag, body);
    res.stream(200, ['content-type', 'text/plain'], body, mode === 'known' ? String(PARTS_TEXT.length) : undefined);
    body.push(Buffer.from(PARTS[0]!));
  }

  /**
   * Answers, then sends and streams a second time. After a stream, what the second attempts did
   * is the rest of the streamed body; after a send, it is kept in `twice` under the tag.
   */
  #twice(first: string, tag: string, res: ServerResponse): void {
    const outcomes: string[] = [];
    const again = (what: string, attempt: () => void): void => {
      try {
        attempt();
        outcomes.push(`${what}: did not throw`);
      } catch {
        outcomes.push(`${what}: threw`);
      }
    };
    const tryAgain = (): void => {
      again('send', () => res.send(200, ['content-type', 'text/plain'], Buffer.from('second answer')));
      again('stream', () => res.stream(200, ['content-type', 'text/plain'], Readable.from([Buffer.from('second answer')])));
    };
    if (first === 'stream') {
      const body = new Readable({ read() {} });
      res.stream(200, ['content-type', 'text/plain'], body);
      body.push(Buffer.from('first answer;'));
      tryAgain();
      body.push(Buffer.from(JSON.stringify(outcomes)));
      body.push(null);
      return;
    }
    res.send(200, ['content-type', 'text/plain'], Buffer.from('first answer'));
    tryAgain();
    this.twice.set(tag, outcomes);
  }

  /** Tries sends that must throw, then answers with what each did. */
  #invalid(res: ServerResponse): void {
    const attempts: Array<[string, () => void]> = [
      ['CR LF in a value', () => res.send(200, ['x-a', 'one\r\nx-injected: yes'], Buffer.from('x'))],
      ['LF in a value', () => res.send(200, ['x-a', 'one\nx-injected: yes'], Buffer.from('x'))],
      ['CR in a value', () => res.send(200, ['x-a', 'one\rtwo'], Buffer.from('x'))],
      ['NUL in a value', () => res.send(200, ['x-a', 'a\0b'], Buffer.from('x'))],
      ['a name with a space', () => res.send(200, ['bad name', 'v'], Buffer.from('x'))],
      ['a name with a colon', () => res.send(200, ['x-a:', 'v'], Buffer.from('x'))],
      ['an empty name', () => res.send(200, ['', 'v'], Buffer.from('x'))],
      ['a name with CR LF', () => res.send(200, ['x-a\r\nx-b', 'v'], Buffer.from('x'))],
      ['status 101', () => res.send(101, [], Buffer.alloc(0))],
      ['status 99', () => res.send(99, [], Buffer.alloc(0))],
      ['status 100', () => res.send(100, [], Buffer.alloc(0))],
      ['status 1000', () => res.send(1000, [], Buffer.alloc(0))],
      ['status 200.5', () => res.send(200.5, [], Buffer.alloc(0))],
      ['stream with CR LF in a value', () => res.stream(200, ['x-a', 'a\r\nb'], Readable.from([]))],
      ['stream with status 101', () => res.stream(101, [], Readable.from([]))],
      ['stream with a length that is not a number', () => res.stream(200, [], Readable.from([]), '12abc')],
    ];
    const outcomes: string[] = [];
    for (const [what, attempt] of attempts) {
      try {
        attempt();
        outcomes.push(`${what}: did not throw`);
      } catch {
        outcomes.push(`${what}: threw`);
      }
      if (res.headersSent || res.closed) outcomes.push(`${what}: wrote the response`);
    }
    res.send(200, ['content-type', 'application/json'], Buffer.from(JSON.stringify(outcomes)));
  }
}

interface Running {
  server: Http1Server;
  port: number;
}

async function startServer(handlers: Http1Handlers, options: Http1ServerOptions = {}): Promise<Running> {
  const server = new Http1Server(handlers, options);
  const port = await server.listen(0, '127.0.0.1');
  cleanups.push({ what: `closing the Http1Server on port ${port}`, run: () => server.close() });
  return { server, port };
}

async function startEcho(options: Http1ServerOptions = {}): Promise<Running & { app: EchoApp }> {
  const app = new EchoApp();
  return { ...(await startServer(app.handlers, options)), app };
}

/** A GET with `Host` and any extra header lines. */
function get(url: string, extra = '', version = '1.1'): string {
  return `GET ${url} HTTP/${version}\r\nHost: test.local\r\n${extra}\r\n`;
}

/** A POST with a content-length body. */
function post(url: string, body: string | Buffer, extra = ''): string {
  const text = typeof body === 'string' ? body : body.toString('latin1');
  return `POST ${url} HTTP/1.1\r\nHost: test.local\r\nContent-Length: ${Buffer.byteLength(text, 'latin1')}\r\n${extra}\r\n${text}`;
}

/** A POST with a chunked body, one chunk per part. */
function postChunked(url: string, parts: readonly string[], trailers = ''): string {
  const chunks = parts.map((p) => `${p.length.toString(16)}\r\n${p}\r\n`).join('');
  return `POST ${url} HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}0\r\n${trailers}\r\n`;
}

let main: Running & { app: EchoApp };
before(async () => {
  main = await startEcho();
});

// ---------------------------------------------------------------------------------------------
// The parser on its own.

interface ParsedRequest {
  head: RequestHead;
  body: Buffer;
  ended: boolean;
}

/** Feeds `wire` in pieces of `step` bytes, readying the parser after each request; returns the requests read. */
function parseAll(wire: string | Buffer, step: number): { requests: ParsedRequest[]; usedPerRequest: number[] } {
  const bytes = typeof wire === 'string' ? Buffer.from(wire, 'latin1') : wire;
  const requests: Array<{ head: RequestHead; parts: Buffer[]; ended: boolean }> = [];
  const usedPerRequest: number[] = [];
  const parser = new RequestParser({
    onHead: (head) => {
      requests.push({ head, parts: [], ended: false });
      return true;
    },
    onData: (chunk) => requests[requests.length - 1]!.parts.push(Buffer.from(chunk)),
    onEnd: () => {
      requests[requests.length - 1]!.ended = true;
    },
  });
  let at = 0;
  let used = 0;
  for (let guard = 0; at < bytes.length; guard++) {
    assert.ok(guard <= bytes.length + 10, 'the parser makes progress');
    const n = parser.execute(bytes.subarray(at, Math.min(bytes.length, at + step)));
    at += n;
    used += n;
    if (parser.done) {
      usedPerRequest.push(used);
      used = 0;
      assert.equal(parser.execute(bytes.subarray(at)), 0, 'a finished request takes no more bytes until next()');
      parser.next();
      assert.ok(parser.idle);
    } else {
      assert.equal(n, Math.min(step, bytes.length - (at - n)), 'an unfinished request takes every byte given');
    }
  }
  return { requests: requests.map((r) => ({ head: r.head, body: Buffer.concat(r.parts), ended: r.ended })), usedPerRequest };
}

/** The RequestError `wire` makes the parser throw. */
function parserError(wire: string): RequestError {
  const parser = new RequestParser({ onHead: () => true, onData: () => {}, onEnd: () => {} });
  try {
    parser.execute(Buffer.from(wire, 'latin1'));
  } catch (err) {
    assert.ok(err instanceof RequestError, `not a RequestError: ${String(err)}`);
    return err;
  }
  assert.fail(`parsed without error: ${JSON.stringify(wire.slice(0, 200))}`);
}

/** The head as comparable plain data (headers copied to a plain object). */
function plainHead(head: RequestHead): object {
  return { ...head, headers: { ...head.headers } };
}

const RICH_REQUEST =
  'POST /up?x=1 HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\nX-Multi: one\r\nx-multi: two\r\n' +
  'Cookie: a=1\r\nCookie: b=2\r\nSet-Cookie: s=1\r\nSet-Cookie: s=2\r\nUser-Agent: first\r\nUser-Agent: second\r\n' +
  'X-Spaced: \t padded value \t\r\n\r\n' +
  '5;ext=1;name="q"\r\nhello\r\n7;x\r\n, world\r\nA\r\n01234\n6789\r\n0\r\nx-trailer: t\r\nx-other: u\r\n\r\n';

describe('request parser', () => {
  test('parser — a request fed byte by byte reads the same as fed whole (head, chunked body, trailers)', () => {
    const whole = parseAll(RICH_REQUEST, RICH_REQUEST.length);
    assert.equal(whole.requests.length, 1);
    const [request] = whole.requests;
    assert.equal(request!.head.method, 'POST');
    assert.equal(request!.head.url, '/up?x=1');
    assert.equal(request!.head.minor, 1);
    assert.equal(request!.head.framing, 'chunked');
    assert.equal(request!.head.keepAlive, true);
    assert.deepEqual({ ...request!.head.headers }, {
      host: 'a.example',
      'transfer-encoding': 'chunked',
      'x-multi': 'one, two',
      cookie: 'a=1; b=2',
      'set-cookie': ['s=1', 's=2'],
      'user-agent': 'first',
      'x-spaced': 'padded value',
    });
    // A bare LF in the body is data: only the head's lines must end in CRLF, however the reads fall.
    assert.equal(request!.body.toString(), 'hello, world01234\n6789');
    assert.ok(request!.ended);
    assert.deepEqual(whole.usedPerRequest, [RICH_REQUEST.length]);
    // 100 and 200: the read that ends the head also carries the body's bare LF.
    for (const step of [1, 2, 3, 7, 64, 100, 200]) {
      const split = parseAll(RICH_REQUEST, step);
      assert.equal(split.requests.length, 1, `step ${step}`);
      assert.deepEqual(plainHead(split.requests[0]!.head), plainHead(request!.head), `head, step ${step}`);
      assert.equal(split.requests[0]!.body.toString(), request!.body.toString(), `body, step ${step}`);
      assert.ok(split.requests[0]!.ended, `ended, step ${step}`);
      assert.deepEqual(split.usedPerRequest, whole.usedPerRequest, `bytes used, step ${step}`);
    }
  });

  test('parser — pipelined requests in one buffer: execute returns the bytes of the first; next() readies the second', () => {
    const first = post('/one', 'abc');
    const second = postChunked('/two', ['de', 'fgh']);
    const third = get('/three');
    // An empty line between requests is skipped (RFC 9112 §2.2).
    const wire = Buffer.from(`${first}\r\n${second}${third}`, 'latin1');
    const parser = new RequestParser({ onHead: () => true, onData: () => {}, onEnd: () => {} });
    const used = parser.execute(wire);
    assert.equal(used, first.length);
    assert.ok(parser.done);
    assert.equal(parser.execute(wire.subarray(used)), 0, 'nothing is taken before next()');
    parser.next();
    assert.ok(parser.idle);

    for (const step of [wire.length, 1, 5]) {
      const { requests, usedPerRequest } = parseAll(wire, step);
      assert.deepEqual(requests.map((r) => r.head.url), ['/one', '/two', '/three'], `step ${step}`);
      assert.deepEqual(requests.map((r) => r.body.toString()), ['abc', 'defgh', ''], `step ${step}`);
      assert.ok(requests.every((r) => r.ended));
      assert.deepEqual(usedPerRequest, [first.length, second.length + 2, third.length], `step ${step}`);
    }
  });

  test('parser — onHead returning false stops after the head (the rest is for an upgrade)', () => {
    const head = 'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n';
    let data = 0;
    const heads: RequestHead[] = [];
    const parser = new RequestParser({
      onHead: (h) => {
        heads.push(h);
        return false;
      },
      onData: () => data++,
      onEnd: () => data++,
    });
    const used = parser.execute(Buffer.from(`${head}raw bytes`, 'latin1'));
    assert.equal(used, head.length);
    assert.ok(parser.done);
    assert.equal(data, 0);
    assert.equal(heads[0]!.upgrade, true);
  });

  test('parseHead — an absolute-form target becomes its path and query; its authority becomes host', () => {
    const abs = parseHead('GET http://Example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: other\r\n');
    assert.equal(abs.url, '/p/q?x=1');
    assert.equal(abs.headers.host, 'Example.com:8080');
    assert.equal(parseHead('GET https://example.com HTTP/1.1\r\nHost: example.com\r\n').url, '/');
    assert.throws(() => parseHead('GET https://example.com HTTP/1.1\r\n'), /must have a host header/, 'an HTTP/1.1 request needs a host header beside an absolute-form target');
    assert.equal(parseHead('OPTIONS * HTTP/1.1\r\nHost: a\r\n').url, '*');
  });

  test('parseHead — an absolute-form target with a query and no path keeps the query, and a slash in it is not the path', () => {
    assert.equal(parseHead('GET http://example.com?x=1 HTTP/1.1\r\nHost: example.com\r\n').url, '/?x=1');
    assert.equal(parseHead('GET http://example.com?next=/admin HTTP/1.1\r\nHost: example.com\r\n').url, '/?next=/admin');
  });

  test('parseHead — connection flags, expect and framing', () => {
    const h10 = parseHead('GET / HTTP/1.0\r\n');
    assert.equal(h10.minor, 0);
    assert.equal(h10.keepAlive, false, 'HTTP/1.0 closes by default');
    assert.equal(parseHead('GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n').keepAlive, true);
    assert.equal(parseHead('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n').keepAlive, false);
    assert.equal(parseHead('GET / HTTP/1.1\r\nHost: a\r\nConnection: x, Close\r\n').keepAlive, false);

    const up = parseHead('GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n');
    assert.equal(up.upgrade, true);
    assert.equal(parseHead('GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n').upgrade, false, 'no upgrade header');
    assert.equal(parseHead('GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n').upgrade, false, 'no connection: upgrade');
    assert.equal(parseHead('POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 15\r\n').upgrade, false, 'a body');
    assert.equal(parseHead('POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\n').upgrade, false, 'a chunked body');
    assert.equal(parseHead('POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n').upgrade, true, 'an empty body');

    assert.equal(parseHead('PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n').expectContinue, true);
    assert.equal(parseHead('PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nExpect: \r\nContent-Length: 3\r\n').expectContinue, true, 'empty list items count for nothing');
    assert.equal(parseHead('PUT / HTTP/1.0\r\nExpect: x\r\nContent-Length: 3\r\n').expectContinue, false, "an HTTP/1.0 client's expectations are ignored");
    assert.equal(parseHead('PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 00000000000000003\r\n').length, 3, 'leading zeros in a length');
    assert.equal(parseHead('PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n').expectContinue, false, 'not for HTTP/1.0');
    assert.equal(parseHead('GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n').expectContinue, false, 'not without a body');

    const cl = parseHead('PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n');
    assert.deepEqual([cl.framing, cl.length], ['length', 10]);
    const zero = parseHead('PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n');
    assert.deepEqual([zero.framing, zero.length], ['none', -1]);
    const te = parseHead('PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n');
    assert.deepEqual([te.framing, te.length], ['chunked', -1]);
    const none = parseHead('GET / HTTP/1.1\r\nHost: a\r\n');
    assert.deepEqual([none.framing, none.length], ['none', -1]);
  });

  test('parser — the header limits are exact: 16 KiB and 256 lines are accepted, one more is not', () => {
    const base = 'GET / HTTP/1.1\r\nHost: a\r\nX-Big: ';
    // The head measured without its final CRLF CRLF.
    const fits = `${base}${'a'.repeat(MAX_REQUEST_HEAD_BYTES - base.length)}\r\n\r\n`;
    assert.equal(parseAll(fits, fits.length).requests.length, 1);
    const over = `${base}${'a'.repeat(MAX_REQUEST_HEAD_BYTES - base.length + 1)}\r\n\r\n`;
    assert.equal(parserError(over).status, 431);

    const lines = (n: number): string => Array.from({ length: n }, (_, i) => `x-h${i}: v\r\n`).join('');
    const most = `GET / HTTP/1.1\r\nHost: a\r\n${lines(MAX_REQUEST_HEADERS - 1)}\r\n`;
    assert.equal(parseAll(most, most.length).requests.length, 1);
    const tooMany = `GET / HTTP/1.1\r\nHost: a\r\n${lines(MAX_REQUEST_HEADERS)}\r\n`;
    assert.equal(parserError(tooMany).status, 431);
  });
  test('parser — the 16 KiB limit does not depend on how the head is split across reads', () => {
    const base = 'GET / HTTP/1.1\r\nHost: a\r\nX-Big: ';
    const fits = `${base}${'a'.repeat(MAX_REQUEST_HEAD_BYTES - base.length)}\r\n\r\n`;
    // Whole, it is accepted (previous test); the same bytes in two reads, split inside the final CRLF CRLF:
    for (const split of [MAX_REQUEST_HEAD_BYTES + 1, MAX_REQUEST_HEAD_BYTES + 2, MAX_REQUEST_HEAD_BYTES + 3]) {
      const parser = new RequestParser({ onHead: () => true, onData: () => {}, onEnd: () => {} });
      const bytes = Buffer.from(fits, 'latin1');
      assert.doesNotThrow(() => {
        parser.execute(bytes.subarray(0, split));
        parser.execute(bytes.subarray(split));
      }, `split at ${split}`);
      assert.ok(parser.done, `split at ${split}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Refusals: the table is checked against the parser and against the server over a socket.

interface Refusal {
  name: string;
  wire: string;
  status: number;
  message: RegExp;
}

const HOST = 'Host: test.local\r\n';
const REFUSALS: Refusal[] = [
  { name: 'content-length together with transfer-encoding', wire: `POST / HTTP/1.1\r\n${HOST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400, message: /both content-length and transfer-encoding/ },
  { name: 'transfer-encoding before content-length', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`, status: 400, message: /both content-length and transfer-encoding/ },
  { name: 'two content-length headers (same value)', wire: `POST / HTTP/1.1\r\n${HOST}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, status: 400, message: /more than one content-length/ },
  { name: 'two content-length headers (different values)', wire: `POST / HTTP/1.1\r\n${HOST}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, status: 400, message: /more than one content-length/ },
  { name: 'content-length as a list', wire: `POST / HTTP/1.1\r\n${HOST}Content-Length: 5, 5\r\n\r\nhello`, status: 400, message: /content-length is not a number/ },
  { name: 'non-numeric content-length', wire: `POST / HTTP/1.1\r\n${HOST}Content-Length: abc\r\n\r\n`, status: 400, message: /content-length is not a number: "abc"/ },
  { name: 'negative content-length', wire: `POST / HTTP/1.1\r\n${HOST}Content-Length: -1\r\n\r\n`, status: 400, message: /content-length is not a number/ },
  { name: 'content-length with a plus sign', wire: `POST / HTTP/1.1\r\n${HOST}Content-Length: +5\r\n\r\nhello`, status: 400, message: /content-length is not a number/ },
  { name: 'hexadecimal content-length', wire: `POST / HTTP/1.1\r\n${HOST}Content-Length: 0x5\r\n\r\nhello`, status: 400, message: /content-length is not a number/ },
  { name: 'empty content-length', wire: `POST / HTTP/1.1\r\n${HOST}Content-Length:\r\n\r\n`, status: 400, message: /content-length is not a number/ },
  { name: 'transfer-encoding gzip, chunked', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, status: 501, message: /transfer codings other than chunked are not supported: "gzip, chunked"/ },
  { name: 'transfer-encoding over two lines (gzip then chunked)', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 501, message: /other than chunked/ },
  { name: 'transfer-encoding chunked, identity', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`, status: 400, message: /does not end with chunked/ },
  { name: 'transfer-encoding identity', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: identity\r\n\r\n`, status: 400, message: /does not end with chunked/ },
  { name: 'transfer-encoding chunked with a trailing junk token', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n`, status: 400, message: /does not end with chunked/ },
  { name: 'transfer-encoding in HTTP/1.0', wire: 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', status: 400, message: /HTTP\/1\.0 request may not use transfer-encoding/ },
  { name: 'obs-fold with a space', wire: `GET / HTTP/1.1\r\n${HOST}X-A: one\r\n two\r\n\r\n`, status: 400, message: /folded/ },
  { name: 'obs-fold with a tab', wire: `GET / HTTP/1.1\r\n${HOST}X-A: one\r\n\ttwo\r\n\r\n`, status: 400, message: /folded/ },
  { name: 'a space before the colon', wire: `GET / HTTP/1.1\r\nHost : test.local\r\n\r\n`, status: 400, message: /whitespace before its colon/ },
  { name: 'a tab before the colon', wire: `GET / HTTP/1.1\r\n${HOST}Transfer-Encoding\t: chunked\r\n\r\n`, status: 400, message: /whitespace before its colon/ },
  { name: 'a header name with a non-token character', wire: `GET / HTTP/1.1\r\n${HOST}X@A: b\r\n\r\n`, status: 400, message: /does not start with a valid name/ },
  { name: 'a header line without a colon', wire: `GET / HTTP/1.1\r\n${HOST}NoColonHere\r\n\r\n`, status: 400, message: /no name or no colon/ },
  { name: 'a header line with an empty name', wire: `GET / HTTP/1.1\r\n${HOST}: value\r\n\r\n`, status: 400, message: /no name or no colon/ },
  { name: 'a bare LF inside the header section', wire: `GET / HTTP/1.1\r\nHost: test.local\nX-Smuggled: yes\r\n\r\n`, status: 400, message: /'host' has a control character/ },
  { name: 'a bare LF after the request line', wire: `GET / HTTP/1.1\n${HOST}\r\n`, status: 400, message: /request line does not end with an HTTP version/ },
  { name: 'a chunk size that is not hex', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`, status: 400, message: /chunk size .* not a hex number/ },
  { name: 'a chunk size with a 0x prefix', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`, status: 400, message: /chunk size .* not a hex number/ },
  { name: 'an empty chunk size', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n`, status: 400, message: /chunk size/ },
  { name: 'a negative chunk size', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n`, status: 400, message: /chunk size .* not a hex number/ },
  { name: 'a chunk size of 13 hex digits', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n0000000000005\r\nhello\r\n0\r\n\r\n`, status: 400, message: /at most 12 digits/ },
  { name: 'a chunk size line over 4 KiB', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n5;${'e'.repeat(5000)}\r\nhello\r\n0\r\n\r\n`, status: 400, message: /chunk size line .* too long/ },
  { name: 'a chunk longer than its size line', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n2\r\nokay\r\n0\r\n\r\n`, status: 400, message: /longer than its size line/ },
  { name: 'a bare LF after a chunk size', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n`, status: 400, message: /bare LF/ },
  { name: 'a bare LF after chunk data', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n`, status: 400, message: /chunk/ },
  { name: 'a bare LF ending the last chunk', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\n\r\n`, status: 400, message: /bare LF/ },
  { name: 'a bare LF ending the chunked body', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\n`, status: 400, message: /bare LF/ },
  { name: 'a bare LF in a trailer', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n0\r\nx-t: 1\n\r\n`, status: 400, message: /bare LF/ },
  { name: 'a trailer line that is not a header', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n0\r\nnot a header\r\n\r\n`, status: 400, message: /trailer line/ },
  { name: 'whitespace between a chunk size and its extension', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n5 ;a\r\nhello\r\n0\r\n\r\n`, status: 400, message: /chunk size .* not a hex number/ },
  { name: 'whitespace after a chunk size', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n5\t\r\nhello\r\n0\r\n\r\n`, status: 400, message: /chunk size .* not a hex number/ },
  { name: 'a chunk extension with whitespace after its semicolon', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n5; a=b\r\nhello\r\n0\r\n\r\n`, status: 400, message: /chunk extension .* is not ;name/ },
  { name: 'a chunk extension with an empty value', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n5;a=\r\nhello\r\n0\r\n\r\n`, status: 400, message: /chunk extension .* is not ;name/ },
  { name: 'a chunk extension value that is not a token or quoted', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n5;a=\xe9\r\nhello\r\n0\r\n\r\n`, status: 400, message: /chunk extension .* is not ;name/ },
  { name: 'content-length as a trailer', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n0\r\ncontent-length: 3\r\n\r\n`, status: 400, message: /carry content-length, which only the head may/ },
  { name: 'a trailer with a space before its colon', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n0\r\nx-t : 1\r\n\r\n`, status: 400, message: /trailer line/ },
  { name: 'a tab after the value of content-length', wire: `POST / HTTP/1.1\r\n${HOST}Content-Length: 5\t\r\n\r\nhello`, status: 400, message: /content-length header has a tab after its value/ },
  { name: 'a tab after the value of transfer-encoding', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n`, status: 400, message: /transfer-encoding header has a tab after its value/ },
  { name: 'a byte that is not ASCII in the target', wire: `GET /caf\xe9 HTTP/1.1\r\n${HOST}\r\n`, status: 400, message: /not ASCII \(send it percent-encoded\)/ },
  { name: 'a bare CR before the request line', wire: `\rGET / HTTP/1.1\r\n${HOST}\r\n`, status: 400, message: /bare CR/ },
  { name: 'an empty expect header', wire: `GET / HTTP/1.1\r\n${HOST}Expect: \r\n\r\n`, status: 417, message: /only 100-continue is supported/ },
  { name: 'an absolute-form target without a host header', wire: `GET http://example.com/ HTTP/1.1\r\n\r\n`, status: 400, message: /must have a host header/ },
  { name: 'a chunk extension with a control character', wire: `POST / HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n5;a=\x01\r\nhello\r\n0\r\n\r\n`, status: 400, message: /chunk extension .* control character/ },
  { name: 'HTTP/1.1 without host', wire: 'GET / HTTP/1.1\r\nX-A: b\r\n\r\n', status: 400, message: /must have a host header/ },
  { name: 'two host headers', wire: `GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n`, status: 400, message: /more than one host header/ },
  { name: 'HTTP/2.0', wire: `GET / HTTP/2.0\r\n${HOST}\r\n`, status: 505, message: /HTTP version 2\.0 is not supported/ },
  { name: 'HTTP/1.2', wire: `GET / HTTP/1.2\r\n${HOST}\r\n`, status: 505, message: /HTTP version 1\.2 is not supported/ },
  { name: 'a version with trailing text', wire: `GET / HTTP/1.1x\r\n${HOST}\r\n`, status: 400, message: /does not end with an HTTP version/ },
  { name: 'a lower-case version', wire: `GET / http/1.1\r\n${HOST}\r\n`, status: 400, message: /does not end with an HTTP version/ },
  { name: 'CONNECT', wire: `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n`, status: 501, message: /CONNECT is not supported/ },
  { name: 'expect: something-else', wire: `POST / HTTP/1.1\r\n${HOST}Expect: something-else\r\nContent-Length: 2\r\n\r\nhi`, status: 417, message: /expects "something-else"/ },
  { name: 'a header section over 16 KiB', wire: `GET / HTTP/1.1\r\n${HOST}X-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`, status: 431, message: /larger than 16 KiB/ },
  { name: 'a header section over 16 KiB that never ends', wire: `GET / HTTP/1.1\r\n${HOST}X-Big: ${'a'.repeat(17 * 1024)}`, status: 431, message: /larger than 16 KiB/ },
  { name: 'more than 256 header lines', wire: `GET / HTTP/1.1\r\n${HOST}${Array.from({ length: 300 }, (_, i) => `x-${i}: v\r\n`).join('')}\r\n`, status: 431, message: /more than 256 header lines/ },
  { name: 'a control character in a header value', wire: `GET / HTTP/1.1\r\n${HOST}X-A: a\x01b\r\n\r\n`, status: 400, message: /'x-a' has a control character/ },
  { name: 'a NUL in a header value', wire: `GET / HTTP/1.1\r\n${HOST}X-A: a\x00b\r\n\r\n`, status: 400, message: /'x-a' has a control character/ },
  { name: 'a DEL in a header value', wire: `GET / HTTP/1.1\r\n${HOST}X-A: a\x7fb\r\n\r\n`, status: 400, message: /'x-a' has a control character/ },
  { name: 'a CR in a header value', wire: `GET / HTTP/1.1\r\n${HOST}X-A: a\rb\r\n\r\n`, status: 400, message: /'x-a' has a control character/ },
  { name: 'a request target with a space', wire: `GET /a b HTTP/1.1\r\n${HOST}\r\n`, status: 400, message: /request line/ },
  { name: 'a request target with a tab', wire: `GET /a\tb HTTP/1.1\r\n${HOST}\r\n`, status: 400, message: /request target has a control character or a space/ },
  { name: 'a request target that is not a path', wire: `GET foo HTTP/1.1\r\n${HOST}\r\n`, status: 400, message: /not a path or an absolute http URL/ },
  { name: 'an absolute target with user info', wire: `GET http://user@example.com/ HTTP/1.1\r\n${HOST}\r\n`, status: 400, message: /user info/ },
  { name: 'a method that is not a token', wire: `G(T / HTTP/1.1\r\n${HOST}\r\n`, status: 400, message: /method is not a token/ },
  { name: 'a request line with two spaces in a row', wire: `GET  / HTTP/1.1\r\n${HOST}\r\n`, status: 400, message: /not "METHOD target HTTP\/1\.x"/ },
  { name: 'a request line with no version', wire: `GET /\r\n${HOST}\r\n`, status: 400, message: /request line/ },
];

describe('refusals by the parser', () => {
  test('parser — every refusal in the table throws a RequestError with its status and message', () => {
    for (const { name, wire, status, message } of REFUSALS) {
      const err = parserError(wire);
      assert.equal(err.status, status, name);
      assert.match(err.message, message, name);
    }
  });
});

describe('refusals by the server', () => {
  for (const { name, wire, status, message } of REFUSALS) {
    test(`refusal — ${name}: ${status}, a JSON error naming it, connection: close, then closed`, async () => {
      const { client, response } = await exchange(main.port, wire);
      assertRefusal(response, status, message);
      await client.waitClosed();
      assert.equal(client.unread.length, 0, 'nothing after the refusal');
    });
  }

  test('refusal — a head with bare LF line endings is refused at once with 400 (not left to the headers timeout)', async () => {
    const client = await RawClient.connect(main.port);
    await client.write('GET / HTTP/1.1\nHost: test.local\n\n');
    const response = await client.response('GET', 2_000);
    assertRefusal(response, 400, /LF|line/);
    await client.waitClosed();
  });
});

// ---------------------------------------------------------------------------------------------
// Smuggling: once a request is refused, nothing more on its connection is read.

describe('smuggling', () => {
  test('smuggling — a request pipelined after a CL+TE request is not answered or handled', async () => {
    const client = await RawClient.connect(main.port);
    const smuggled = 'GET /smuggled-after-clte HTTP/1.1\r\nHost: test.local\r\n\r\n';
    await client.write(`POST /clte HTTP/1.1\r\n${HOST}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}${get('/after-clte')}`);
    assertRefusal(await client.response(), 400, /both content-length and transfer-encoding/);
    await client.waitClosed();
    assert.equal(client.unread.length, 0, 'exactly one response');
    assert.ok(!main.app.seen.some((s) => /clte/.test(s)), `handled: ${main.app.seen.filter((s) => /clte/.test(s)).join(', ')}`);
  });

  test('smuggling — a request after a malformed chunked body is not handled', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(`POST /bad-chunks HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nabcGET /smuggled-chunks HTTP/1.1\r\nHost: x\r\n\r\n0\r\n\r\n${get('/after-bad-chunks')}`);
    assertRefusal(await client.response(), 400, /longer than its size line/);
    await client.waitClosed();
    assert.equal(client.unread.length, 0);
    assert.ok(!main.app.seen.some((s) => /smuggled-chunks|after-bad-chunks/.test(s)));
  });

  test('smuggling — a request inside a content-length body is body, not a request', async () => {
    const inner = 'GET /smuggled-in-body HTTP/1.1\r\nHost: test.local\r\n\r\n';
    const { client, response } = await exchange(main.port, post('/carrier', inner));
    assert.equal(response.status, 200);
    assert.equal(response.json<Echo>().body, inner);
    // The connection is still in step: the next request is the next one answered.
    await client.write(get('/after-carrier'));
    assert.equal((await client.response()).json<Echo>().url, '/after-carrier');
    assert.ok(!main.app.seen.some((s) => s.includes('/smuggled-in-body')));
    client.destroy();
  });

  test('absolute-form — the handler sees the path and query of an absolute-form target, and its authority as host', async () => {
    const { client, response } = await exchange(main.port, `GET http://abs.example/p/q?x=1 HTTP/1.1\r\n${HOST}\r\n`);
    const echo = response.json<Echo>();
    assert.equal(echo.url, '/p/q?x=1');
    assert.equal(echo.headers.host, 'abs.example');
    client.destroy();
  });

  test('absolute-form — a target with a query and no path is not routed by a slash inside the query', async () => {
    const { client, response } = await exchange(main.port, `GET http://abs.example?next=/admin HTTP/1.1\r\n${HOST}\r\n`);
    assert.equal(response.json<Echo>().url, '/?next=/admin');
    client.destroy();
  });

  test('smuggling — an unread body is discarded, never parsed as requests', async () => {
    const inner = `GET /smuggled-in-unread-body HTTP/1.1\r\nHost: test.local\r\n\r\n`;
    const { client, response } = await exchange(main.port, post('/nobody', inner));
    assert.equal(response.status, 404);
    await client.write(get('/after-unread'));
    assert.equal((await client.response()).json<Echo>().url, '/after-unread');
    assert.ok(!main.app.seen.some((s) => s.includes('/smuggled-in-unread-body')));
    client.destroy();
  });
});

// ---------------------------------------------------------------------------------------------
// Keep-alive.

describe('keep-alive', () => {
  test('keep-alive — two requests on one connection are both answered; the connection stays open', async () => {
    const { client, response: first } = await exchange(main.port, get('/ka/1'));
    assert.equal(first.status, 200);
    assert.equal(first.get('connection'), undefined, 'HTTP/1.1 keep-alive needs no connection header');
    assert.equal(first.json<Echo>().url, '/ka/1');
    await client.write(get('/ka/2'));
    const second = await client.response();
    assert.equal(second.json<Echo>().url, '/ka/2');
    assert.ok(!client.closed && !client.ended);
    client.destroy();
  });

  test('keep-alive — connection: close is answered with connection: close and the socket closes', async () => {
    const { client, response } = await exchange(main.port, get('/ka/close', 'Connection: close\r\n'));
    assert.equal(response.status, 200);
    assert.equal(response.get('connection'), 'close');
    await client.waitClosed();
  });

  test('keep-alive — a request pipelined after connection: close is not handled', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(get('/ka/last', 'Connection: close\r\n') + get('/ka/after-last'));
    assert.equal((await client.response()).get('connection'), 'close');
    await client.waitClosed();
    assert.equal(client.unread.length, 0);
    assert.ok(!main.app.seen.some((s) => s.includes('/ka/after-last')));
  });

  test('keep-alive — HTTP/1.0 without keep-alive is answered with connection: close and closed', async () => {
    const { client, response } = await exchange(main.port, 'GET /ka/h10 HTTP/1.0\r\n\r\n');
    assert.equal(response.status, 200);
    assert.equal(response.get('connection'), 'close');
    assert.equal(response.json<Echo>().url, '/ka/h10');
    await client.waitClosed();
  });

  test('keep-alive — HTTP/1.0 with connection: keep-alive is answered with connection: keep-alive and kept open', async () => {
    const { client, response } = await exchange(main.port, 'GET /ka/h10ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    assert.equal(response.get('connection'), 'keep-alive');
    await client.write('GET /ka/h10ka2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const second = await client.response();
    assert.equal(second.json<Echo>().url, '/ka/h10ka2');
    assert.equal(second.get('connection'), 'keep-alive');
    assert.ok(!client.closed);
    client.destroy();
  });
});

// ---------------------------------------------------------------------------------------------
// Pipelining.

describe('pipelining', () => {
  test('pipelining — three requests in one write are answered in order with the right bodies, despite different delays', async () => {
    const { app, port } = await startEcho();
    const client = await RawClient.connect(port);
    await client.write(post('/p/1?delay=150', 'first-body') + postChunked('/p/2?delay=10', ['sec', 'ond']) + get('/p/3?delay=60'));
    const echoes: Echo[] = [];
    for (let i = 0; i < 3; i++) echoes.push((await client.response()).json<Echo>());
    assert.deepEqual(echoes.map((e) => [e.url, e.body]), [
      ['/p/1?delay=150', 'first-body'],
      ['/p/2?delay=10', 'second'],
      ['/p/3?delay=60', ''],
    ]);
    // Each request is handed over only once the answer before it is written.
    assert.deepEqual(app.events, ['start /p/1?delay=150', 'answer /p/1?delay=150', 'start /p/2?delay=10', 'answer /p/2?delay=10', 'start /p/3?delay=60', 'answer /p/3?delay=60']);
    assert.ok(!client.closed);
    client.destroy();
  });

  test('pipelining — 40 requests with 2 KiB bodies (80 KiB) in one write are all answered in order', async () => {
    const client = await RawClient.connect(main.port);
    const bodies = Array.from({ length: 40 }, (_, i) => String.fromCharCode(97 + (i % 26)).repeat(2048));
    await client.write(bodies.map((b, i) => post(`/many/${i}${i % 7 === 0 ? '?delay=5' : ''}`, b)).join(''));
    for (let i = 0; i < bodies.length; i++) {
      const echo = (await client.response()).json<Echo>();
      assert.equal(echo.url.split('?')[0], `/many/${i}`);
      assert.equal(echo.body, bodies[i]);
    }
    client.destroy();
  });

  test('pipelining — a request answered without reading its body, then pipelined requests: all answered', async () => {
    const client = await RawClient.connect(main.port);
    const body = 'x'.repeat(100 * 1024);
    await client.write(post('/late-nobody?delay=30', body) + get('/after-nobody/1') + post('/after-nobody/2', 'two'));
    const first = await client.response();
    assert.equal(first.status, 404);
    assert.equal(first.text(), 'not found, late');
    assert.equal((await client.response()).json<Echo>().url, '/after-nobody/1');
    assert.equal((await client.response()).json<Echo>().body, 'two');
    client.destroy();
  });

  test('pipelining — a client that pipelines without reading its answers is not parsed past what it can take; once it reads, the rest is served', async () => {
    const REQUESTS = 4_000;
    const BATCHES = 40;
    const BODY = Buffer.alloc(16 * 1024, 'b');
    let handled = 0;
    const { port } = await startServer({
      request: (_req, res) => {
        handled += 1;
        res.send(200, ['content-type', 'text/plain'], BODY);
      },
    });
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    // Not read until told: the answers pile up in the kernel's buffers, then in the server's.
    socket.pause();
    await withTimeout(new Promise((resolve) => socket.once('connect', resolve)), 3_000, 'connecting');
    // 4,000 requests (108 KB) written continuously, never waiting for a drain; answering them all
    // at once would queue 64 MiB.
    const batch = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(REQUESTS / BATCHES), 'latin1');
    for (let i = 0; i < BATCHES; i++) {
      socket.write(batch);
      await delay(5);
    }
    const stalled = await steady(() => handled, 500, 'the count of requests handled to stop growing');
    assert.ok(stalled > 0, 'some requests are handled');
    assert.ok(stalled < REQUESTS / 2, `handled ${stalled} of ${REQUESTS} requests (${(stalled * BODY.length) / 2 ** 20} MiB of answers) for a client that reads nothing`);
    await delay(300);
    assert.equal(handled, stalled, 'no more requests are handled while the client reads nothing');

    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    socket.resume();
    await pollUntil(() => handled === REQUESTS && received >= REQUESTS * BODY.length, `all ${REQUESTS} requests to be handled and answered once the client reads`, 10_000);
    socket.destroy();
  });
});

// ---------------------------------------------------------------------------------------------
// Request bodies.

describe('request bodies', () => {
  test('body — a content-length body is read whole by the handler', async () => {
    const { client, response } = await exchange(main.port, post('/b/cl', 'hello, body'));
    const echo = response.json<Echo>();
    assert.equal(echo.body, 'hello, body');
    assert.equal(echo.headers['content-length'], '11');
    client.destroy();
  });

  test('body — a chunked body with extensions and trailers is read whole; trailers are not headers', async () => {
    const wire = `POST /b/chunked HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n4;a=b\r\nWiki\r\n5;c\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nx-checksum: 1\r\n\r\n`;
    const { client, response } = await exchange(main.port, wire);
    const echo = response.json<Echo>();
    assert.equal(echo.body, 'Wikipedia in\r\n\r\nchunks.');
    assert.equal(echo.headers['x-checksum'], undefined);
    client.destroy();
  });

  test('body — a 1 MiB body streamed in 64 KiB writes arrives whole', async () => {
    const size = 1024 * 1024;
    const payload = Buffer.alloc(size);
    for (let i = 0; i < size; i++) payload[i] = (i * 7) & 0xff;
    const client = await RawClient.connect(main.port);
    await client.write(`POST /b/big HTTP/1.1\r\n${HOST}Content-Length: ${size}\r\n\r\n`);
    for (let at = 0; at < size; at += 64 * 1024) await client.write(payload.subarray(at, at + 64 * 1024));
    const echo = (await client.response('POST', 10_000)).json<Echo>();
    assert.equal(echo.bodyLength, size);
    assert.equal(echo.sha256, sha256(payload));
    client.destroy();
  });

  test('body — a 1 MiB body the handler starts reading late (past the in-memory queue) arrives whole', async () => {
    const size = 1024 * 1024;
    const payload = Buffer.alloc(size);
    for (let i = 0; i < size; i++) payload[i] = (i * 13 + 5) & 0xff;
    const client = await RawClient.connect(main.port);
    await client.write(Buffer.concat([Buffer.from(`POST /b/late?readAfter=150 HTTP/1.1\r\n${HOST}Content-Length: ${size}\r\n\r\n`, 'latin1'), payload]));
    const echo = (await client.response('POST', 10_000)).json<Echo>();
    assert.equal(echo.bodyLength, size);
    assert.equal(echo.sha256, sha256(payload));
    await client.write(get('/b/after-late'));
    assert.equal((await client.response()).json<Echo>().url, '/b/after-late');
    client.destroy();
  });

  test('body — a chunked 1 MiB body in many chunks arrives whole', async () => {
    const parts = Array.from({ length: 256 }, (_, i) => String.fromCharCode(65 + (i % 26)).repeat(4096));
    const { client, response } = await exchange(main.port, postChunked('/b/chunked-big', parts));
    const echo = response.json<Echo>();
    assert.equal(echo.bodyLength, 1024 * 1024);
    assert.equal(echo.sha256, sha256(Buffer.from(parts.join(''))));
    client.destroy();
  });

  test('body — a handler that answers 404 without reading the body; the connection then serves the next request', async () => {
    const body = 'y'.repeat(300 * 1024);
    const { client, response } = await exchange(main.port, post('/nobody', body));
    assert.equal(response.status, 404);
    assert.equal(response.text(), 'not found');
    await client.write(post('/b/next', 'next body'));
    const next = await client.response();
    assert.equal(next.json<Echo>().body, 'next body');
    client.destroy();
  });

  test('body — an unread body over 1 MiB is not read forever: the connection closes after the answer', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(`POST /nobody HTTP/1.1\r\n${HOST}Content-Length: ${4 * 1024 * 1024}\r\n\r\n`);
    assert.equal((await client.response()).status, 404);
    const chunk = Buffer.alloc(64 * 1024, 0x7a);
    // Keep sending until the server gives up on the body; bounded by the 4 MiB declared.
    for (let sent = 0; sent < 4 * 1024 * 1024 && !client.closed && !client.error; sent += chunk.length) {
      await client.write(chunk).catch(() => undefined);
    }
    await client.waitClosed();
  });

  test('body — expect: 100-continue gets HTTP/1.1 100 Continue before the final answer', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(`PUT /b/continue HTTP/1.1\r\n${HOST}Expect: 100-continue\r\nContent-Length: 5\r\n\r\n`);
    await client.until(() => client.unread.length >= 25, 'the interim response');
    assert.equal(client.unread.toString('latin1'), 'HTTP/1.1 100 Continue\r\n\r\n');
    const interim = await client.response();
    assert.equal(interim.status, 100);
    await client.write('hello');
    const final = await client.response();
    assert.equal(final.status, 200);
    assert.equal(final.json<Echo>().body, 'hello');
    client.destroy();
  });

  test('body — no 100 Continue for an HTTP/1.0 request or one without a body', async () => {
    const h10 = await exchange(main.port, 'PUT /b/continue10 HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi');
    assert.equal(h10.response.status, 200);
    assert.equal(h10.response.json<Echo>().body, 'hi');
    const nobody = await exchange(main.port, get('/b/continue-nobody', 'Expect: 100-continue\r\n'));
    assert.equal(nobody.response.status, 200);
    h10.client.destroy();
    nobody.client.destroy();
  });
});

// ---------------------------------------------------------------------------------------------
// Responses.

describe('responses', () => {
  test('send — content-length is set from the body; one date header; no transfer-encoding', async () => {
    const { client, response } = await exchange(main.port, get('/sync'));
    assert.equal(response.status, 200);
    assert.equal(response.reason, 'OK');
    assert.equal(response.version, 'HTTP/1.1');
    assert.equal(response.get('content-length'), '4');
    assert.equal(response.count('content-length'), 1);
    assert.equal(response.get('transfer-encoding'), undefined);
    assert.equal(response.text(), 'sync');
    assert.equal(response.count('date'), 1);
    assert.ok(Math.abs(Date.parse(response.get('date')!) - Date.now()) < 5_000, `date ${response.get('date')}`);
    client.destroy();
  });

  test('send — a body larger than the copy limit (100 KiB) arrives whole with its length', async () => {
    const { client, response } = await exchange(main.port, get('/big/102400'));
    assert.equal(response.get('content-length'), '102400');
    assert.equal(response.body.length, 102400);
    assert.equal(response.body[102399], 97 + (102399 % 26));
    await client.write(get('/after-big'));
    assert.equal((await client.response()).json<Echo>().url, '/after-big');
    client.destroy();
  });

  test('send — HEAD gets no body but keeps lengthOfHead; GET of the same gets the body', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(`HEAD /head HTTP/1.1\r\n${HOST}\r\n${get('/head')}`);
    const head = await client.response('HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.get('content-length'), '5');
    const full = await client.response('GET');
    assert.equal(full.get('content-length'), '5');
    assert.equal(full.text(), 'hello', 'no body bytes were sent for the HEAD (the next answer parses right after it)');
    client.destroy();
  });

  test('send — 204 and 304 have no content-length and no body', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(get('/status/204') + get('/status/304') + get('/after-204'));
    const noContent = await client.response();
    assert.equal(noContent.status, 204);
    assert.equal(noContent.get('content-length'), undefined);
    assert.equal(noContent.get('x-status'), '204');
    const notModified = await client.response();
    assert.equal(notModified.status, 304);
    assert.equal(notModified.get('content-length'), undefined);
    const next = await client.response();
    assert.equal(next.json<Echo>().url, '/after-204', 'no stray body bytes before the next answer');
    client.destroy();
  });

  test('send — an invalid header or status throws and writes nothing', async () => {
    const { client, response } = await exchange(main.port, get('/invalid'));
    assert.equal(response.status, 200);
    const outcomes = response.json<string[]>();
    assert.ok(outcomes.length >= 16);
    for (const outcome of outcomes) assert.match(outcome, /: threw$/, outcome);
    assert.equal(response.get('x-a'), undefined);
    assert.equal(response.get('x-injected'), undefined);
    await client.write(get('/after-invalid'));
    assert.equal((await client.response()).json<Echo>().url, '/after-invalid');
    client.destroy();
  });

  test('stream — a known length is sent as content-length; the connection is reused after', async () => {
    const { client, response } = await exchange(main.port, get('/stream?mode=known'));
    assert.equal(response.get('content-length'), String(PARTS_TEXT.length));
    assert.equal(response.get('transfer-encoding'), undefined);
    assert.equal(response.text(), PARTS_TEXT);
    await client.write(get('/after-stream'));
    assert.equal((await client.response()).json<Echo>().url, '/after-stream');
    client.destroy();
  });

  test('stream — an unknown length is chunked on the wire and the connection is reused after', async () => {
    const { client, response } = await exchange(main.port, get('/stream?mode=unknown'));
    assert.equal(response.get('transfer-encoding'), 'chunked');
    assert.equal(response.get('content-length'), undefined);
    assert.equal(response.text(), PARTS_TEXT);
    await client.write(get('/after-chunked'));
    assert.equal((await client.response()).json<Echo>().url, '/after-chunked');
    client.destroy();
  });

  test("stream — an unknown length is decoded correctly by node's http client", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await nodeRequest(main.port, agent, '/stream?mode=unknown');
      assert.equal(first.status, 200);
      assert.equal(first.headers['transfer-encoding'], 'chunked');
      assert.equal(first.body.toString(), PARTS_TEXT);
      const second = await nodeRequest(main.port, agent, '/stream?mode=known');
      assert.equal(second.body.toString(), PARTS_TEXT);
      assert.equal(second.socket, first.socket, 'the connection was kept');
    } finally {
      agent.destroy();
    }
  });

  test('stream — an HTTP/1.0 client gets a close-delimited body with connection: close', async () => {
    const client = await RawClient.connect(main.port);
    await client.write('GET /stream?mode=unknown HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    await client.waitClosed();
    const response = await client.response();
    assert.equal(response.get('connection'), 'close');
    assert.equal(response.get('transfer-encoding'), undefined);
    assert.equal(response.get('content-length'), undefined);
    assert.equal(response.text(), PARTS_TEXT);
  });

  test('stream — a body that ends short of its declared length closes the connection', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(get('/stream?mode=short'));
    await client.waitClosed();
    const text = client.unread.toString('latin1');
    const split = text.indexOf('\r\n\r\n');
    assert.ok(split > 0, text);
    assert.match(text.slice(0, split), new RegExp(`\r\ncontent-length: ${PARTS_TEXT.length + 10}(\r\n|$)`));
    assert.equal(text.slice(split + 4), PARTS_TEXT, 'what was sent, and nothing more');
  });

  test('stream — a body longer than its declared length closes the connection without the excess', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(get('/stream?mode=long'));
    await client.waitClosed();
    const text = client.unread.toString('latin1');
    const split = text.indexOf('\r\n\r\n');
    assert.ok(split > 0, text);
    assert.match(text.slice(0, split), /\r\ncontent-length: 3(\r\n|$)/);
    assert.ok(text.length - (split + 4) <= 3, `body bytes after the head: ${JSON.stringify(text.slice(split + 4))}`);
  });

  test('stream — a body that fails after the exchange is over raises nothing uncaught', async () => {
    let body: Readable | undefined;
    const { port } = await startServer({
      request: (_req, res) => {
        body = new Readable({ read() {}, autoDestroy: false });
        res.stream(200, ['content-type', 'text/plain'], body, '3');
        body.push('abc');
        body.push(null);
      },
    });
    const errors = await uncaughtDuring(async () => {
      const { client, response } = await exchange(port, get('/late-error'));
      assert.equal(response.text(), 'abc');
      client.destroy();
      await delay(20);
      body!.destroy(new Error('a failure after the end'));
      await delay(50);
    });
    assert.deepEqual(errors, []);
  });

  test('stream — HEAD gets the head only and the connection goes on', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(`HEAD /stream?mode=known HTTP/1.1\r\n${HOST}\r\n${get('/after-head-stream')}`);
    const head = await client.response('HEAD');
    assert.equal(head.get('content-length'), String(PARTS_TEXT.length));
    assert.equal((await client.response()).json<Echo>().url, '/after-head-stream');
    client.destroy();
  });

  for (const mode of ['unknown', 'known'] as const) {
    const framing = mode === 'known' ? 'content-length' : 'chunked';
    test(`stream — a body destroyed without an error after some bytes closes the connection (${framing})`, async () => {
      const tag = `destroyed-${mode}`;
      const client = await RawClient.connect(main.port);
      await client.write(get(`/stream-destroyed?mode=${mode}&tag=${tag}`));
      await client.until(() => client.unread.includes(PARTS[0]!), 'the first part of the body');
      const body = main.app.streams.get(tag);
      assert.ok(body, 'the body being streamed');
      body.destroy();
      await client.waitClosed();
      const text = client.unread.toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      assert.ok(split > 0, text);
      if (mode === 'known') {
        assert.match(text.slice(0, split), new RegExp(`\r\ncontent-length: ${PARTS_TEXT.length}(\r\n|$)`));
        assert.equal(text.slice(split + 4), PARTS[0], 'what was sent, and nothing more');
      } else {
        assert.match(text.slice(0, split), /\r\ntransfer-encoding: chunked(\r\n|$)/);
        assert.equal(text.slice(split + 4), `${PARTS[0]!.length.toString(16)}\r\n${PARTS[0]}\r\n`, 'the chunk sent, and no last chunk');
      }
    });
  }

  test('stream — a second send or stream while the first is streaming throws and writes nothing; the first answer is intact', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(get('/twice?first=stream') + get('/after-twice-stream'));
    const first = await client.response();
    assert.equal(first.status, 200);
    assert.equal(first.get('transfer-encoding'), 'chunked');
    assert.equal(first.text(), `first answer;${JSON.stringify(['send: threw', 'stream: threw'])}`);
    assert.equal((await client.response()).json<Echo>().url, '/after-twice-stream');
    await delay(20);
    assert.equal(client.unread.length, 0, 'nothing after the answers');
    client.destroy();
  });

  test('send — a second send or stream after a whole response throws and writes nothing; the first answer is intact', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(get('/twice?first=send&tag=after-send') + get('/after-twice-send'));
    const first = await client.response();
    assert.equal(first.status, 200);
    assert.equal(first.text(), 'first answer');
    assert.equal((await client.response()).json<Echo>().url, '/after-twice-send');
    await delay(20);
    assert.equal(client.unread.length, 0, 'nothing after the answers');
    assert.deepEqual(main.app.twice.get('after-send'), ['send: threw', 'stream: threw']);
    client.destroy();
  });
});

// ---------------------------------------------------------------------------------------------
// Clients that leave.

describe('clients that go away', () => {
  test('client gone — closing mid-body calls res.onClose(false) and errors req.body with RequestAbortedError', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(`POST /hold/mid-body HTTP/1.1\r\n${HOST}Content-Length: 100\r\n\r\n0123456789`);
    await pollUntil(() => main.app.held.get('mid-body')?.bodyBytes === 10, 'the first body bytes to reach the handler');
    client.destroy();
    const held = main.app.held.get('mid-body')!;
    await pollUntil(() => held.closedWith !== undefined && held.bodyClosed, 'onClose and the body to close');
    assert.equal(held.closedWith, false);
    assert.ok(held.bodyError instanceof RequestAbortedError, `body error: ${String(held.bodyError)}`);
    assert.equal(held.bodyError.code, 'ECONNRESET');
    assert.equal(held.bodyEnded, false);
    assert.equal(held.res.finished, false);
  });

  test('client gone — a body error raised after its reader let go (FIN mid-body, malformed chunk) is not an uncaught error', async () => {
    // The process proxy's pattern: it listens for the body's errors while it sends the body, and
    // lets go as soon as the exchange is abandoned, which is in the same turn the body fails.
    const closed: string[] = [];
    const { port } = await startServer({
      request: (req, res) => {
        const body = req.body;
        const onError = (): void => {};
        body.on('error', onError);
        body.on('data', () => {});
        body.on('close', () => closed.push(req.url));
        res.onClose = () => body.off('error', onError);
      },
    });
    const uncaught = await uncaughtDuring(async () => {
      const fin = await RawClient.connect(port);
      await fin.write(`POST /fin HTTP/1.1\r\n${HOST}Content-Length: 42\r\n\r\nabc`);
      await delay(50);
      fin.socket.end();
      const chunked = await RawClient.connect(port);
      await chunked.write(`POST /chunked HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\n`);
      await delay(50);
      await chunked.write('\r\n');
      await pollUntil(() => closed.length === 2, 'both bodies to close');
      await delay(50);
    });
    assert.deepEqual(uncaught, []);
  });

  test('client gone — a reset after a whole request (no body) calls res.onClose(false)', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(get('/hold/reset'));
    await pollUntil(() => main.app.held.has('reset'), 'the request to reach the handler');
    client.socket.resetAndDestroy();
    const held = main.app.held.get('reset')!;
    await pollUntil(() => held.closedWith !== undefined, 'onClose');
    assert.equal(held.closedWith, false);
    assert.equal(held.bodyEnded, true, 'a request without a body has an empty body that ended');
  });

  test('client gone — a half-close (FIN) after a whole request counts as leaving, and the server closes', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(post('/hold/fin', 'whole'));
    await pollUntil(() => main.app.held.get('fin')?.bodyEnded === true, 'the whole body to reach the handler');
    client.socket.end();
    const held = main.app.held.get('fin')!;
    await pollUntil(() => held.closedWith !== undefined, 'onClose');
    assert.equal(held.closedWith, false);
    assert.equal(held.bodyError, undefined, 'a body read whole does not error');
    await client.waitClosed();
    assert.equal(client.unread.length, 0);
  });

  test('client gone — a body asked for after the client left is destroyed with RequestAbortedError', async () => {
    const client = await RawClient.connect(main.port);
    await client.write(`POST /hold-lazy/lazy HTTP/1.1\r\n${HOST}Content-Length: 50\r\n\r\nabc`);
    await pollUntil(() => main.app.held.has('lazy'), 'the request to reach the handler');
    client.destroy();
    await pollUntil(() => main.app.held.get('lazy')!.closedWith !== undefined, 'onClose');
    const held = main.app.watchLater('lazy');
    await pollUntil(() => held.bodyClosed, 'the late body to close');
    assert.ok(held.bodyError instanceof RequestAbortedError, `body error: ${String(held.bodyError)}`);
  });

  test('client gone — a request answered at once and then a FIN: the answer arrives, then the connection closes', async () => {
    const client = await RawClient.connect(main.port);
    client.socket.end(Buffer.from(get('/sync'), 'latin1'));
    await client.waitClosed();
    const response = await client.response();
    assert.equal(response.text(), 'sync');
  });

  test('client gone — a FIN after the answer closes the connection', async () => {
    const { client, response } = await exchange(main.port, get('/fin-after'));
    assert.equal(response.status, 200);
    client.socket.end();
    await client.waitClosed();
    assert.ok(client.ended, 'the server closed its side: a FIN reached the client');
  });
});

// ---------------------------------------------------------------------------------------------
// Timeouts, with small limits.

describe('timeouts', () => {
  let timed: Running & { app: EchoApp };
  before(async () => {
    timed = await startEcho({ headersTimeoutMs: 300, keepAliveTimeoutMs: 300 });
  });

  test('timeout — half a head gets 408 and the connection is closed, within a bounded time', async () => {
    const started = Date.now();
    const client = await RawClient.connect(timed.port);
    await client.write('GET /slow-head HTTP/1.1\r\nHost: test.lo');
    assertRefusal(await client.response('GET', 3_000), 408, /did not arrive within/);
    await client.waitClosed();
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 2_000, `took ${elapsed} ms`);
    assert.ok(!timed.app.seen.some((s) => s.includes('/slow-head')));
  });

  test('timeout — a connection that sends nothing gets 408 and is closed', async () => {
    const started = Date.now();
    const client = await RawClient.connect(timed.port);
    assertRefusal(await client.response('GET', 3_000), 408, /did not arrive within/);
    await client.waitClosed();
    assert.ok(Date.now() - started < 2_000);
  });

  test('timeout — half a head of a second request on a kept connection gets 408', async () => {
    const { client, response } = await exchange(timed.port, get('/first-ok'));
    assert.equal(response.status, 200);
    await client.write('GET /second-slow HTTP/1.1\r\n');
    assertRefusal(await client.response('GET', 3_000), 408, /did not arrive within/);
    await client.waitClosed();
  });

  test('timeout — an idle keep-alive connection is closed, without a response, within a bounded time', async () => {
    const { client, response } = await exchange(timed.port, get('/idle'));
    assert.equal(response.status, 200);
    const answered = Date.now();
    await client.waitClosed(3_000);
    assert.ok(Date.now() - answered < 2_000);
    assert.equal(client.unread.length, 0, 'no bytes on an idle close');
  });

  test('timeout — a slow answer and a slow body are not cut by the timeouts', async () => {
    const client = await RawClient.connect(timed.port);
    await client.write(get('/slow-answer?delay=800'));
    assert.equal((await client.response('GET', 3_000)).json<Echo>().url, '/slow-answer?delay=800');
    await client.write(`POST /slow-body HTTP/1.1\r\n${HOST}Content-Length: 3\r\n\r\na`);
    await delay(400);
    await client.write('b');
    await delay(400);
    await client.write('c');
    assert.equal((await client.response('POST', 3_000)).json<Echo>().body, 'abc');
    client.destroy();
  });

  /** Writes `bytes` to `client` every `everyMs` while `go` holds; returns the stop function. */
  function keepWriting(client: RawClient, bytes: string, everyMs: number, go: () => boolean = () => !client.closed): () => void {
    const ticker = setInterval(() => {
      if (go()) client.socket.write(bytes);
    }, everyMs);
    return () => clearInterval(ticker);
  }

  // In the two tests below the other limit is shorter, so that the sweep runs every 100 ms, well
  // inside the limit tested: a timer that each empty line restarted would then never run out.
  test('timeout — empty lines sent every 100 ms to an idle keep-alive connection do not keep it open past the keep-alive limit', async () => {
    const { port } = await startEcho({ keepAliveTimeoutMs: 300, headersTimeoutMs: 100 });
    const { client, response } = await exchange(port, get('/idle-empty-lines'));
    assert.equal(response.status, 200);
    const answered = Date.now();
    const stop = keepWriting(client, '\r\n', 100);
    try {
      await client.waitClosed(3_000);
    } finally {
      stop();
    }
    const elapsed = Date.now() - answered;
    assert.ok(elapsed < 2_000, `took ${elapsed} ms`);
  });

  test('timeout — empty lines sent every 100 ms to a fresh connection do not hold off the headers timeout: 408', async () => {
    const { port } = await startEcho({ headersTimeoutMs: 300, keepAliveTimeoutMs: 100 });
    const started = Date.now();
    const client = await RawClient.connect(port);
    const stop = keepWriting(client, '\r\n', 100, () => client.unread.length === 0 && !client.ended && !client.closed);
    try {
      assertRefusal(await client.response('GET', 3_000), 408, /did not arrive within/);
      await client.waitClosed();
    } finally {
      stop();
    }
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 2_000, `took ${elapsed} ms`);
  });

  test('timeout — a body the answer did not wait for, still coming a byte every 200 ms, is dropped for at most the headers timeout; then the connection closes', async () => {
    const client = await RawClient.connect(timed.port);
    await client.write(`POST /nobody HTTP/1.1\r\n${HOST}Content-Length: 1000000\r\n\r\n`);
    const response = await client.response('POST');
    assert.equal(response.status, 404);
    assert.equal(response.text(), 'not found');
    const answered = Date.now();
    const stop = keepWriting(client, 'x', 200);
    try {
      await client.waitClosed(4_000);
    } finally {
      stop();
    }
    const elapsed = Date.now() - answered;
    assert.ok(elapsed < 2_000, `took ${elapsed} ms`);
  });

  test('timeout — limits of 0 are off: an idle connection, a silent one and half a head are kept (no 408), and served after', async () => {
    const { server, port } = await startEcho({ headersTimeoutMs: 0, keepAliveTimeoutMs: 0 });
    const idle = await exchange(port, get('/zero/first'));
    assert.equal(idle.response.status, 200);
    const silent = await RawClient.connect(port);
    const half = await RawClient.connect(port);
    await half.write('GET /zero/half HTTP/1.1\r\nHost: te');
    await delay(1_500);
    for (const [name, client] of [['idle', idle.client], ['silent', silent], ['half a head', half]] as const) {
      assert.equal(client.closed, false, `${name}: closed`);
      assert.equal(client.unread.length, 0, `${name}: got ${JSON.stringify(client.unread.toString('latin1').slice(0, 200))}`);
    }
    assert.equal(server.connectionCount, 3);
    await half.write('st.local\r\n\r\n');
    assert.equal((await half.response()).json<Echo>().url, '/zero/half');
    await idle.client.write(get('/zero/idle-again'));
    assert.equal((await idle.client.response()).json<Echo>().url, '/zero/idle-again');
    await silent.write(get('/zero/silent'));
    assert.equal((await silent.response()).json<Echo>().url, '/zero/silent');
    for (const client of [idle.client, silent, half]) client.destroy();
  });
});

// ---------------------------------------------------------------------------------------------
// Upgrades.

describe('upgrades', () => {
  let upgraded: Running;
  const upgrades: Array<{ url: string; head: string }> = [];
  const plain: string[] = [];
  before(async () => {
    upgraded = await startServer({
      request: (req, res) => {
        plain.push(req.url);
        res.send(200, ['content-type', 'text/plain'], Buffer.from(`plain ${req.url}`));
      },
      upgrade: (req, socket, head) => {
        upgrades.push({ url: req.url, head: head.toString('latin1') });
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        // The socket is half-open capable: the new owner ends its side when the client ends.
        socket.on('end', () => socket.end());
        socket.on('error', () => {});
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: x\r\n\r\nhead:${head.toString('latin1')}|`);
        socket.on('data', (chunk: Buffer) => socket.write(Buffer.concat([Buffer.from('echo:'), chunk])));
        socket.resume();
      },
    });
  });

  test('upgrade — goes to the upgrade handler with the bytes after the head; raw bytes flow both ways', async () => {
    const client = await RawClient.connect(upgraded.port);
    await client.write(`GET /ws HTTP/1.1\r\n${HOST}Connection: Upgrade\r\nUpgrade: x\r\n\r\nearly-bytes`);
    const switching = await client.response();
    assert.equal(switching.status, 101);
    await client.until(() => client.unread.toString('latin1') === 'head:early-bytes|', 'the head bytes echoed');
    assert.deepEqual(upgrades.at(-1), { url: '/ws', head: 'early-bytes' });
    assert.equal(upgraded.server.connectionCount, 0, 'an upgraded connection is no longer counted');
    await client.write('ping');
    await client.until(() => client.unread.toString('latin1').endsWith('echo:ping'), 'the raw echo');
    await client.write(Buffer.from([0, 1, 2, 255, 13, 10]));
    await client.until(() => client.unread.subarray(-6).equals(Buffer.from([0, 1, 2, 255, 13, 10])), 'binary bytes echoed');
    client.destroy();
  });

  test('upgrade — connection: upgrade without an upgrade header is an ordinary request', async () => {
    const { client, response } = await exchange(upgraded.port, get('/not-upgrade', 'Connection: upgrade\r\n'));
    assert.equal(response.status, 200);
    assert.equal(response.text(), 'plain /not-upgrade');
    assert.ok(!upgrades.some((u) => u.url === '/not-upgrade'));
    client.destroy();
  });

  test('upgrade — a server without an upgrade handler serves the request as an ordinary one', async () => {
    const { client, response } = await exchange(main.port, get('/no-upgrade-handler', 'Connection: upgrade\r\nUpgrade: x\r\n'));
    assert.equal(response.status, 200);
    assert.equal(response.json<Echo>().url, '/no-upgrade-handler');
    client.destroy();
  });

  test('upgrade — a socket whose new owner sets no error handler is closed, not an uncaught error, when the client resets it', async () => {
    const held: net.Socket[] = [];
    const { port } = await startServer({
      request: (_req, res) => res.send(200, [], Buffer.alloc(0)),
      upgrade: (_req, socket) => {
        held.push(socket);
        socket.resume();
      },
    });
    const errors = await uncaughtDuring(async () => {
      const client = await RawClient.connect(port);
      await client.write(get('/ws', 'Connection: upgrade\r\nUpgrade: x\r\n'));
      await pollUntil(() => held.length === 1, 'the upgrade handler');
      client.socket.resetAndDestroy();
      // Writes after the reset fail too (EPIPE or ECONNRESET), whoever reads first.
      const writer = setInterval(() => held[0]!.destroyed || held[0]!.write('x'), 5);
      try {
        await pollUntil(() => held[0]!.destroyed, 'the upgraded socket to close');
      } finally {
        clearInterval(writer);
      }
      await delay(50);
    });
    assert.deepEqual(errors, []);
  });

  test('upgrade — an upgrade request with a body (POST, upgrade: h2c, content-length: 15) is an ordinary request, body and all', async () => {
    const body = '0123456789abcde';
    const { client, response } = await exchange(upgraded.port, post('/h2c-with-body', body, 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n'));
    assert.equal(response.status, 200);
    assert.equal(response.text(), 'plain /h2c-with-body');
    assert.ok(!upgrades.some((u) => u.url === '/h2c-with-body'), 'the upgrade handler was called');
    // The body was read as this request's: the connection goes on with the next one.
    await client.write(get('/after-h2c'));
    assert.equal((await client.response()).text(), 'plain /after-h2c');
    client.destroy();
  });

  test('upgrade — an HTTP/1.0 request with connection: upgrade and an upgrade header is an ordinary request', async () => {
    const { client, response } = await exchange(upgraded.port, get('/http10-upgrade', 'Connection: upgrade\r\nUpgrade: x\r\n', '1.0'));
    assert.equal(response.status, 200);
    assert.equal(response.text(), 'plain /http10-upgrade');
    assert.equal(response.get('connection'), 'close');
    assert.ok(!upgrades.some((u) => u.url === '/http10-upgrade'), 'the upgrade handler was called');
    assert.ok(plain.includes('/http10-upgrade'));
    await client.waitClosed();
  });
});

// ---------------------------------------------------------------------------------------------
// close().

describe('close()', () => {
  test('close — idle and fresh connections are closed at once; close() resolves; new connections are refused', async () => {
    const { server, port } = await startEcho({ closeGraceMs: 10_000 });
    const idle = await exchange(port, get('/before-close'));
    assert.equal(idle.response.status, 200);
    const fresh = await RawClient.connect(port);
    await pollUntil(() => server.connectionCount === 2, 'both connections to be counted');
    const started = Date.now();
    await withTimeout(server.close(), 2_000, 'close()');
    await idle.client.waitClosed(1_000);
    await fresh.waitClosed(1_000);
    assert.ok(Date.now() - started < 2_000);
    assert.equal(fresh.unread.length, 0);
    assert.equal(server.connectionCount, 0);
    await assert.rejects(RawClient.connect(port), /ECONNREFUSED/);
  });

  test('close — a busy connection finishes its answer with connection: close, then closes; close() resolves after', async () => {
    const { server, port, app } = await startEcho({ closeGraceMs: 10_000 });
    const client = await RawClient.connect(port);
    await client.write(get('/busy?delay=300'));
    await pollUntil(() => app.seen.length === 1, 'the request to reach the handler');
    let closed = false;
    const closing = server.close().then(() => {
      closed = true;
    });
    await delay(20);
    assert.equal(closed, false, 'close() waits for the busy connection');
    const response = await client.response();
    assert.equal(response.status, 200);
    assert.equal(response.get('connection'), 'close');
    assert.equal(response.json<Echo>().url, '/busy?delay=300');
    await client.waitClosed();
    await withTimeout(closing, 2_000, 'close() after the answer');
  });

  test('close — a connection that never answers is cut after closeGraceMs, and its response sees onClose(false)', async () => {
    const { server, port, app } = await startEcho({ closeGraceMs: 200 });
    const client = await RawClient.connect(port);
    await client.write(get('/hold/grace'));
    await pollUntil(() => app.held.has('grace'), 'the request to reach the handler');
    const started = Date.now();
    await withTimeout(server.close(), 3_000, 'close() after the grace period');
    assert.ok(Date.now() - started >= 150, 'not cut before the grace period');
    await client.waitClosed();
    await pollUntil(() => app.held.get('grace')!.closedWith !== undefined, 'onClose of the cut response');
    assert.equal(app.held.get('grace')!.closedWith, false);
  });

  test('close — when close() resolves, every connection is let go: connectionCount is 0 and cut responses have seen onClose(false)', async () => {
    const { server, port, app } = await startEcho({ closeGraceMs: 100 });
    const client = await RawClient.connect(port);
    await client.write(get('/hold/grace-order'));
    await pollUntil(() => app.held.has('grace-order'), 'the request to reach the handler');
    await withTimeout(server.close(), 3_000, 'close()');
    const counted = server.connectionCount;
    const closedWith = app.held.get('grace-order')!.closedWith;
    assert.equal(counted, 0, 'connectionCount right after close() resolved');
    assert.equal(closedWith, false, 'onClose of the cut response right after close() resolved');
    await client.waitClosed();
  });

  test('close — called twice, the second call resolves no earlier than the first (while a connection is busy)', async () => {
    const { server, port, app } = await startEcho({ closeGraceMs: 10_000 });
    const client = await RawClient.connect(port);
    await client.write(get('/busy-twice?delay=300'));
    await pollUntil(() => app.seen.length === 1, 'the request to reach the handler');
    const settled: string[] = [];
    const first = server.close().then(() => settled.push('first'));
    const second = server.close().then(() => settled.push('second'));
    await delay(50);
    assert.deepEqual(settled, [], 'no close() resolves while a connection is busy');
    const response = await client.response();
    assert.equal(response.get('connection'), 'close');
    await withTimeout(Promise.all([first, second]), 3_000, 'both close() calls');
    assert.deepEqual(settled, ['first', 'second']);
    assert.equal(server.connectionCount, 0);
  });
});

// ---------------------------------------------------------------------------------------------
// Connection accounting: every way a connection ends leaves the server with no connection open.

describe('connection accounting', () => {
  let counted: Running & { app: EchoApp };
  before(async () => {
    counted = await startEcho();
  });

  async function assertNoConnectionsLeft(): Promise<void> {
    await pollUntil(() => counted.server.connectionCount === 0, `connectionCount to reach 0 (it is ${counted.server.connectionCount})`, 2_000);
  }

  test('accounting — connection: close with a request pipelined after it: the server lets the connection go', async () => {
    const client = await RawClient.connect(counted.port);
    await client.write(get('/acct/close?delay=20', 'Connection: close\r\n') + get('/acct/never'));
    assert.equal((await client.response()).get('connection'), 'close');
    await client.waitClosed();
    await assertNoConnectionsLeft();
  });

  test('accounting — a refusal with bytes after it: the server lets the connection go', async () => {
    const client = await RawClient.connect(counted.port);
    await client.write(`GET / HTTP/2.0\r\n${HOST}\r\n${get('/acct/after-refusal')}`);
    assert.equal((await client.response()).status, 505);
    await client.waitClosed();
    await assertNoConnectionsLeft();
  });

  test('accounting — a malformed request pipelined behind a slow good one: the good one is answered, then the refusal', async () => {
    const client = await RawClient.connect(counted.port);
    await client.write(get('/acct/good?delay=50') + `GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`);
    const good = await client.response();
    assert.equal(good.status, 200);
    assert.equal(good.json<Echo>().url, '/acct/good?delay=50');
    assertRefusal(await client.response(), 400, /more than one host header/);
    await client.waitClosed();
    await assertNoConnectionsLeft();
  });

  test('accounting — a client reset mid-body, and a short stream: the server lets both connections go', async () => {
    const reset = await RawClient.connect(counted.port);
    await reset.write(`POST /hold/acct-reset HTTP/1.1\r\n${HOST}Content-Length: 10\r\n\r\nabc`);
    await pollUntil(() => counted.app.held.has('acct-reset'), 'the request to reach the handler');
    reset.socket.resetAndDestroy();
    const short = await RawClient.connect(counted.port);
    await short.write(get('/stream?mode=short'));
    await short.waitClosed();
    await assertNoConnectionsLeft();
  });

  test('accounting — after an answer with connection: close, a client that never closes its side is cut after the linger limit (5 s)', async () => {
    const { server, port } = await startEcho({ headersTimeoutMs: 300, keepAliveTimeoutMs: 300 });
    const client = await RawClient.connect(port, true);
    await client.write(get('/linger', 'Connection: close\r\n'));
    const response = await client.response();
    assert.equal(response.status, 200);
    assert.equal(response.get('connection'), 'close');
    await client.until(() => client.ended, 'the server to end its side');
    const ended = Date.now();
    assert.equal(server.connectionCount, 1, 'the connection lingers for the client to close its side');
    await pollUntil(() => server.connectionCount === 0, 'the lingering connection to be cut', 8_000);
    const elapsed = Date.now() - ended;
    assert.ok(elapsed >= 3_000, `cut after ${elapsed} ms, before the client had its time`);
    client.destroy();
  });
});

// ---------------------------------------------------------------------------------------------
// Node's own client and server as the reference.

interface NodeResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  socket: net.Socket;
}

function nodeRequest(port: number, agent: http.Agent, path: string, options: { method?: string; body?: Buffer; chunked?: boolean } = {}): Promise<NodeResponse> {
  return withTimeout(
    new Promise<NodeResponse>((resolve, reject) => {
      const headers: Record<string, string> = {};
      let socket: net.Socket | undefined;
      if (options.body && !options.chunked) headers['content-length'] = String(options.body.length);
      const req = http.request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', agent, headers }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (chunk: Buffer) => parts.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts), socket: socket! }));
        res.on('error', reject);
      });
      req.on('socket', (s) => {
        socket = s as net.Socket;
      });
      req.on('error', reject);
      if (options.body) req.write(options.body);
      req.end();
    }),
    10_000,
    `node request ${path}`,
  );
}

describe("node's http client and server", () => {
  test('node client — 200 concurrent requests over 4 keep-alive sockets all succeed with the right bodies', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    try {
      const used = new Set<net.Socket>();
      const results = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const body = i % 2 === 0 ? undefined : Buffer.from(`body-${i}-`.repeat(i));
          const res = await nodeRequest(main.port, agent, `/node/${i}`, { method: body ? 'POST' : 'GET', body, chunked: i % 4 === 3 });
          used.add(res.socket);
          return { i, body, res };
        }),
      );
      for (const { i, body, res } of results) {
        assert.equal(res.status, 200, `request ${i}`);
        const echo = JSON.parse(res.body.toString()) as Echo;
        assert.equal(echo.url, `/node/${i}`);
        assert.equal(echo.body, body ? body.toString() : '', `request ${i}`);
        if (i % 4 === 3) assert.equal(echo.headers['transfer-encoding'], 'chunked');
      }
      assert.ok(used.size >= 1 && used.size <= 4, `sockets used: ${used.size}`);
    } finally {
      agent.destroy();
    }
  });

  test('node client — 50 sequential requests share one keep-alive socket', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const used = new Set<net.Socket>();
      for (let i = 0; i < 50; i++) {
        const res = await nodeRequest(main.port, agent, `/seq/${i}`, { method: 'PUT', body: Buffer.from(`n${i}`) });
        assert.equal((JSON.parse(res.body.toString()) as Echo).body, `n${i}`);
        used.add(res.socket);
      }
      assert.equal(used.size, 1);
    } finally {
      agent.destroy();
    }
  });

  test('node server — the same request gives the same headers object as node:http (repeats joined, dropped, arrays)', async () => {
    const reference = http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ headers: req.headers }));
    });
    await new Promise<void>((resolve) => reference.listen(0, '127.0.0.1', resolve));
    cleanups.push({ what: 'closing the node:http reference server', run: () => new Promise<void>((resolve) => reference.close(() => resolve())) });
    const wire =
      `GET /compare HTTP/1.1\r\nHost: test.local\r\nX-Multi: one\r\nx-multi: two\r\nCookie: a=1\r\nCookie: b=2\r\nSet-Cookie: s=1\r\nSet-Cookie: s=2\r\n` +
      'User-Agent: first\r\nUser-Agent: second\r\nContent-Type: text/a\r\nContent-Type: text/b\r\nAuthorization: one\r\nAuthorization: two\r\n' +
      'Accept:  spaced  \r\nX-Empty:\r\nX-Tab:\tv\t\r\nAccept-Language: en\r\nACCEPT-LANGUAGE: fr\r\nConnection: close\r\n\r\n';
    const ours = await exchange(main.port, wire);
    const theirs = await exchange((reference.address() as AddressInfo).port, wire);
    assert.equal(theirs.response.status, 200);
    const oursHeaders = ours.response.json<{ headers: IncomingHttpHeaders }>().headers;
    const theirHeaders = theirs.response.json<{ headers: IncomingHttpHeaders }>().headers;
    assert.deepEqual(oursHeaders, theirHeaders);
  });
});
