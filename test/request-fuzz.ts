// Differential fuzzing of the gateway's request parser (src/http1) against node's own (llhttp,
// through a node:http server on loopback): request generators, both readings, and their comparison.
// Shared by the bounded run in `npm test` and the long one in `npm run fuzz`.
import http, { type IncomingHttpHeaders } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import fc from 'fast-check';
import { RequestError, RequestParser, type RequestHead } from '../src/http1/index.js';

/** A request sent after each case: where each parser finds it shows where the case's framing ended. */
export const SENTINEL = 'GET /sentinel HTTP/1.1\r\nHost: sentinel\r\n\r\n';

/** How one parser read one case. */
export type Reading =
  | { kind: 'refused'; why: string }
  /** The bytes ended inside a request (a head or a body still to come). */
  | { kind: 'incomplete'; head?: Summary }
  | { kind: 'accepted'; request: Summary; body: string; next: Next; nextWhy?: string };

/**
 * What each parser finds after the first request: the sentinel (the framing ended where it
 * should), a refusal, too few bytes, another request, or nothing because the connection ends
 * there (`close`: not kept alive) or changes protocol (`upgrade`).
 */
export type Next = 'sentinel' | 'refused' | 'incomplete' | 'other' | 'upgrade' | 'close';

/** What is compared of a request head. */
export interface Summary {
  method: string;
  url: string;
  headers: Record<string, string | string[]>;
}

function summary(method: string, url: string, headers: IncomingHttpHeaders): Summary {
  const sorted: Record<string, string | string[]> = {};
  for (const name of Object.keys(headers).sort()) sorted[name] = headers[name]!;
  return { method, url, headers: sorted };
}

/**
 * Node's reading as the gateway gives it: an absolute-form target becomes its path and query,
 * and its authority the host header (RFC 9112 §3.2.2), which node leaves to its user.
 */
function nodeSummary(req: http.IncomingMessage): Summary {
  const url = req.url ?? '';
  const absolute = /^https?:\/\/([^/?]*)(.*)$/i.exec(url);
  if (!absolute) return summary(req.method ?? '', url, req.headers);
  const rest = absolute[2]!;
  return summary(req.method ?? '', rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest, { ...req.headers, host: absolute[1]! });
}

/** Whether node:http treats the request as an upgrade: what follows it is not HTTP to llhttp. */
function asksUpgrade(headers: IncomingHttpHeaders): boolean {
  const connection = headers.connection;
  return headers.upgrade !== undefined && typeof connection === 'string' && /(^|,)\s*upgrade\s*(,|$)/i.test(connection);
}

/** The gateway's reading of `bytes`: the first request, then whether the sentinel follows it. */
export function gatewayReading(bytes: Buffer): Reading {
  let head: RequestHead | undefined;
  const body: Buffer[] = [];
  const parser = new RequestParser({
    onHead: (h) => {
      head = h;
      return true;
    },
    onData: (chunk) => void body.push(Buffer.from(chunk)),
    onEnd: () => {},
  });
  let used: number;
  try {
    used = parser.execute(bytes);
  } catch (err) {
    if (err instanceof RequestError) return { kind: 'refused', why: `${err.status} ${err.message}` };
    throw err;
  }
  if (!parser.done) return { kind: 'incomplete', head: head && summary(head.method, head.url, head.headers) };
  const request = summary(head!.method, head!.url, head!.headers);
  const text = Buffer.concat(body).toString('latin1');
  if (asksUpgrade(head!.headers)) return { kind: 'accepted', request, body: text, next: 'upgrade' };
  if (!head!.keepAlive) return { kind: 'accepted', request, body: text, next: 'close' };
  let next: Next;
  let nextWhy: string | undefined;
  let second: RequestHead | undefined;
  const after = new RequestParser({
    onHead: (h) => {
      second = h;
      return true;
    },
    onData: () => {},
    onEnd: () => {},
  });
  try {
    after.execute(bytes.subarray(used));
    // A method llhttp does not know is refused by node: the leniency is the first request's to show.
    if (after.done && !http.METHODS.includes(second!.method)) next = 'refused';
    else next = !after.done ? 'incomplete' : second!.url === '/sentinel' ? 'sentinel' : 'other';
  } catch (err) {
    if (!(err instanceof RequestError)) throw err;
    next = 'refused';
    nextWhy = `${err.status} ${err.message}`;
  }
  return { kind: 'accepted', request, body: text, next, nextWhy };
}

interface NodeCase {
  requests: Array<{ summary: Summary; body: Buffer[]; complete: boolean; upgrade: boolean; keepAlive: boolean }>;
  error: string | undefined;
}

/** A node:http server on loopback that reads cases one at a time, as llhttp does. */
export class NodeReference {
  readonly #server: http.Server;
  #port = 0;
  #current: NodeCase | undefined;

  private constructor() {
    // The host check is made below, where it can be seen: node's own answers 400 and reads on.
    this.#server = http.createServer({ requireHostHeader: false }, (req, res) => {
      const record = this.#current;
      // What llhttp reads after a refusal in the same read is not a request anyone would serve.
      if (!record || record.error !== undefined) return void req.socket.destroy();
      if (req.httpVersion === '1.1' && req.headers.host === undefined) {
        record.error = 'NO_HOST';
        return void req.socket.destroy();
      }
      const entry = { summary: nodeSummary(req), body: [] as Buffer[], complete: false, upgrade: asksUpgrade(req.headers), keepAlive: res.shouldKeepAlive };
      record.requests.push(entry);
      req.on('data', (chunk: Buffer) => entry.body.push(chunk));
      req.on('end', () => {
        entry.complete = true;
        res.end();
      });
      req.on('error', () => {});
    });
    // Every refusal is recorded with llhttp's code, and the connection closed.
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
      if (this.#current && this.#current.error === undefined) this.#current.error = err.code ?? err.message;
      socket.destroy();
    });
    // Expect: other than 100-continue is refused, as by node's default.
    this.#server.on('checkExpectation', (req, res) => {
      if (this.#current) this.#current.error ??= 'EXPECTATION';
      res.writeHead(417).end();
      req.socket.destroy();
    });
  }

  /** Starts the reference server on an ephemeral loopback port. */
  static async start(): Promise<NodeReference> {
    const ref = new NodeReference();
    await new Promise<void>((resolve) => ref.#server.listen(0, '127.0.0.1', resolve));
    ref.#port = (ref.#server.address() as AddressInfo).port;
    return ref;
  }

  /** Sends `bytes` on a fresh connection, half-closes it, and reports node's reading. */
  async read(bytes: Buffer): Promise<Reading> {
    const record: NodeCase = { requests: [], error: undefined };
    this.#current = record;
    await new Promise<void>((resolve) => {
      const socket = net.connect(this.#port, '127.0.0.1');
      const timer = setTimeout(() => socket.destroy(), 2000);
      socket.on('error', () => {});
      socket.on('data', () => {});
      socket.on('close', () => {
        clearTimeout(timer);
        // The server's own events for the last bytes may come a moment after the client's close.
        setImmediate(resolve);
      });
      socket.once('connect', () => socket.end(bytes));
    });
    this.#current = undefined;
    const [first, second] = record.requests;
    const eof = record.error === 'HPE_INVALID_EOF_STATE';
    if (!first) {
      if (record.error === undefined || eof) return { kind: 'incomplete' };
      return { kind: 'refused', why: record.error };
    }
    if (!first.complete) return record.error !== undefined && !eof ? { kind: 'refused', why: record.error } : { kind: 'incomplete', head: first.summary };
    const body = Buffer.concat(first.body).toString('latin1');
    if (first.upgrade) return { kind: 'accepted', request: first.summary, body, next: 'upgrade' };
    if (!first.keepAlive) return { kind: 'accepted', request: first.summary, body, next: 'close' };
    let next: Next;
    if (second) next = second.summary.url === '/sentinel' && second.complete ? 'sentinel' : second.complete ? 'other' : 'incomplete';
    else next = record.error === undefined || eof ? 'incomplete' : 'refused';
    return { kind: 'accepted', request: first.summary, body, next };
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

/** A difference both parsers are allowed: the gateway refuses what llhttp takes, on purpose. */
export interface DeliberateDifference {
  name: string;
  /** Why the gateway refuses it (also in the README). */
  reason: string;
  /** Whether the gateway's refusal message is this one. */
  matches: (why: string) => boolean;
}

/**
 * The gateway's deliberate strictness: requests llhttp accepts and the gateway refuses, each for
 * a reason given in the README's paragraph on the gateway's parser.
 */
export const DELIBERATE: readonly DeliberateDifference[] = [
  { name: 'CONNECT', reason: 'the gateway is not a forward proxy', matches: (why) => why.startsWith('501 CONNECT') },
  { name: 'fragment in the target', reason: 'a client never sends one; it could be read two ways by the next hop', matches: (why) => why.includes('has a fragment') },
  { name: 'transfer codings besides chunked', reason: 'the gateway cannot pass a coded body on as it came', matches: (why) => why.startsWith('501 transfer codings') },
  { name: 'HTTP/1.0 with transfer-encoding', reason: 'RFC 9112 §6.1: its framing is faulty', matches: (why) => why.includes('HTTP/1.0 request may not use transfer-encoding') },
  { name: 'more than one host header', reason: 'RFC 9112 §3.2 requires a 400; node keeps the first', matches: (why) => why.includes('more than one host header') },
  {
    name: 'HTTP/0.9 and versions other than 1.0 and 1.1',
    reason: 'HTTP/0.9 has no headers and no framing; other versions are not HTTP/1',
    matches: (why) => why.startsWith('505 ') || why.includes('does not end with an HTTP version') || why.includes('is not "METHOD target HTTP/1.x"'),
  },
  { name: 'a bare LF or CR ending a line of the head, or an empty line before it', reason: 'RFC 9112 §2.2: a lenient reading of line ends is how requests are smuggled past a stricter next hop', matches: (why) => /bare (LF|CR)/.test(why) },
  { name: 'chunk extensions outside the RFC grammar (`;x=`, `;=y`)', reason: 'RFC 9112 §7.1.1; an extension read two ways can hide a chunk', matches: (why) => why.includes('is not ;name or ;name=value') },
  {
    name: 'a transfer-encoding that is empty or ends in chunked with parameters',
    reason: 'node reads no body for an empty one, and chunked takes no parameters (RFC 9112 §7); a framing header read two ways is how requests are smuggled',
    matches: (why) => why.includes('does not end with chunked') || why.includes('both content-length and transfer-encoding'),
  },
  { name: 'content-length or transfer-encoding as a trailer', reason: 'RFC 9110 §6.5.1: framing is the head\'s alone (node refuses it too, but not after an upgrade request)', matches: (why) => why.includes('which only the head may') },
  { name: 'a tab after the value of content-length or transfer-encoding', reason: 'whitespace to the RFC, part of the value to llhttp (`chunked\\t` is another coding to it): a framing header read two ways', matches: (why) => why.includes('has a tab after its value') },
  { name: 'an absolute-form target with user info', reason: 'RFC 9110 §4.2.4: user info in an http URI is an error', matches: (why) => why.includes('carries user info') },
  { name: 'an expectation besides 100-continue, even beside it', reason: 'RFC 9110 §10.1.1 allows the 417; node looks only for 100-continue', matches: (why) => why.startsWith('417 ') },
  { name: 'a target that is not a path, an absolute http URL, or `*` for OPTIONS', reason: 'RFC 9112 §3.2: the forms a server is sent', matches: (why) => why.includes('not a path or an absolute http URL') },
];

/**
 * The gateway's deliberate leniency: it takes any token as a method (RFC 9110 §9.1; the function
 * decides what it serves), where llhttp takes only the methods it knows.
 */
function extensionMethod(ours: Reading, node: Reading): boolean {
  const method = ours.kind === 'accepted' ? ours.request.method : ours.kind === 'incomplete' ? ours.head?.method : undefined;
  return method !== undefined && node.kind === 'refused' && !http.METHODS.includes(method);
}

/** Whether node read the request as an upgrade (and so read its framing loosely) without refusing it. */
function looseUpgrade(node: Reading): boolean {
  const head = node.kind === 'accepted' ? node.request : node.kind === 'incomplete' ? node.head : undefined;
  return head !== undefined && asksUpgrade(head.headers as IncomingHttpHeaders);
}

/**
 * The gateway trims a tab beside a connection token as whitespace (RFC 9110 §5.6.3); llhttp does
 * not, and so closes an HTTP/1.0 connection the gateway keeps. Neither reads the request otherwise.
 */
function tabbedConnection(ours: Reading, node: Reading, text: string): boolean {
  if (ours.kind !== 'accepted' || node.kind !== 'accepted' || (ours.next !== 'close' && node.next !== 'close')) return false;
  // Both give the value trimmed: the tab is seen in the request as sent.
  return /\r\nconnection:[^\r\n]*\t/i.test(text);
}

/** Whether two readings of `text` agree, or differ only as {@link DELIBERATE} allows; else what differs. */
export function compareReadings(ours: Reading, node: Reading, text: string): string | undefined {
  if (ours.kind === 'refused' && node.kind !== 'refused' && DELIBERATE.some((d) => d.matches(ours.why))) return undefined;
  if (extensionMethod(ours, node)) return undefined;
  // node:http without an upgrade listener reads an upgrade request's framing loosely: it takes a
  // tab after transfer-encoding, and stops reading a body where it fails, and waits. The gateway
  // refuses these as it would without the upgrade.
  if (ours.kind === 'refused' && /chunk|trailer|transfer-encoding|content-length/.test(ours.why) && looseUpgrade(node)) return undefined;
  if (ours.kind !== node.kind) return `the gateway: ${describe(ours)}; node: ${describe(node)}`;
  if (ours.kind === 'refused') return undefined;
  if (ours.kind === 'incomplete' && node.kind === 'incomplete') {
    if (ours.head && node.head) return compareSummaries(ours.head, node.head);
    return undefined;
  }
  if (ours.kind === 'accepted' && node.kind === 'accepted') {
    const head = compareSummaries(ours.request, node.request);
    if (head) return head;
    if (ours.body !== node.body) return `body: the gateway read ${JSON.stringify(ours.body.slice(0, 80))}, node ${JSON.stringify(node.body.slice(0, 80))}`;
    if (ours.next !== node.next && !tabbedConnection(ours, node, text) && !(ours.nextWhy !== undefined && DELIBERATE.some((d) => d.matches(ours.nextWhy!)))) {
      return `after the body: the gateway found ${ours.next}${ours.nextWhy ? ` (${ours.nextWhy})` : ''}, node ${node.next}`;
    }
  }
  return undefined;
}

function compareSummaries(a: Summary, b: Summary): string | undefined {
  if (a.method !== b.method) return `method: ${JSON.stringify(a.method)} vs ${JSON.stringify(b.method)}`;
  if (a.url !== b.url) return `target: ${JSON.stringify(a.url)} vs ${JSON.stringify(b.url)}`;
  const ja = JSON.stringify(a.headers);
  const jb = JSON.stringify(b.headers);
  if (ja !== jb) return `headers: ${ja.slice(0, 300)} vs ${jb.slice(0, 300)}`;
  return undefined;
}

function describe(r: Reading): string {
  switch (r.kind) {
    case 'refused':
      return `refused (${r.why.slice(0, 120)})`;
    case 'incomplete':
      return 'waits for more';
    case 'accepted':
      return `accepted ${r.request.method} ${r.request.url.slice(0, 60)} with ${r.body.length} body bytes, then ${r.next}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Generators.

const chars = (alphabet: string, min: number, max: number): fc.Arbitrary<string> => fc.array(fc.constantFrom(...alphabet.split('')), { minLength: min, maxLength: max }).map((a) => a.join(''));

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'PURGE', 'QUERY'];
const method = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...METHODS) }, { weight: 1, arbitrary: fc.constantFrom('CONNECT', 'get', 'FOO', 'G E T', 'GET\t', 'M-SEARCH', 'SOURCE', '') });

const PATH_CHARS = 'abcxyz0129-._~!$&\'()*+,;=:@/%';
const target = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(chars(PATH_CHARS, 0, 12), fc.option(chars(`${PATH_CHARS}?`, 0, 10))).map(([p, q]) => `/${p}${q === null ? '' : `?${q}`}`) },
  { weight: 1, arbitrary: fc.constantFrom('*', 'http://h.example/p?q', 'https://h.example', 'http://h.example?x=/y', 'http://u@h/', '/a#frag', '/a b', '/\x01', '/\x7f', '/\x80é', 'h.example:80', '//x', '/a\tb') },
);

const version = fc.oneof({ weight: 10, arbitrary: fc.constant('HTTP/1.1') }, { weight: 2, arbitrary: fc.constant('HTTP/1.0') }, { weight: 1, arbitrary: fc.constantFrom('HTTP/2.0', 'HTTP/1.2', 'HTTP/0.9', 'http/1.1', 'HTTP/1.1 ', 'HTTP/11', 'HTTP/1.10') });

const VALUE_CHARS = 'abcXYZ019 ,;=-_./:"\t';
const value = fc.oneof({ weight: 6, arbitrary: chars(VALUE_CHARS, 0, 16) }, { weight: 1, arbitrary: fc.constantFrom(' padded ', '\tx\t', 'a\x01b', 'a\x7fb', 'caf\xe9', '\xff', 'a\0b', '') });

const NAMES = ['host', 'Host', 'x-a', 'X-A', 'accept', 'user-agent', 'cookie', 'set-cookie', 'content-type', 'authorization', 'referer', 'via', 'x-forwarded-for'];
const name = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...NAMES) }, { weight: 1, arbitrary: fc.constantFrom('x a', 'x:a', 'x\ta', '', 'x@a', 'x"a', "x'a", 'x-\xe9', 'x{a}') });

const transferEncoding = fc.constantFrom('chunked', 'Chunked', 'CHUNKED', ' chunked', 'chunked ', 'chunked\t', '\tchunked', 'gzip, chunked', 'chunked, gzip', 'identity', 'chunked, chunked', 'xchunked', 'chunked;q=1', ',chunked', 'chunked,', 'chunk\x00ed', '');
const contentLength = fc.oneof({ weight: 6, arbitrary: fc.nat(24).map(String) }, { weight: 1, arbitrary: fc.constantFrom('+3', '-1', '3 ', ' 3', '3\t', '\t3', '03', '3,3', '3, 3', '0x3', '3.0', '', '1e1', '99999999999999999999', '00000000000000003') });

const header = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(name, value) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('Content-Length', 'content-length', 'Content-Length '), contentLength) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('Transfer-Encoding', 'transfer-encoding', 'Transfer-Encoding '), transferEncoding) },
  { weight: 1, arbitrary: fc.tuple(fc.constant('Connection'), fc.constantFrom('close', 'keep-alive', 'Upgrade', 'keep-alive, upgrade', 'x-a', 'content-length')) },
  { weight: 1, arbitrary: fc.tuple(fc.constant('Upgrade'), fc.constantFrom('websocket', 'h2c')) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('Transfer-Encoding', 'Content-Length', 'X-A'), fc.constantFrom('\r\n chunked', '\r\n\t3', 'chunked\r\n foo')) },
  { weight: 1, arbitrary: fc.tuple(fc.constant('Expect'), fc.constantFrom('100-continue', '100-Continue', 'x', '')) },
);

/** A chunked body: each chunk's size line as written (maybe wrong), then its data. */
const chunk = fc.record({
  data: chars('abcdefgh\r\n', 1, 12),
  sizeDelta: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -2, max: 2 }) }),
  form: fc.oneof({ weight: 8, arbitrary: fc.constant('plain') }, { weight: 1, arbitrary: fc.constantFrom('upper', 'zeros', 'ext', 'ext-quoted', 'ext-bad', 'space', 'tab', 'lf', 'ext-space', 'ext-bws', 'ext-many', 'hex-prefix', 'overflow', 'signed') }),
});

function sizeLine(size: number, form: string): string {
  const hex = size.toString(16);
  switch (form) {
    case 'upper':
      return `${hex.toUpperCase()}\r\n`;
    case 'zeros':
      return `000${hex}\r\n`;
    case 'ext':
      return `${hex};name=value\r\n`;
    case 'ext-quoted':
      return `${hex};name="a b"\r\n`;
    case 'ext-bad':
      return `${hex};a b\r\n`;
    case 'ext-space':
      return `${hex} ;a=b\r\n`;
    case 'ext-bws':
      return `${hex}; a = b\r\n`;
    case 'hex-prefix':
      return `0x${hex}\r\n`;
    case 'overflow':
      return `1000000000000000${hex}\r\n`;
    case 'signed':
      return `+${hex}\r\n`;
    case 'ext-many':
      return `${hex};a;b=c;d="e;f"\r\n`;
    case 'space':
      return `${hex} \r\n`;
    case 'tab':
      return `${hex}\t\r\n`;
    case 'lf':
      return `${hex}\n`;
    default:
      return `${hex}\r\n`;
  }
}

const trailers = fc.oneof({ weight: 6, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('x-t: 1\r\n', 'x-t 1\r\n', 'x-t: a\rb\r\n', ' folded\r\n', 'content-length: 3\r\n', 'transfer-encoding: chunked\r\n', 'Content-Length : 3\r\n') });

/** A request built from parts, most of them well formed; the body follows the headers' framing. */
export const structuredRequest: fc.Arbitrary<string> = fc
  .record({
    method,
    target,
    version,
    headers: fc.array(header, { maxLength: 6 }),
    host: fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    chunks: fc.array(chunk, { maxLength: 4 }),
    trailers,
    extra: fc.oneof({ weight: 6, arbitrary: fc.constant('') }, { weight: 1, arbitrary: chars('abc\r\n0', 1, 6) }),
    lineEnd: fc.oneof({ weight: 12, arbitrary: fc.constant('\r\n') }, { weight: 1, arbitrary: fc.constantFrom('\n', '\r', '\r\r\n') }),
  })
  .map((r) => {
    const lines = [`${r.method} ${r.target} ${r.version}`];
    if (r.host) lines.push('Host: fuzz.example');
    for (const [n, v] of r.headers) lines.push(`${n}:${v.startsWith(' ') ? '' : ' '}${v}`);
    const chunked = r.headers.some(([n]) => n.trim().toLowerCase() === 'transfer-encoding');
    const lengthHeader = r.headers.find(([n]) => n.trim().toLowerCase() === 'content-length');
    let body = '';
    if (chunked) {
      for (const c of r.chunks) body += `${sizeLine(Math.max(0, c.data.length + c.sizeDelta), c.form)}${c.data}\r\n`;
      body += `0\r\n${r.trailers}\r\n`;
    } else if (lengthHeader) {
      const n = Number(lengthHeader[1]);
      body = Number.isInteger(n) && n >= 0 && n < 64 ? 'b'.repeat(n) : 'bbb';
    }
    // The head's last line break is written by itself, so that a bare LF can end any line but that one.
    return `${lines.join(r.lineEnd)}\r\n\r\n${body}${r.extra}`;
  });

/** Bytes that matter to a parser, for mutations. */
const INTERESTING = [13, 10, 32, 9, 58, 59, 44, 0, 127, 128, 255, 48, 49, 97, 65, 34, 92, 11, 12];

/** A well-formed request with a few byte-level mutations: a byte replaced, inserted or removed, a line doubled. */
export const mutatedRequest: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom(
      'GET /a?b=c HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n',
      'POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello',
      'POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nx-t: 1\r\n\r\n',
      'PUT /u HTTP/1.0\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc',
      'GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
    ),
    fc.array(
      fc.record({
        op: fc.constantFrom('replace', 'insert', 'delete', 'double-line'),
        at: fc.nat(),
        byte: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...INTERESTING) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  )
  .map(([base, mutations]) => {
    let bytes = Buffer.from(base, 'latin1');
    for (const m of mutations) {
      const at = m.at % (bytes.length + 1);
      const byte = Buffer.from([m.byte]);
      if (m.op === 'replace' && at < bytes.length) bytes = Buffer.concat([bytes.subarray(0, at), byte, bytes.subarray(at + 1)]);
      else if (m.op === 'insert') bytes = Buffer.concat([bytes.subarray(0, at), byte, bytes.subarray(at)]);
      else if (m.op === 'delete' && at < bytes.length) bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
      else if (m.op === 'double-line') {
        const start = bytes.lastIndexOf(10, Math.max(0, at - 1)) + 1;
        const end = bytes.indexOf(10, at);
        if (end > start) bytes = Buffer.concat([bytes.subarray(0, end + 1), bytes.subarray(start, end + 1), bytes.subarray(end + 1)]);
      }
    }
    return bytes.toString('latin1');
  });

/** Every case: generated or mutated, followed by the sentinel request. */
export const fuzzCase: fc.Arbitrary<string> = fc.oneof(structuredRequest, mutatedRequest);

/** Runs `fuzzCase` through both parsers `numRuns` times (or until `timeLimitMs`) with `seed`; throws on a difference. */
export async function runDifferential(options: { numRuns: number; seed: number; timeLimitMs?: number }): Promise<void> {
  const node = await NodeReference.start();
  try {
    await fc.assert(
      fc.asyncProperty(fuzzCase, async (text) => {
        const bytes = Buffer.from(text + SENTINEL, 'latin1');
        const ours = gatewayReading(bytes);
        const theirs = await node.read(bytes);
        const difference = compareReadings(ours, theirs, text);
        if (difference) throw new Error(`${difference}\nrequest: ${JSON.stringify(text)}`);
      }),
      { numRuns: options.numRuns, seed: options.seed, interruptAfterTimeLimit: options.timeLimitMs, endOnFailure: false },
    );
  } finally {
    await node.close();
  }
}
