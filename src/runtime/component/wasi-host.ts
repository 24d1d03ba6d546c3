// The host side of the wasi:http/proxy world, run inside a component worker thread.
//
// Every call from the component is synchronous. When the component must wait (for request body
// bytes, for room to write the response, for an outbound response, for a timer) the host blocks
// the worker thread on the channel to the caller's thread, which wakes it when a message arrives.
// The caller's thread stops a handler that overstays its deadline by terminating the worker.
import { randomBytes, randomFillSync } from 'node:crypto';
import { isOutboundAllowed, type OutboundRule } from './outbound-policy.js';
import {
  STREAM_WINDOW,
  type FromWorker,
  type HttpErrorCode,
  type OutboundTimeouts,
  type RunFailure,
  type RunRequest,
  type ToWorker,
  type WireHeaders,
} from './component-protocol.js';
import { WasiResultError } from './wasi-result-error.js';
import { filesystemImports } from './wasi-filesystem.js';

/** How the host talks to the caller's thread. */
export interface HostChannel {
  /** Sends a message to the caller's thread. */
  post(message: FromWorker, transfer?: ArrayBuffer[]): void;
  /** Handles every message already queued; true when there was at least one. */
  pump(): boolean;
  /** Blocks until a message arrives (and is handled) or `ms` pass. */
  wait(ms: number): void;
}

/** Thrown when the component calls wasi:cli/exit. */
export class GuestExit extends Error {
  constructor(readonly code: number) {
    super(`the handler exited with code ${code}`);
  }
}

/** Thrown when the component keeps waiting past its request's deadline, or after the caller gave up on it. */
export class DeadlineExceeded extends Error {
  constructor(message = 'the handler was still waiting when its deadline passed') {
    super(message);
  }
}

const dispose: symbol = (Symbol as { dispose?: symbol }).dispose ?? Symbol.for('dispose');
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const EMPTY = new Uint8Array(0);
/** Longest single wait; loops re-check the deadline between waits. */
const WAIT_SLICE_MS = 1000;
/** Time past the deadline after which the worker gives up by itself (the caller normally acts first). */
const DEADLINE_GRACE_MS = 2000;

function toBigIntLen(len: bigint): number {
  return len > BigInt(0x7fff_ffff) ? 0x7fff_ffff : Number(len);
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

function copyOf(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.byteLength);
  out.set(bytes);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Byte queues and sinks

/** Bytes arriving from the caller's thread, read by the component. */
class IncomingData {
  private chunks: Uint8Array[] = [];
  private size = 0;
  ended = false;
  error: string | undefined;
  private discarding = false;

  constructor(private readonly onConsumed: (bytes: number) => void) {}

  push(chunk: Uint8Array): void {
    if (this.discarding) {
      this.onConsumed(chunk.byteLength);
      return;
    }
    this.chunks.push(chunk);
    this.size += chunk.byteLength;
  }

  end(): void {
    this.ended = true;
  }

  fail(message: string): void {
    this.error = message;
  }

  /** Drops what is buffered and everything still to come (the component no longer wants it). */
  discard(): void {
    if (this.discarding) return;
    this.discarding = true;
    const had = this.size;
    this.chunks = [];
    this.size = 0;
    if (had > 0) this.onConsumed(had);
  }

  get available(): number {
    return this.size;
  }

  get readable(): boolean {
    return this.size > 0 || this.ended || this.error !== undefined;
  }

  take(max: number): Uint8Array {
    if (max <= 0 || this.size === 0) return EMPTY;
    const first = this.chunks[0] as Uint8Array;
    let out: Uint8Array;
    if (first.byteLength <= max) {
      this.chunks.shift();
      out = first;
    } else {
      out = first.subarray(0, max);
      this.chunks[0] = first.subarray(max);
    }
    this.size -= out.byteLength;
    this.onConsumed(out.byteLength);
    return out;
  }
}

/** Where an output stream's bytes go. */
interface ByteSink {
  /** Bytes that may be written now without waiting. */
  capacity(): number;
  write(bytes: Uint8Array): void;
  readonly closed: boolean;
}

/** Bytes written by the component and streamed to the caller's thread under a credit window. */
class StreamedSink implements ByteSink {
  private written = 0;

  /** Bytes written so far. */
  get bytesWritten(): number {
    return this.written;
  }

  private credited = 0;
  private pending: Uint8Array[] = [];
  private started = false;
  finished = false;
  private endPending = false;

  constructor(
    private readonly sendChunk: (chunk: Uint8Array) => void,
    private readonly sendEnd: () => void,
  ) {}

  capacity(): number {
    if (this.finished) return 0;
    return Math.max(0, STREAM_WINDOW - (this.written - this.credited));
  }

  get closed(): boolean {
    return this.finished;
  }

  write(bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return;
    const chunk = copyOf(bytes);
    this.written += chunk.byteLength;
    if (this.started) this.sendChunk(chunk);
    else this.pending.push(chunk);
  }

  credit(bytes: number): void {
    this.credited += bytes;
  }

  /** Starts sending: everything written so far goes out, then the rest as it is written. */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const chunk of this.pending) this.sendChunk(chunk);
    this.pending = [];
    if (this.endPending) this.sendEnd();
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.started) this.sendEnd();
    else this.endPending = true;
  }
}

/** Handler output on stdout/stderr, forwarded to the function's log. */
class LogSink implements ByteSink {
  private readonly decoder = new TextDecoder('utf-8');
  readonly closed = false;

  constructor(
    private readonly host: ComponentHost,
    private readonly stream: 'stdout' | 'stderr',
  ) {}

  capacity(): number {
    return 1 << 20;
  }

  write(bytes: Uint8Array): void {
    const text = this.decoder.decode(bytes, { stream: true });
    if (text.length > 0) this.host.writeLog(this.stream, text);
  }
}

// ---------------------------------------------------------------------------------------------
// wasi:io

/** wasi:io/error `error`. */
class IoError {
  constructor(
    readonly message: string,
    readonly httpCode?: HttpErrorCode,
  ) {}

  toDebugString(): string {
    return this.message;
  }
}

/** wasi:io/poll `pollable`. */
class Pollable {
  constructor(
    private readonly host: ComponentHost,
    readonly isReady: () => boolean,
    /** Monotonic nanoseconds at which a timer pollable becomes ready. */
    readonly deadline?: bigint,
  ) {}

  ready(): boolean {
    this.host.channel.pump();
    return this.isReady();
  }

  block(): void {
    this.host.poll([this]);
  }
}

/** wasi:io/streams `input-stream`. */
class InputStream {
  constructor(
    private readonly host: ComponentHost,
    private readonly source: IncomingData,
  ) {}

  read(len: bigint): Uint8Array {
    const src = this.source;
    if (src.available > 0) return src.take(toBigIntLen(len));
    if (src.error !== undefined) throw new WasiResultError({ tag: 'last-operation-failed', val: new IoError(src.error) });
    if (src.ended) throw new WasiResultError({ tag: 'closed' });
    return EMPTY;
  }

  blockingRead(len: bigint): Uint8Array {
    this.host.waitUntil(() => this.source.readable);
    return this.read(len);
  }

  skip(len: bigint): bigint {
    return BigInt(this.read(len).byteLength);
  }

  blockingSkip(len: bigint): bigint {
    return BigInt(this.blockingRead(len).byteLength);
  }

  subscribe(): Pollable {
    return new Pollable(this.host, () => this.source.readable);
  }

  [dispose](): void {
    // A stream dropped before its end: the rest of the body is not wanted.
    if (!this.source.ended) this.source.discard();
  }
}

/** wasi:io/streams `output-stream`. */
class OutputStream {
  constructor(
    private readonly host: ComponentHost,
    private readonly sink: ByteSink,
  ) {}

  checkWrite(): bigint {
    if (this.sink.closed) throw new WasiResultError({ tag: 'closed' });
    this.host.channel.pump();
    return BigInt(this.sink.capacity());
  }

  write(contents: Uint8Array): void {
    if (this.sink.closed) throw new WasiResultError({ tag: 'closed' });
    this.sink.write(contents);
  }

  blockingWriteAndFlush(contents: Uint8Array): void {
    let offset = 0;
    while (offset < contents.byteLength) {
      this.host.waitUntil(() => this.sink.closed || this.sink.capacity() > 0);
      if (this.sink.closed) throw new WasiResultError({ tag: 'closed' });
      const n = Math.min(this.sink.capacity(), contents.byteLength - offset);
      this.sink.write(contents.subarray(offset, offset + n));
      offset += n;
    }
  }

  flush(): void {
    if (this.sink.closed) throw new WasiResultError({ tag: 'closed' });
  }

  blockingFlush(): void {
    this.flush();
  }

  subscribe(): Pollable {
    return new Pollable(this.host, () => this.sink.closed || this.sink.capacity() > 0);
  }

  writeZeroes(len: bigint): void {
    this.write(new Uint8Array(toBigIntLen(len)));
  }

  blockingWriteZeroesAndFlush(len: bigint): void {
    this.blockingWriteAndFlush(new Uint8Array(toBigIntLen(len)));
  }

  splice(src: InputStream, len: bigint): bigint {
    const room = Math.min(toBigIntLen(len), Number(this.checkWrite()));
    const data = src.read(BigInt(room));
    this.write(data);
    return BigInt(data.byteLength);
  }

  blockingSplice(src: InputStream, len: bigint): bigint {
    const data = src.blockingRead(len);
    this.blockingWriteAndFlush(data);
    return BigInt(data.byteLength);
  }
}

// ---------------------------------------------------------------------------------------------
// wasi:http/types

interface FieldList {
  entries: Array<[string, Uint8Array]>;
  immutable: boolean;
}

function checkField(name: string, value?: Uint8Array): void {
  if (!TOKEN.test(name)) throw new WasiResultError({ tag: 'invalid-syntax' });
  if (value) {
    for (const byte of value) {
      if (byte === 0x0a || byte === 0x0d || byte === 0x00) throw new WasiResultError({ tag: 'invalid-syntax' });
    }
  }
}

/** wasi:http/types `fields` (headers and trailers); views share one list. */
class Fields {
  private list: FieldList = { entries: [], immutable: false };

  /** A new handle onto an existing list (each handle the component gets must be its own object). */
  static view(list: FieldList): Fields {
    const fields = new Fields();
    fields.list = list;
    return fields;
  }

  static fromList(entries: Array<[string, Uint8Array]>): Fields {
    for (const [name, value] of entries) checkField(name, value);
    const fields = new Fields();
    fields.list.entries = entries.map(([n, v]) => [n, copyOf(v)]);
    return fields;
  }

  /** The shared list behind this handle. */
  get shared(): FieldList {
    return this.list;
  }

  private mutable(): Array<[string, Uint8Array]> {
    if (this.list.immutable) throw new WasiResultError({ tag: 'immutable' });
    return this.list.entries;
  }

  get(name: string): Uint8Array[] {
    const key = name.toLowerCase();
    return this.list.entries.filter(([n]) => n.toLowerCase() === key).map(([, v]) => v);
  }

  has(name: string): boolean {
    const key = name.toLowerCase();
    return this.list.entries.some(([n]) => n.toLowerCase() === key);
  }

  set(name: string, values: Uint8Array[]): void {
    checkField(name);
    for (const value of values) checkField(name, value);
    const entries = this.mutable();
    const key = name.toLowerCase();
    this.list.entries = entries.filter(([n]) => n.toLowerCase() !== key);
    for (const value of values) this.list.entries.push([name, copyOf(value)]);
  }

  delete(name: string): void {
    checkField(name);
    const entries = this.mutable();
    const key = name.toLowerCase();
    this.list.entries = entries.filter(([n]) => n.toLowerCase() !== key);
  }

  append(name: string, value: Uint8Array): void {
    checkField(name, value);
    this.mutable().push([name, copyOf(value)]);
  }

  entries(): Array<[string, Uint8Array]> {
    return this.list.entries.slice();
  }

  clone(): Fields {
    const fields = new Fields();
    fields.list.entries = this.list.entries.slice();
    return fields;
  }
}

const METHODS = ['get', 'head', 'post', 'put', 'delete', 'connect', 'options', 'trace', 'patch'];

type MethodValue = { tag: string; val?: string };

function toMethod(method: string): MethodValue {
  const lower = method.toLowerCase();
  return METHODS.includes(lower) && method === method.toUpperCase() ? { tag: lower } : { tag: 'other', val: method };
}

function fromMethod(method: MethodValue): string {
  return method.tag === 'other' ? String(method.val ?? '') : method.tag.toUpperCase();
}

function toWireHeaders(list: FieldList): WireHeaders {
  return list.entries.map(([name, value]) => [name, latin1(value)]);
}

function fromWireHeaders(headers: WireHeaders, immutable: boolean): FieldList {
  return { entries: headers.map(([name, value]) => [name, new Uint8Array(Buffer.from(value, 'latin1'))]), immutable };
}

/** wasi:http/types `incoming-request`: the request being served. */
class IncomingRequest {
  private consumed = false;
  private readonly headerList: FieldList;

  constructor(private readonly scope: RequestScope) {
    this.headerList = fromWireHeaders(scope.request.headers, true);
  }

  method(): MethodValue {
    return toMethod(this.scope.request.method);
  }

  pathWithQuery(): string | undefined {
    return this.scope.request.pathWithQuery;
  }

  scheme(): { tag: string } | undefined {
    return { tag: this.scope.request.scheme === 'https' ? 'HTTPS' : 'HTTP' };
  }

  authority(): string | undefined {
    return this.scope.request.authority;
  }

  headers(): Fields {
    return Fields.view(this.headerList);
  }

  consume(): IncomingBody {
    if (this.consumed) throw new WasiResultError(undefined);
    this.consumed = true;
    return new IncomingBody(this.scope.host, this.scope.requestBody);
  }
}

/** wasi:http/types `incoming-body`. */
class IncomingBody {
  private streamed = false;

  constructor(
    private readonly host: ComponentHost,
    private readonly source: IncomingData,
  ) {}

  stream(): InputStream {
    if (this.streamed) throw new WasiResultError(undefined);
    this.streamed = true;
    return new InputStream(this.host, this.source);
  }

  static finish(body: IncomingBody): FutureTrailers {
    body.source.discard();
    return new FutureTrailers(body.host);
  }

  [dispose](): void {
    if (!this.streamed) this.source.discard();
  }
}

/** wasi:http/types `future-trailers`: Lamplighter passes no trailers, so it is ready at once. */
class FutureTrailers {
  private taken = false;

  constructor(private readonly host: ComponentHost) {}

  subscribe(): Pollable {
    return new Pollable(this.host, () => true);
  }

  get(): unknown {
    if (this.taken) return { tag: 'err', val: undefined };
    this.taken = true;
    return { tag: 'ok', val: { tag: 'ok', val: undefined } };
  }
}

/** wasi:http/types `outgoing-response`: the response the handler builds. */
class OutgoingResponse {
  private status = 200;
  /** True once the handler asked for the body. */
  bodyTaken = false;
  readonly headerList: FieldList;
  readonly sink: StreamedSink;

  constructor(headers: Fields) {
    this.headerList = headers.shared;
    this.headerList.immutable = true;
    const scope = currentScope();
    this.sink = scope.newResponseSink();
  }

  statusCode(): number {
    return this.status;
  }

  setStatusCode(code: number): void {
    if (!Number.isInteger(code) || code < 100 || code > 999) throw new WasiResultError(undefined);
    this.status = code;
  }

  headers(): Fields {
    return Fields.view(this.headerList);
  }

  body(): OutgoingBody {
    if (this.bodyTaken) throw new WasiResultError(undefined);
    this.bodyTaken = true;
    return new OutgoingBody(currentScope().host, this.sink, () => currentScope().markIncomplete());
  }
}

/** wasi:http/types `outgoing-body`, for the response or for an outbound request. */
class OutgoingBody {
  private written = false;
  private finished = false;

  constructor(
    private readonly host: ComponentHost,
    readonly sink: StreamedSink,
    private readonly onAbandoned: () => void,
  ) {}

  write(): OutputStream {
    if (this.written) throw new WasiResultError(undefined);
    this.written = true;
    return new OutputStream(this.host, this.sink);
  }

  static finish(body: OutgoingBody, _trailers: Fields | undefined): void {
    body.finished = true;
    body.sink.finish();
  }

  [dispose](): void {
    if (!this.finished) this.onAbandoned();
  }
}

/** wasi:http/types `response-outparam`: where the handler sets its response. */
class ResponseOutparam {
  constructor(private readonly scope: RequestScope) {}

  static set(param: ResponseOutparam, response: { tag: 'ok'; val: OutgoingResponse } | { tag: 'err'; val: HttpErrorCode }): void {
    param.scope.setResponse(response);
  }
}

/** wasi:http/types `request-options`. */
class RequestOptions {
  private connect: bigint | undefined;
  private firstByte: bigint | undefined;
  private betweenBytes: bigint | undefined;

  connectTimeout(): bigint | undefined {
    return this.connect;
  }
  setConnectTimeout(duration: bigint | undefined): void {
    this.connect = duration;
  }
  firstByteTimeout(): bigint | undefined {
    return this.firstByte;
  }
  setFirstByteTimeout(duration: bigint | undefined): void {
    this.firstByte = duration;
  }
  betweenBytesTimeout(): bigint | undefined {
    return this.betweenBytes;
  }
  setBetweenBytesTimeout(duration: bigint | undefined): void {
    this.betweenBytes = duration;
  }

  /** The timeouts in milliseconds, for the caller's thread. */
  toTimeouts(): OutboundTimeouts {
    const ms = (ns: bigint | undefined): number | undefined => (ns === undefined ? undefined : Number(ns / BigInt(1_000_000)));
    return { connectMs: ms(this.connect), firstByteMs: ms(this.firstByte), betweenBytesMs: ms(this.betweenBytes) };
  }
}

/** wasi:http/types `outgoing-request`: a request the handler sends out. */
class OutgoingRequest {
  private methodValue: MethodValue = { tag: 'get' };
  private path: string | undefined;
  private schemeValue: { tag: string; val?: string } | undefined;
  private authorityValue: string | undefined;
  private bodyValue: OutgoingBody | undefined;
  readonly headerList: FieldList;
  /** Set once the request has been handed to outgoing-handler. */
  call: OutboundCall | undefined;
  readonly sink: StreamedSink;

  constructor(headers: Fields) {
    this.headerList = headers.shared;
    this.headerList.immutable = true;
    this.sink = new StreamedSink(
      (chunk) => this.call?.sendBody(chunk),
      () => this.call?.sendBodyEnd(),
    );
  }

  body(): OutgoingBody {
    if (this.bodyValue) throw new WasiResultError(undefined);
    this.bodyValue = new OutgoingBody(currentScope().host, this.sink, () => this.call?.cancel());
    return this.bodyValue;
  }

  /** True when the handler took the body (and so will finish it). */
  get hasBody(): boolean {
    return this.bodyValue !== undefined;
  }

  method(): MethodValue {
    return this.methodValue;
  }
  setMethod(method: MethodValue): void {
    if (method.tag === 'other' && !TOKEN.test(method.val ?? '')) throw new WasiResultError(undefined);
    this.methodValue = method;
  }
  pathWithQuery(): string | undefined {
    return this.path;
  }
  setPathWithQuery(path: string | undefined): void {
    if (path !== undefined && /[\s]/.test(path)) throw new WasiResultError(undefined);
    this.path = path;
  }
  scheme(): { tag: string; val?: string } | undefined {
    return this.schemeValue;
  }
  setScheme(scheme: { tag: string; val?: string } | undefined): void {
    this.schemeValue = scheme;
  }
  authority(): string | undefined {
    return this.authorityValue;
  }
  setAuthority(authority: string | undefined): void {
    if (authority !== undefined && /[\s/?#@]/.test(authority)) throw new WasiResultError(undefined);
    this.authorityValue = authority;
  }
  headers(): Fields {
    return Fields.view(this.headerList);
  }

  /** The absolute URL this request goes to. */
  url(): URL {
    const tag = this.schemeValue?.tag ?? 'HTTPS';
    const scheme = tag === 'HTTP' ? 'http' : tag === 'HTTPS' ? 'https' : (this.schemeValue?.val ?? '').toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') throw new WasiResultError({ tag: 'HTTP-protocol-error' });
    if (!this.authorityValue) throw new WasiResultError({ tag: 'HTTP-request-URI-invalid' });
    try {
      return new URL(`${scheme}://${this.authorityValue}${this.path ?? '/'}`);
    } catch {
      throw new WasiResultError({ tag: 'HTTP-request-URI-invalid' });
    }
  }
}

/** One outbound request in flight, as the worker sees it. */
class OutboundCall {
  head: { status: number; headers: WireHeaders } | undefined;
  error: HttpErrorCode | undefined;
  readonly body: IncomingData;
  taken = false;
  private done = false;

  constructor(
    private readonly host: ComponentHost,
    readonly oid: number,
    readonly request: OutgoingRequest,
  ) {
    this.body = new IncomingData((bytes) => this.host.channel.post({ t: 'fetch-ack', oid, bytes }));
  }

  sendBody(chunk: Uint8Array): void {
    this.host.channel.post({ t: 'fetch-body', oid: this.oid, chunk }, [chunk.buffer as ArrayBuffer]);
  }

  sendBodyEnd(): void {
    this.host.channel.post({ t: 'fetch-body-end', oid: this.oid });
  }

  /** Stops the call (its request body was abandoned, or the request ended). */
  cancel(): void {
    if (this.done) return;
    this.done = true;
    this.host.channel.post({ t: 'fetch-cancel', oid: this.oid });
  }

  onMessage(message: ToWorker): void {
    switch (message.t) {
      case 'fetch-head':
        this.head = { status: message.status, headers: message.headers };
        break;
      case 'fetch-chunk':
        this.body.push(message.chunk);
        break;
      case 'fetch-end':
        this.done = true;
        this.body.end();
        break;
      case 'fetch-error':
        this.done = true;
        if (this.head === undefined) this.error = message.code;
        else this.body.fail(`outbound response failed: ${message.code.tag}`);
        break;
      case 'fetch-credit':
        this.request.sink.credit(message.bytes);
        break;
      default:
        break;
    }
  }
}

/** wasi:http/types `future-incoming-response`. */
class FutureIncomingResponse {
  constructor(
    private readonly host: ComponentHost,
    private readonly call: OutboundCall,
  ) {}

  subscribe(): Pollable {
    return new Pollable(this.host, () => this.call.head !== undefined || this.call.error !== undefined);
  }

  get(): unknown {
    this.host.channel.pump();
    const { call } = this;
    if (call.head === undefined && call.error === undefined) return undefined;
    if (call.taken) return { tag: 'err', val: undefined };
    call.taken = true;
    if (call.error !== undefined) return { tag: 'ok', val: { tag: 'err', val: call.error } };
    return { tag: 'ok', val: { tag: 'ok', val: new IncomingResponse(this.host, call) } };
  }

  [dispose](): void {
    if (!this.call.taken) this.call.cancel();
  }
}

/** wasi:http/types `incoming-response`: the answer to an outbound request. */
class IncomingResponse {
  private consumed = false;
  private readonly headerList: FieldList;

  constructor(
    private readonly host: ComponentHost,
    private readonly call: OutboundCall,
  ) {
    this.headerList = fromWireHeaders(call.head?.headers ?? [], true);
  }

  status(): number {
    return this.call.head?.status ?? 0;
  }

  headers(): Fields {
    return Fields.view(this.headerList);
  }

  consume(): IncomingBody {
    if (this.consumed) throw new WasiResultError(undefined);
    this.consumed = true;
    return new IncomingBody(this.host, this.call.body);
  }
}

// ---------------------------------------------------------------------------------------------
// Per-request state

/** What happens while one request runs on this worker. */
class RequestScope {
  readonly requestBody: IncomingData;
  response: OutgoingResponse | undefined;
  private headSent = false;
  failure: RunFailure | undefined;
  private incomplete = false;
  /** Set when the caller stopped waiting (timeout, client gone): the next wait unwinds the handler. */
  stopped = false;
  readonly outbound = new Map<number, OutboundCall>();
  private responseSinks: StreamedSink[] = [];

  constructor(
    readonly host: ComponentHost,
    readonly request: RunRequest,
  ) {
    this.requestBody = new IncomingData((bytes) => host.channel.post({ t: 'ack', id: request.id, bytes }));
    if (request.bodyless) this.requestBody.end();
  }

  newResponseSink(): StreamedSink {
    const { id } = this.request;
    const sink = new StreamedSink(
      (chunk) => this.host.channel.post({ t: 'chunk', id, chunk }, [chunk.buffer as ArrayBuffer]),
      () => this.host.channel.post({ t: 'end', id }),
    );
    this.responseSinks.push(sink);
    return sink;
  }

  setResponse(response: { tag: 'ok'; val: OutgoingResponse } | { tag: 'err'; val: HttpErrorCode }): void {
    if (this.headSent || this.failure) throw new Error('response-outparam.set called twice');
    if (response.tag === 'err') {
      this.failure = { kind: 'error-response', message: `the handler answered with error ${JSON.stringify(response.val, (_, v) => (typeof v === 'bigint' ? String(v) : v))}` };
      return;
    }
    const outgoing = response.val;
    this.response = outgoing;
    this.headSent = true;
    this.host.channel.post({ t: 'head', id: this.request.id, status: outgoing.statusCode(), headers: toWireHeaders(outgoing.headerList) });
    outgoing.sink.start();
  }

  markIncomplete(): void {
    this.incomplete = true;
  }

  onMessage(message: ToWorker): void {
    switch (message.t) {
      case 'body':
        this.requestBody.push(message.chunk);
        break;
      case 'body-end':
        this.requestBody.end();
        break;
      case 'body-error':
        this.requestBody.fail(message.message);
        break;
      case 'credit':
        this.response?.sink.credit(message.bytes);
        break;
      case 'stop':
        this.stopped = true;
        break;
      default:
        if ('oid' in message) this.outbound.get(message.oid)?.onMessage(message);
        break;
    }
  }

  /** Settles the request after the export returned or threw; returns why it failed, if it did. */
  finish(thrown: RunFailure | undefined): RunFailure | undefined {
    for (const call of this.outbound.values()) call.cancel();
    if (thrown) return thrown;
    if (this.failure) return this.failure;
    if (!this.headSent) return { kind: 'no-response', message: 'the handler returned without setting a response' };
    const sink = this.response?.sink;
    // A response whose body was never taken has an empty body. One taken but never finished is cut
    // short, except an error status with nothing written: that is the engine's own error answer
    // (the JS engine sends 500 and stops when the handler throws), complete as it is.
    const response = this.response;
    if (sink && !sink.finished && (!response?.bodyTaken || (sink.bytesWritten === 0 && response.statusCode() >= 500))) sink.finish();
    else if (sink && !sink.finished) {
      const how = this.incomplete ? 'dropped its response body without finishing it' : 'returned before finishing its response body';
      return { kind: 'incomplete-body', message: `the handler ${how}` };
    }
    return undefined;
  }
}

let activeScope: RequestScope | undefined;

function currentScope(): RequestScope {
  if (!activeScope) throw new Error('wasi:http call outside of a request');
  return activeScope;
}

// ---------------------------------------------------------------------------------------------
// The host

/** Options for {@link ComponentHost}. */
export interface ComponentHostOptions {
  /** The channel to the caller's thread. */
  channel: HostChannel;
  /** Environment variables the handler sees. @default [] */
  env?: Array<[string, string]>;
  /** Parsed outbound allow-list; empty denies every outbound request. @default [] */
  outbound?: readonly OutboundRule[];
  /** The function's shipped files, preopened read-only as `/`; no preopen when undefined. @default undefined */
  filesDir?: string | undefined;
}

/** The imports a component gets, and the state of the request it is serving. */
export class ComponentHost {
  readonly channel: HostChannel;
  private readonly env: Array<[string, string]>;
  private readonly outboundRules: readonly OutboundRule[];
  private readonly filesDir: string | undefined;
  private nextOutbound = 1;
  /** The wasi:* import object, keyed by interface name without version. */
  readonly imports: Record<string, Record<string, unknown>>;

  constructor(options: ComponentHostOptions) {
    this.channel = options.channel;
    this.env = options.env ?? [];
    this.outboundRules = options.outbound ?? [];
    this.filesDir = options.filesDir;
    this.imports = this.buildImports();
  }

  private readonly pendingLog = { stdout: '', stderr: '' };

  /** Buffers handler output and sends it to the log a whole line at a time. */
  writeLog(stream: 'stdout' | 'stderr', text: string): void {
    const buffered = this.pendingLog[stream] + text;
    const cut = buffered.lastIndexOf('\n') + 1;
    if (cut > 0) this.channel.post({ t: 'log', stream, text: buffered.slice(0, cut) });
    this.pendingLog[stream] = buffered.slice(cut);
    // A very long line without a newline is sent as it is rather than held.
    if (this.pendingLog[stream].length > 16_384) this.flushLog(stream);
  }

  private flushLog(stream: 'stdout' | 'stderr'): void {
    const rest = this.pendingLog[stream];
    this.pendingLog[stream] = '';
    if (rest.length > 0) this.channel.post({ t: 'log', stream, text: `${rest}\n` });
  }

  /** True while a request is being served. */
  get active(): boolean {
    return activeScope !== undefined;
  }

  /** Starts serving `request`; the returned objects are handed to the component's export. */
  begin(request: RunRequest): { request: IncomingRequest; responseOut: ResponseOutparam } {
    const scope = new RequestScope(this, request);
    activeScope = scope;
    return { request: new IncomingRequest(scope), responseOut: new ResponseOutparam(scope) };
  }

  /** Ends the current request; returns why it failed, if it did. */
  end(thrown: RunFailure | undefined): RunFailure | undefined {
    const scope = activeScope;
    activeScope = undefined;
    this.flushLog('stdout');
    this.flushLog('stderr');
    return scope ? scope.finish(thrown) : thrown;
  }

  /** Routes a message from the caller's thread to the request it belongs to. */
  dispatch(message: ToWorker): void {
    const scope = activeScope;
    if (!scope) return;
    if ('id' in message && message.id !== scope.request.id) return;
    scope.onMessage(message);
  }

  private deadline(): number {
    return (activeScope?.request.deadline ?? Date.now() + 60_000) + DEADLINE_GRACE_MS;
  }

  private checkStopped(): void {
    if (activeScope?.stopped) throw new DeadlineExceeded('the handler was stopped while waiting: its caller gave up on it');
  }

  /** Blocks until `predicate` holds; throws DeadlineExceeded past the request's deadline or once stopped. */
  waitUntil(predicate: () => boolean): void {
    this.channel.pump();
    const deadline = this.deadline();
    while (!predicate()) {
      this.checkStopped();
      const left = deadline - Date.now();
      if (left <= 0) throw new DeadlineExceeded();
      this.channel.wait(Math.min(left, WAIT_SLICE_MS));
    }
  }

  /** wasi:io/poll `poll`: blocks until at least one pollable is ready; returns the ready indexes. */
  poll(list: Pollable[]): Uint32Array {
    if (list.length === 0) throw new Error('wasi:io/poll.poll was called with no pollables');
    this.channel.pump();
    const deadline = this.deadline();
    for (;;) {
      const ready: number[] = [];
      let nextTimer: bigint | undefined;
      list.forEach((p, i) => {
        if (p.isReady()) ready.push(i);
        else if (p.deadline !== undefined && (nextTimer === undefined || p.deadline < nextTimer)) nextTimer = p.deadline;
      });
      if (ready.length > 0) return Uint32Array.from(ready);
      this.checkStopped();
      const left = deadline - Date.now();
      if (left <= 0) throw new DeadlineExceeded();
      let wait = Math.min(left, WAIT_SLICE_MS);
      if (nextTimer !== undefined) {
        const untilTimer = Number((nextTimer - process.hrtime.bigint()) / BigInt(1_000_000));
        wait = Math.max(0, Math.min(wait, untilTimer + 1));
      }
      this.channel.wait(wait);
    }
  }

  private timer(at: bigint): Pollable {
    return new Pollable(this, () => process.hrtime.bigint() >= at, at);
  }

  private send(request: OutgoingRequest, options: RequestOptions | undefined): FutureIncomingResponse {
    const scope = currentScope();
    const url = request.url();
    if (!isOutboundAllowed(this.outboundRules, url)) {
      this.channel.post({
        t: 'log',
        stream: 'stderr',
        text: `outbound request to ${url.origin} denied: not in allowed_outbound_hosts\n`,
      });
      throw new WasiResultError({ tag: 'HTTP-request-denied' });
    }
    const oid = this.nextOutbound++;
    const call = new OutboundCall(this, oid, request);
    scope.outbound.set(oid, call);
    request.call = call;
    this.channel.post({
      t: 'fetch',
      oid,
      id: scope.request.id,
      method: fromMethod(request.method()),
      url: url.href,
      headers: toWireHeaders(request.headerList),
      timeouts: options?.toTimeouts() ?? {},
    });
    if (request.hasBody) request.sink.start();
    else call.sendBodyEnd();
    return new FutureIncomingResponse(this, call);
  }

  private buildImports(): Record<string, Record<string, unknown>> {
    const stdin = new IncomingData(() => undefined);
    stdin.end();
    const randomU64 = (): bigint => randomBytes(8).readBigUInt64LE(0);
    const randomBytesOf = (len: bigint): Uint8Array => {
      const out = new Uint8Array(toBigIntLen(len));
      randomFillSync(out);
      return out;
    };
    class TerminalInput {}
    class TerminalOutput {}
    const filesystem = filesystemImports({
      root: this.filesDir,
      openStream: (bytes) => {
        const data = new IncomingData(() => undefined);
        data.push(bytes);
        data.end();
        return new InputStream(this, data);
      },
    });
    return {
      'wasi:cli/environment': {
        getEnvironment: (): Array<[string, string]> => this.env.map(([k, v]) => [k, v]),
        getArguments: (): string[] => [],
        initialCwd: (): string | undefined => undefined,
      },
      'wasi:cli/exit': {
        exit: (status: { tag: string }): never => {
          throw new GuestExit(status.tag === 'ok' ? 0 : 1);
        },
        exitWithCode: (code: number): never => {
          throw new GuestExit(code);
        },
      },
      'wasi:cli/stdin': { getStdin: (): InputStream => new InputStream(this, stdin) },
      'wasi:cli/stdout': { getStdout: (): OutputStream => new OutputStream(this, new LogSink(this, 'stdout')) },
      'wasi:cli/stderr': { getStderr: (): OutputStream => new OutputStream(this, new LogSink(this, 'stderr')) },
      'wasi:cli/terminal-input': { TerminalInput },
      'wasi:cli/terminal-output': { TerminalOutput },
      'wasi:cli/terminal-stdin': { getTerminalStdin: (): undefined => undefined },
      'wasi:cli/terminal-stdout': { getTerminalStdout: (): undefined => undefined },
      'wasi:cli/terminal-stderr': { getTerminalStderr: (): undefined => undefined },
      'wasi:clocks/monotonic-clock': {
        now: (): bigint => process.hrtime.bigint(),
        resolution: (): bigint => BigInt(1),
        subscribeInstant: (when: bigint): Pollable => this.timer(when),
        subscribeDuration: (duration: bigint): Pollable => this.timer(process.hrtime.bigint() + duration),
      },
      'wasi:clocks/wall-clock': {
        now: (): { seconds: bigint; nanoseconds: number } => {
          const ms = Date.now();
          return { seconds: BigInt(Math.floor(ms / 1000)), nanoseconds: (ms % 1000) * 1_000_000 };
        },
        resolution: (): { seconds: bigint; nanoseconds: number } => ({ seconds: BigInt(0), nanoseconds: 1_000_000 }),
      },
      'wasi:filesystem/types': filesystem.types,
      'wasi:filesystem/preopens': filesystem.preopens,
      'wasi:http/types': {
        Fields,
        FutureIncomingResponse,
        FutureTrailers,
        IncomingBody,
        IncomingRequest,
        IncomingResponse,
        OutgoingBody,
        OutgoingRequest,
        OutgoingResponse,
        RequestOptions,
        ResponseOutparam,
        httpErrorCode: (err: IoError): HttpErrorCode | undefined => (err instanceof IoError ? err.httpCode : undefined),
      },
      'wasi:http/outgoing-handler': {
        handle: (request: OutgoingRequest, options: RequestOptions | undefined): FutureIncomingResponse => this.send(request, options),
      },
      'wasi:io/error': { Error: IoError },
      'wasi:io/poll': { Pollable, poll: (list: Pollable[]): Uint32Array => this.poll(list) },
      'wasi:io/streams': { InputStream, OutputStream },
      'wasi:random/random': { getRandomBytes: randomBytesOf, getRandomU64: randomU64 },
      'wasi:random/insecure': { getInsecureRandomBytes: randomBytesOf, getInsecureRandomU64: randomU64 },
      'wasi:random/insecure-seed': { insecureSeed: (): [bigint, bigint] => [randomU64(), randomU64()] },
    };
  }
}
