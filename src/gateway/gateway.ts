// The gateway: one HTTP/1.1 server (src/http1); routes each request, dispatches it, streams the answer back.
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCodes, LamplighterError, toLamplighterError } from '../errors/index.js';
import { closingResponse, Http1Server, type ServerRequest, type ServerResponse } from '../http1/index.js';
import { HOP_BY_HOP_HEADERS, HOP_HEADER, NODE_HEADER, type InvocationRequest, type InvocationResponse } from '../instance/index.js';
import type { FunctionSpec } from '../manifest/index.js';
import { requestChannel, type Logger, type Metrics } from '../observability/index.js';
import { errorResponse } from './error-response.js';
import { GatewayRequest } from './gateway-request.js';
import { nextRequestId } from './request-id.js';
import { RouteTable } from './route-table.js';

/** What a route leads to: something that serves requests for one function. */
export interface GatewayTarget {
  readonly spec: FunctionSpec;
  /** Serves a request; `node` names the node that served it when another did. */
  dispatch(request: InvocationRequest): Promise<{ response: InvocationResponse; coldStart: boolean; node?: string }>;
  /** Hands over an upgrade; resolves with whether it waited for a cold start and the status the function answered. */
  upgrade(request: InvocationRequest, socket: Duplex, head: Buffer): Promise<{ coldStart: boolean; status: number }>;
}

/** Options for {@link Gateway}. */
export interface GatewayOptions {
  metrics: Metrics;
  logger: Logger;
  /** In a cluster, this node's name: every response says which node served it. @default undefined (embedded) */
  nodeName?: string;
}


/** The HTTP front door: route lookup, admission through the dispatcher, streamed responses. */
export class Gateway {
  private routes: RouteTable<GatewayTarget> = new RouteTable([]);
  private server: Http1Server | undefined;
  private port = 0;

  constructor(private readonly options: GatewayOptions) {}

  /** Swaps in a new route table; requests already routed finish on the old targets. */
  setRoutes(table: RouteTable<GatewayTarget>): void {
    this.routes = table;
  }

  /** Starts listening; resolves with the bound port. */
  async listen(port: number, host: string): Promise<number> {
    const server = new Http1Server({
      request: (req, res) => this.onRequest(req, res),
      upgrade: (req, socket, head) => this.onUpgrade(req, socket, head),
      // Requests the server cannot read get the same JSON error, with a request id, as the rest.
      refusal: (status, message) => {
        this.options.metrics.recordUnrouted(status);
        return errorParts(new LamplighterError(ErrorCodes.BAD_REQUEST, `Bad request: ${message}`), nextRequestId());
      },
    });
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
    const { url, path, host } = splitTarget(req);
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
    if (!match) return refuse(new LamplighterError(ErrorCodes.ROUTE_NOT_FOUND, `No function serves ${host || '(no host)'}${path}`));
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
    const invocation: InvocationRequest = {
      id: requestId,
      method: req.method,
      url,
      headers: req.headers,
      body: req.body,
      remoteAddress: req.remoteAddress,
      host,
      serverPort: this.port,
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
    const { url, path, host } = splitTarget(req);
    const requestId = forwardedRequestId(req) ?? nextRequestId();
    const match = this.routes.match(host, path);
    if (!match) {
      this.options.metrics.recordUnrouted(404);
      this.sendError(res, new LamplighterError(ErrorCodes.ROUTE_NOT_FOUND, `No function serves ${host || '(no host)'}${path}`), requestId);
      return;
    }
    const target = match.target;
    const fn = target.spec.name;
    const deadline = start + target.spec.limits.timeoutMs;
    const invocation = new GatewayRequest(requestId, req, url, host, this.port, match.route, deadline);
    let answered = false;
    const timer = setTimeout(() => {
      invocation.abort();
      if (answered) return;
      answered = true;
      this.finish(fn, 504, start, false, requestId);
      this.sendError(res, new LamplighterError(ErrorCodes.TIMEOUT, `Function '${fn}' did not answer within ${target.spec.limits.timeoutMs} ms (limits.timeout)`), requestId);
    }, target.spec.limits.timeoutMs);
    res.onClose = (finished) => {
      clearTimeout(timer);
      if (!finished) invocation.abort();
    };
    target.dispatch(invocation).then(
      ({ response, coldStart, node }) => {
        if (answered) {
          destroyBody(response);
          return;
        }
        answered = true;
        clearTimeout(timer);
        try {
          this.sendResponse(res, response, requestId, coldStart, node);
        } catch (err) {
          // A response the server refuses (a bad header or status from a handler) is the
          // handler's fault, and must never escape as an unhandled rejection.
          destroyBody(response);
          const bad = new LamplighterError(ErrorCodes.BAD_HANDLER_RESPONSE, `Function '${fn}' answered with a response that cannot be sent: ${(err as Error).message}`);
          this.finish(fn, bad.status, start, coldStart, requestId);
          this.sendError(res, bad, requestId);
          return;
        }
        this.finish(fn, response.status, start, coldStart, requestId);
      },
      (err: unknown) => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        const e = toLamplighterError(err);
        if (e.code === ErrorCodes.INTERNAL) this.options.logger.error({ err: e.cause ?? e, function: fn, requestId }, 'request failed');
        this.finish(fn, e.status, start, false, requestId);
        this.sendError(res, e, requestId);
      },
    );
  }

  private finish(fn: string, status: number, start: number, coldStart: boolean, requestId: string): void {
    const seconds = (performance.now() - start) / 1000;
    this.options.metrics.requestSeries(fn).record(status, seconds);
    if (requestChannel.hasSubscribers) requestChannel.publish({ function: fn, status, durationMs: seconds * 1000, coldStart, requestId });
  }

  private sendResponse(res: ServerResponse, response: InvocationResponse, requestId: string, coldStart: boolean, node: string | undefined): void {
    const body = response.body;
    const flat: string[] = [];
    let length: string | undefined;
    for (const [name, value] of response.headers) {
      const lower = name.toLowerCase();
      if (lower === 'content-length') {
        length = value;
        continue;
      }
      if (HOP_BY_HOP_HEADERS.has(lower)) continue;
      flat.push(name, value);
    }
    flat.push('x-request-id', requestId, 'x-lamplighter-cold-start', coldStart ? 'true' : 'false');
    const self = this.options.nodeName;
    if (self !== undefined) flat.push(NODE_HEADER, node ?? self);
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

/** Ids as nodes make them; anything else a client sends is not taken. */
const REQUEST_ID = /^[0-9a-f-]{1,64}$/;

/** The id another node gave a request it forwarded here, so that both nodes log the same id. */
function forwardedRequestId(req: ServerRequest): string | undefined {
  const headers = req.headers;
  if (headers[HOP_HEADER] === undefined) return undefined;
  const id = headers['x-request-id'];
  return typeof id === 'string' && REQUEST_ID.test(id) ? id : undefined;
}

/** The request target split into path and query, and the Host header without its port. */
function splitTarget(req: ServerRequest): { url: string; path: string; host: string } {
  const url = req.url;
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const hostHeader = req.headers.host ?? '';
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
  headers.push('x-lamplighter-cold-start', coldStart ? 'true' : 'false');
  return { status: out.status, headers, body: out.body };
}

function destroyBody(response: InvocationResponse): void {
  const body = response.body;
  if (body && !Buffer.isBuffer(body)) body.destroy();
}
