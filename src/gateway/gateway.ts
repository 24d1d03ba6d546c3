// The gateway: one HTTP/1.1 server (src/http1); routes each request, dispatches it, streams the answer back.
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { ErrorCodes, LamplighterError, toLamplighterError } from '../errors/index.js';
import { closingResponse, Http1Server, type Http1TlsSource, type ServerRequest, type ServerResponse } from '../http1/index.js';
import { destroyResponseBody, HOP_BY_HOP_HEADERS, HOP_HEADER, NODE_HEADER, TIME_LEFT_HEADER, type GatewayTarget, type InvocationRequest, type InvocationResponse } from '../instance/index.js';
import { requestChannel, type Logger, type Metrics } from '../observability/index.js';
import { REQUEST_TRACE, TraceAttributes, type RequestTrace, type RequestTracer } from '../tracing/index.js';
import { errorResponse } from './error-response.js';
import { applyRoute, GatewayRequest } from './gateway-request.js';
import { nextRequestId } from './request-id.js';
import { RouteTable } from './route-table.js';

/** Options for {@link Gateway}. */
export interface GatewayOptions {
  metrics: Metrics;
  logger: Logger;
  /** In a cluster, this node's name: every response says which node served it. @default undefined (embedded) */
  nodeName?: string;
  /** Traces each request (a server span, the child of the client's traceparent); none when tracing is off. @default undefined */
  tracer?: RequestTracer;
}

/** Options for {@link Gateway.listen}. */
export interface GatewayListenOptions {
  /** Serve HTTPS with these certificates (src/tls's TlsCertificates). @default undefined (plain HTTP) */
  tls?: Http1TlsSource;
}

/** A request handed to {@link Gateway.handle} in-process, as a client would send it. */
export interface GatewayHandleRequest {
  method: string;
  /** Path and query, e.g. `/hello?name=x`. */
  url: string;
  /** Header names in any case; `host` picks the host routes match. @default {} */
  headers?: Record<string, string>;
  /** @default no body */
  body?: string | Buffer;
  /** The client address the function sees. @default '127.0.0.1' */
  remoteAddress?: string;
}

/** What {@link Gateway.handle} answers: the response as a client would read it, body in full. */
export interface GatewayHandleResponse {
  status: number;
  headers: Headers;
  body: Buffer;
}

/** The HTTP front door: route lookup, then each target's admission and dispatch, streamed responses. */
export class Gateway {
  private routes: RouteTable<GatewayTarget> = new RouteTable([]);
  private server: Http1Server | undefined;
  private port = 0;

  constructor(private readonly options: GatewayOptions) {}

  /** Swaps the tracer (a reload of the node's settings); requests already started keep theirs. */
  setTracer(tracer: RequestTracer | undefined): void {
    this.options.tracer = tracer;
  }

  /** Swaps in a new route table; requests already routed finish on the old targets. */
  setRoutes(table: RouteTable<GatewayTarget>): void {
    this.routes = table;
  }

  /** Starts listening, over HTTPS when `options.tls` gives certificates; resolves with the bound port. */
  async listen(port: number, host: string, options: GatewayListenOptions = {}): Promise<number> {
    const server = new Http1Server({
      request: (req, res) => this.onRequest(req, res),
      upgrade: (req, socket, head) => this.onUpgrade(req, socket, head),
      // Requests the server cannot read get the same JSON error, with a request id, as the rest.
      refusal: (status, message) => {
        this.options.metrics.recordUnrouted(status);
        return errorParts(new LamplighterError(ErrorCodes.BAD_REQUEST, `Bad request: ${message}`), nextRequestId());
      },
    }, options.tls ? { tls: options.tls } : {});
    this.server = server;
    this.port = await server.listen(port, host);
    return this.port;
  }

  /**
   * Stops accepting connections; idle ones close at once, busy ones after their answer, and what
   * is left (upgraded connections too) is cut after a 2 s grace.
   */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await server.close();
  }

  private onUpgrade(req: ServerRequest, socket: Socket, head: Buffer): void {
    const start = performance.now();
    const { url, path, host } = splitTarget(req.url, req.headers.host);
    const requestId = nextRequestId();
    const match = this.routes.match(host, path);
    socket.on('error', () => socket.destroy());
    // Settled once: the function's answer (a 101 or a refusal it relayed), or ours.
    let answered = false;
    let timer: NodeJS.Timeout | undefined;
    const refuse = (err: unknown): void => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      const out = errorParts(err, requestId);
      if (match) this.finish(match.target.spec.name, out.status, start, false, requestId);
      else this.options.metrics.recordUnrouted(out.status);
      if (!socket.writable) return void socket.destroy();
      socket.write(closingResponse(out.status, out.headers, out.body, new Date().toUTCString()));
      // Ended and destroyed once written: a client that never closes its side is not waited for.
      socket.destroySoon();
    };
    if (!match) return refuse(notRouted(host, path));
    const controller = new AbortController();
    socket.once('close', () => controller.abort());
    // A handshake gets its answer within the function's timeout like any request: a child that
    // never answers (or waits for bytes that will not come) is given up on with a 504. The abort
    // comes first, so that the instance lets go of the socket before the 504 is written.
    const { name: fn, limits } = match.target.spec;
    timer = setTimeout(() => {
      const err = new LamplighterError(ErrorCodes.TIMEOUT, `Function '${fn}' did not answer the upgrade within ${limits.timeoutMs} ms (limits.timeout)`);
      controller.abort(err);
      refuse(err);
    }, limits.timeoutMs);
    const routed = applyRoute(url, req.headers, match.route);
    const invocation: InvocationRequest = {
      id: requestId,
      method: req.method,
      url: routed.url,
      ...(routed.originalUrl === undefined ? {} : { originalUrl: routed.originalUrl }),
      headers: req.headers,
      body: req.body,
      remoteAddress: req.remoteAddress,
      host,
      serverPort: this.port,
      scheme: req.scheme,
      route: match.route,
      signal: controller.signal,
      forwardedBy: typeof req.headers[HOP_HEADER] === 'string' ? req.headers[HOP_HEADER] : undefined,
    };
    match.target.upgrade(invocation, socket, head).then(({ coldStart, status }) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      this.finish(fn, status, start, coldStart, requestId);
    }, refuse);
  }

  private onRequest(req: ServerRequest, res: ServerResponse): void {
    const start = performance.now();
    const { url, path, host } = splitTarget(req.url, req.headers.host);
    const requestId = forwardedRequestId(req.headers) ?? nextRequestId();
    const match = this.routes.match(host, path);
    const tracer = this.options.tracer;
    // Tracing off: no span, no context, no header parsing; below, `trace` is only ever compared with undefined.
    const trace = tracer === undefined ? undefined : tracer.startRequest({ method: req.method, headers: req.headers, host, port: this.port, path, remoteAddress: req.remoteAddress, requestId });
    if (!match) {
      this.options.metrics.recordUnrouted(404);
      const err = notRouted(host, path);
      if (trace !== undefined) {
        trace.fail(err);
        res.onClose = (finished) => trace.end(finished);
      }
      this.sendError(res, err, requestId);
      return;
    }
    const target = match.target;
    const fn = target.spec.name;
    const invocation = new GatewayRequest(requestId, req, url, host, this.port, match.route, deadlineOf(req.headers, start, target.spec.limits.timeoutMs));
    if (trace === undefined) {
      res.onClose = (finished) => {
        if (!finished) invocation.abort();
      };
    } else {
      trace.routed(match.route.pattern, fn);
      invocation[REQUEST_TRACE] = trace;
      res.onClose = (finished) => {
        if (!finished) invocation.abort();
        trace.end(finished);
      };
    }
    // Admission (the deadline among it) is the target's: one answer or one error comes back.
    target.dispatch(invocation).then(
      ({ response, coldStart, node }) => {
        // Recorded before the answer is written: a whole one ends the server span as it goes out.
        trace?.respond(response.status, coldStart);
        try {
          this.sendResponse(res, response, requestId, coldStart, node);
        } catch (err) {
          // A response the server refuses (a bad header or status from a handler) is the
          // handler's fault, and must never escape as an unhandled rejection.
          destroyResponseBody(response);
          const bad = badResponse(fn, err);
          trace?.fail(bad);
          this.finish(fn, bad.status, start, coldStart, requestId);
          this.sendError(res, bad, requestId);
          return;
        }
        this.finish(fn, response.status, start, coldStart, requestId);
      },
      (err: unknown) => {
        const e = this.failed(fn, err, start, requestId, trace);
        this.sendError(res, e, requestId);
      },
    );
  }

  /**
   * Serves one request in-process: route lookup, the target's admission and dispatch, as for a
   * request on the socket (same metrics, ids and error bodies), with the whole body read. Rejects
   * only when a streamed body fails midway.
   */
  async handle(request: GatewayHandleRequest): Promise<GatewayHandleResponse> {
    const start = performance.now();
    // Header names as the server reads them, and the target split, once for the trace and the request.
    const headers: IncomingHttpHeaders = {};
    for (const [name, value] of Object.entries(request.headers ?? {})) headers[name.toLowerCase()] = value;
    const target = splitTarget(request.url, headers.host);
    const tracer = this.options.tracer;
    if (tracer === undefined) return this.#handle(request, headers, target, start, undefined);
    const trace = tracer.startRequest({ method: request.method.toUpperCase(), headers, host: target.host, port: this.port, path: target.path, remoteAddress: request.remoteAddress ?? '127.0.0.1' });
    let finished = false;
    try {
      const answer = await this.#handle(request, headers, target, start, trace);
      finished = true;
      return answer;
    } finally {
      trace.end(finished);
    }
  }

  async #handle(request: GatewayHandleRequest, headers: IncomingHttpHeaders, split: { url: string; path: string; host: string }, start: number, trace: RequestTrace | undefined): Promise<GatewayHandleResponse> {
    const body = request.body === undefined ? EMPTY : Buffer.from(request.body);
    if (body.length > 0 && headers['content-length'] === undefined) headers['content-length'] = String(body.length);
    const { url, path, host } = split;
    const requestId = forwardedRequestId(headers) ?? nextRequestId();
    const match = this.routes.match(host, path);
    trace?.server.setAttribute(TraceAttributes.requestId, requestId);
    if (!match) {
      this.options.metrics.recordUnrouted(404);
      const err = notRouted(host, path);
      trace?.fail(err);
      return errorAnswer(err, requestId);
    }
    const target = match.target;
    const fn = target.spec.name;
    const source = { method: request.method.toUpperCase(), headers, remoteAddress: request.remoteAddress ?? '127.0.0.1', body: Readable.from(body.length > 0 ? [body] : [], { objectMode: false }) };
    const invocation = new GatewayRequest(requestId, source, url, host, this.port, match.route, deadlineOf(headers, start, target.spec.limits.timeoutMs));
    if (trace !== undefined) {
      trace.routed(match.route.pattern, fn);
      invocation[REQUEST_TRACE] = trace;
    }
    let served;
    try {
      served = await target.dispatch(invocation);
    } catch (err) {
      return errorAnswer(this.failed(fn, err, start, requestId, trace), requestId);
    }
    const { response, coldStart, node } = served;
    const { headers: flat, length } = this.#passedHeaders(response, requestId, coldStart, node);
    const out = new Headers();
    try {
      for (let i = 0; i < flat.length; i += 2) out.append(flat[i]!, flat[i + 1]!);
    } catch (err) {
      destroyResponseBody(response);
      const bad = badResponse(fn, err);
      trace?.fail(bad);
      this.finish(fn, bad.status, start, coldStart, requestId);
      return errorAnswer(bad, requestId);
    }
    // Counted at the answer's head, as on the socket; a body that fails midway rejects, as a
    // client would see its connection cut.
    trace?.respond(response.status, coldStart);
    this.finish(fn, response.status, start, coldStart, requestId);
    const content = response.body === null ? EMPTY : Buffer.isBuffer(response.body) ? response.body : Buffer.concat(await response.body.toArray());
    // As on the socket: the answer to a HEAD keeps the handler's length.
    const sentLength = response.body === null ? length : String(content.length);
    if (sentLength !== undefined) out.set('content-length', sentLength);
    return { status: response.status, headers: out, body: content };
  }

  /** A request that failed before its answer: logged when internal, counted, returned as a LamplighterError. */
  private failed(fn: string, err: unknown, start: number, requestId: string, trace?: RequestTrace): LamplighterError {
    const e = toLamplighterError(err);
    if (e.code === ErrorCodes.INTERNAL) this.options.logger.error({ err: e.cause ?? e, function: fn, requestId }, 'request failed');
    trace?.fail(e);
    this.finish(fn, e.status, start, false, requestId);
    return e;
  }

  private finish(fn: string, status: number, start: number, coldStart: boolean, requestId: string): void {
    const seconds = (performance.now() - start) / 1000;
    this.options.metrics.requestSeries(fn).record(status, seconds);
    if (requestChannel.hasSubscribers) requestChannel.publish({ function: fn, status, durationMs: seconds * 1000, coldStart, requestId });
  }

  /**
   * A function's response headers as the gateway passes them on, flat: without hop-by-hop ones
   * and without the gateway's own (which it sets after them: the request id, whether the request
   * waited for a cold start and, in a cluster, the node that served it). The handler's
   * content-length comes apart, for the caller to keep or replace.
   */
  #passedHeaders(response: InvocationResponse, requestId: string, coldStart: boolean, node: string | undefined): { headers: string[]; length: string | undefined } {
    const headers: string[] = [];
    let length: string | undefined;
    for (const [name, value] of response.headers) {
      const lower = name.toLowerCase();
      if (lower === 'content-length') length = value;
      else if (!NOT_PASSED_ON.has(lower)) headers.push(name, value);
    }
    headers.push('x-request-id', requestId, COLD_START_HEADER, coldStart ? 'true' : 'false');
    const self = this.options.nodeName;
    if (self !== undefined) headers.push(NODE_HEADER, node ?? self);
    return { headers, length };
  }

  private sendResponse(res: ServerResponse, response: InvocationResponse, requestId: string, coldStart: boolean, node: string | undefined): void {
    const body = response.body;
    const { headers: flat, length } = this.#passedHeaders(response, requestId, coldStart, node);
    if (body === null || Buffer.isBuffer(body)) {
      // A buffered body is sent with its own length; the answer to a HEAD, which has none, keeps
      // the handler's, describing the body a GET would get.
      const buf = body ?? EMPTY;
      res.send(response.status, flat, buf, body === null ? length : String(buf.length));
      return;
    }
    // A stream keeps the handler's length when it gave one; otherwise it is sent chunked.
    res.stream(response.status, flat, body, length);
  }

  private sendError(res: ServerResponse, err: unknown, requestId: string): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const out = errorParts(err, requestId);
    res.send(out.status, out.headers, out.body);
  }
}

const EMPTY = Buffer.alloc(0);

const COLD_START_HEADER = 'x-lamplighter-cold-start';

/** Response headers of a function that are not passed on: hop-by-hop ones, and those the gateway sets itself. */
const NOT_PASSED_ON: ReadonlySet<string> = new Set([...HOP_BY_HOP_HEADERS, 'x-request-id', COLD_START_HEADER, NODE_HEADER]);

/** Ids as nodes make them; anything else a client sends is not taken. */
const REQUEST_ID = /^[0-9a-f-]{1,64}$/;

/** The id another node gave a request it forwarded here, so that both nodes log the same id. */
function forwardedRequestId(headers: IncomingHttpHeaders): string | undefined {
  if (headers[HOP_HEADER] === undefined) return undefined;
  const id = headers['x-request-id'];
  return typeof id === 'string' && REQUEST_ID.test(id) ? id : undefined;
}

/**
 * When a request must be answered: `timeoutMs` from its arrival, or sooner when a node that
 * forwarded it says less time is left (only a forwarded request's word is taken, and only to
 * shorten it).
 */
function deadlineOf(headers: IncomingHttpHeaders, start: number, timeoutMs: number): number {
  const own = start + timeoutMs;
  if (headers[HOP_HEADER] === undefined) return own;
  const left = headers[TIME_LEFT_HEADER];
  if (typeof left !== 'string' || !/^\d{1,10}$/.test(left)) return own;
  return Math.min(own, start + Number(left));
}

/** The request target split into path and query, and the Host header without its port. */
function splitTarget(url: string, hostHeader = ''): { url: string; path: string; host: string } {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const colon = hostHeader.lastIndexOf(':');
  const host = colon > 0 && !hostHeader.endsWith(']') ? hostHeader.slice(0, colon) : hostHeader;
  return { url, path, host };
}

/** An error as the gateway answers it: status, headers flat and without a length (the server writes it), JSON body. */
function errorParts(err: unknown, requestId: string): { status: number; headers: string[]; body: Buffer } {
  const out = errorResponse(err, requestId);
  const coldStart = err instanceof LamplighterError && err.code === ErrorCodes.COLD_START_TIMEOUT;
  const headers: string[] = [];
  for (const [k, v] of out.headers) if (k !== 'content-length') headers.push(k, v);
  headers.push(COLD_START_HEADER, coldStart ? 'true' : 'false');
  return { status: out.status, headers, body: out.body };
}

/** The error for a request no route matches. */
function notRouted(host: string, path: string): LamplighterError {
  return new LamplighterError(ErrorCodes.ROUTE_NOT_FOUND, `No function serves ${host || '(no host)'}${path}`);
}

/** The error for an answer that cannot be sent as the handler gave it. */
function badResponse(fn: string, err: unknown): LamplighterError {
  return new LamplighterError(ErrorCodes.BAD_HANDLER_RESPONSE, `Function '${fn}' answered with a response that cannot be sent: ${(err as Error).message}`);
}

/** An error as {@link Gateway.handle} answers it: the same status, headers and JSON body as on the socket. */
function errorAnswer(err: unknown, requestId: string): GatewayHandleResponse {
  const out = errorParts(err, requestId);
  const headers = new Headers();
  for (let i = 0; i < out.headers.length; i += 2) headers.append(out.headers[i]!, out.headers[i + 1]!);
  headers.set('content-length', String(out.body.length));
  return { status: out.status, headers, body: out.body };
}


