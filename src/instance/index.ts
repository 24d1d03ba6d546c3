// The Instance interface: what every runtime (WAGI sandbox, component, process) implements.
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex, Readable } from 'node:stream';

export { readBodyLimited } from './read-body.js';
export { hasRequestBody } from './has-body.js';
export { isAborted, listenForAbort } from './abort-listener.js';
export { destroyResponseBody } from './response-body.js';
export type { DispatchResult, GatewayTarget, RoutedRequest } from './gateway-target.js';

/** Where a request matched: the route pattern and the split of its path. */
export interface MatchedRoute {
  /** The route as written in the manifest, e.g. `/hello/...`. */
  readonly pattern: string;
  /** The path prefix the route matched, e.g. `/hello` (CGI `SCRIPT_NAME`). */
  readonly scriptName: string;
  /** The rest of the path after the prefix, e.g. `/world` (CGI `PATH_INFO`). */
  readonly pathInfo: string;
  /** Named parameters the route bound (`/users/:id` → `{ id: '7' }`), decoded; absent when it has none. */
  readonly params?: Readonly<Record<string, string>>;
  /** The function asked for the path without the matched prefix (`strip_prefix`). */
  readonly stripPrefix?: boolean;
}

/** One HTTP request handed to an instance; the body is still streaming. */
export interface InvocationRequest {
  /** Request id, echoed in `x-request-id` and in logs. */
  readonly id: string;
  readonly method: string;
  /** Path and query exactly as the client sent them. */
  readonly url: string;
  /** The target as the client sent it, when the route stripped its prefix from `url`; peers are sent this one. */
  readonly originalUrl?: string;
  /** Lower-cased header names, joined by node:http's rules (see src/http1's parser). */
  readonly headers: IncomingHttpHeaders;
  /** The request body; empty for requests without one. */
  readonly body: Readable;
  readonly remoteAddress: string;
  /** Host name the client asked for, without port. */
  readonly host: string;
  /** Port the gateway received the request on. */
  readonly serverPort: number;
  /** `https` when the client reached the gateway over TLS. @default 'http' */
  readonly scheme?: 'http' | 'https';
  readonly route: MatchedRoute;
  /** Aborted when the client goes away or the request's deadline passes. */
  readonly signal: AbortSignal;
  /** The node that forwarded this request here, when one did: it is served here, never sent on. */
  readonly forwardedBy?: string;
  /** When the request must be answered by, on the `performance.now()` clock; none when absent. */
  readonly deadline?: number;
  /** Optional: true once the request is abandoned; read without creating `signal`. */
  readonly aborted?: boolean;
  /**
   * Optional, and cheaper than `signal` on a hot path: calls `listener` once when the request is
   * abandoned (the client left or the deadline passed); returns a function that removes it.
   */
  onAbort?(listener: () => void): () => void;
}

/**
 * Headers that describe one connection, not the message: no hop (gateway, proxy, host of a
 * component) passes them on, in either direction. Lower-case names.
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Set by a node that forwards a request to another (its value: the forwarding node's name); the
 * node that receives it serves it and never forwards it again.
 */
export const HOP_HEADER = 'x-lamplighter-hop';

/**
 * Milliseconds left of a forwarded request's deadline, set beside HOP_HEADER: the receiving node
 * counts the time already spent, and never gives the request longer than its own limits.timeout.
 */
export const TIME_LEFT_HEADER = 'x-lamplighter-time-left';

/** The node that served a request, on every response of a cluster node. */
export const NODE_HEADER = 'x-lamplighter-node';

/** Header list as `[name, value]` pairs; repeated names allowed. */
export type HeaderPairs = Array<[string, string]>;

/** What an instance answers; a body may stream. */
export interface InvocationResponse {
  status: number;
  headers: HeaderPairs;
  body: Buffer | Readable | null;
}

/** Lifecycle of an instance. */
export type InstanceState = 'starting' | 'ready' | 'draining' | 'stopped' | 'failed';

/** Why an instance closed: asked to stop, or failed (crashed, never became ready). */
export interface InstanceExit {
  readonly reason: 'stopped' | 'failed';
  /** For failures: what went wrong, fit to show a user. */
  readonly message?: string;
}

/** A lit copy of one function revision, able to serve requests. */
export interface Instance {
  readonly id: string;
  readonly functionName: string;
  readonly state: InstanceState;
  /** Resolves when the instance can take requests; rejects if it never can. */
  readonly ready: Promise<void>;
  /** Resolves once the instance is closed for good, for whatever reason. */
  readonly closed: Promise<InstanceExit>;
  /** Serves one request. Rejects with a LamplighterError for failures a user caused. */
  handle(request: InvocationRequest): Promise<InvocationResponse>;
  /**
   * Optional: serves `request` although the instance is at its capacity, when it can start it the
   * moment a run ends (a component worker whose run has just started holds one request sent
   * ahead); undefined when it cannot now, and the caller holds the request as before. The
   * promise rejects with {@link SentBack} when the run before it went on too long and the request
   * never started: the caller sends it again.
   */
  handleAhead?(request: InvocationRequest): Promise<InvocationResponse> | undefined;
  /**
   * Optional: takes over an HTTP upgrade (WebSocket) the gateway received — `request` is its
   * head, `head` the bytes the client sent after it — and resolves with the status the handler
   * answered (101 when the raw connection is now piped to it). Runtimes without it refuse upgrades.
   */
  upgrade?(request: InvocationRequest, socket: Duplex, head: Buffer): Promise<number>;
  /** Takes no new requests; resolves when in-flight ones have finished (or the drain timeout). */
  drain(): Promise<void>;
  /** Releases everything the instance holds. Idempotent. */
  stop(): Promise<void>;
  /** Optional: what the runtime holds for it now (a process's upstream connections), for `inspect`. */
  figures?(): Readonly<Record<string, number>>;
}

/** A request taken by {@link Instance.handleAhead} and given back unstarted: send it again. */
export class SentBack extends Error {
  constructor(instanceId: string) {
    super(`instance ${instanceId} gave the request back unstarted`);
    this.name = 'SentBack';
  }
}

/** Where a function's own output (stdout/stderr of handlers) goes. */
export type LogSink = (stream: 'stdout' | 'stderr', text: string) => void;

/** Lights instances of one function revision. */
export interface InstanceFactory {
  /** Starts a new instance; it is usable once its `ready` resolves. */
  create(id: string): Instance;
  /**
   * Optional: the most requests one instance serves at once, when the runtime caps it below
   * `limits.concurrency` (a component instance runs at most so many worker threads). The
   * dispatcher sends an instance no more than this, and the scaler counts instances by it.
   */
  readonly capacity?: number;
  /**
   * Optional: false when the node has no room for another instance of this runtime (its threads
   * are spent). The dispatcher then lights none past a function's first and holds requests for
   * the instances there are. @default always room
   */
  roomToLight?(): boolean;
  /** Releases what the factory holds (compiled modules, pools). */
  close(): Promise<void>;
}
