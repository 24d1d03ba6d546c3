// Forwards requests and upgrades from this node to a peer node's gateway over HTTP/1.1, on
// keep-alive connections kept per peer; bodies stream both ways.
//
// Built on the process runtime's proxy (UpstreamPool, proxyRequest, pipeUpgrade) rather than on
// node:http's Agent or undici's Pool: of the three it added the least to a hop's p50 in
// bench/cluster-forward.ts (about 85 µs against 100 and 90 on loopback), and it already streams,
// relays upgrades and resends an idempotent request once when a kept-alive connection turns out
// to be closed.
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import type { InvocationRequest, InvocationResponse } from '../instance/index.js';
import { pipeUpgrade, proxyRequest, UpstreamPool } from '../runtime/process/index.js';
import { forwardChannel, type ForwardEvent, type ForwardOutcome } from './forward-diagnostics.js';
import { forwardedBy } from './forward-headers.js';
import { ForwardedRequest } from './forwarded-request.js';
import { parsePeerAddress } from './peer-address.js';
import { isPeerUnreachable, toForwardError, type ForwardContext } from './peer-errors.js';

/** Time a connection to a peer may take to open before the peer counts as unreachable. */
export const DEFAULT_PEER_CONNECT_TIMEOUT_MS = 1_000;
/** Connections kept open to one peer at most; requests beyond it wait for one to be free. */
export const DEFAULT_MAX_SOCKETS_PER_PEER = 256;
/**
 * Time an idle connection to a peer is kept. Well under the peer gateway's own keep-alive
 * (65 s), so the peer almost never closes one just as a request goes out on it.
 */
export const DEFAULT_PEER_IDLE_TIMEOUT_MS = 4_000;

/** Options for {@link PeerForwarder}. */
export interface PeerForwarderOptions {
  /** This node's name, sent in the hop header. */
  node: string;
  /**
   * Time to open a connection to a peer. An idempotent request whose first connection fails
   * before any answer is sent once more on a new one, so it may wait twice this long.
   * @default DEFAULT_PEER_CONNECT_TIMEOUT_MS
   */
  connectTimeoutMs?: number;
  /** Requests sent to one peer at once, each on its own connection; more wait in order. @default DEFAULT_MAX_SOCKETS_PER_PEER */
  maxSocketsPerPeer?: number;
  /** Time an idle connection is kept open. @default DEFAULT_PEER_IDLE_TIMEOUT_MS */
  idleTimeoutMs?: number;
}

/** Per-call options of {@link PeerForwarder.forward} and {@link PeerForwarder.upgrade}. */
export interface ForwardOptions {
  /** The peer's node name, for error messages. @default undefined (the address alone is named) */
  peer?: string;
}

/** A request waiting for one of a peer's connections to be free. */
interface Waiter {
  start(): void;
}

/** What this node holds for one peer: its connections and the requests waiting for one. */
class PeerLink {
  readonly pool: UpstreamPool;
  inFlight = 0;
  readonly waiting: Waiter[] = [];

  constructor(pool: UpstreamPool) {
    this.pool = pool;
  }
}

/**
 * Sends requests that this node will not serve itself to the node that will. A forwarded request
 * keeps its method, path and query, Host and end-to-end headers; it gains the hop header and
 * `x-forwarded-for`/`-host`/`-proto` as any proxy hop adds them. Failures are one of two kinds,
 * told apart with `isPeerUnreachable`: the peer could not be reached and has seen nothing of the
 * request (serve it elsewhere), or it failed after the request went out (a 502 for the user).
 */
export class PeerForwarder {
  readonly #node: string;
  readonly #connectTimeoutMs: number;
  readonly #maxSockets: number;
  readonly #idleTimeoutMs: number;
  readonly #links = new Map<string, PeerLink>();
  #closed = false;

  constructor(options: PeerForwarderOptions) {
    this.#node = options.node;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_PEER_CONNECT_TIMEOUT_MS;
    this.#maxSockets = Math.max(1, options.maxSocketsPerPeer ?? DEFAULT_MAX_SOCKETS_PER_PEER);
    this.#idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_PEER_IDLE_TIMEOUT_MS;
  }

  /**
   * Forwards `request` to the peer whose gateway listens on `address` (`host:port`) and resolves
   * with its answer as soon as the head has arrived; the body streams on. Abandoning the request
   * (its signal or abort hook) closes the connection to the peer. Rejects with a
   * PeerUnreachableError when the peer could not be reached, otherwise with a LamplighterError
   * naming the peer (a 502, or the request's own timeout).
   */
  forward(address: string, request: InvocationRequest, options: ForwardOptions = {}): Promise<InvocationResponse> {
    const context = forwardContext(address, request, false, options);
    let link: PeerLink;
    try {
      this.#check(request);
      link = this.#link(address);
    } catch (err) {
      report(context, 'refused', undefined);
      return Promise.reject(err);
    }
    const forwarded = new ForwardedRequest(request, this.#node);
    const answer = link.inFlight < this.#maxSockets ? this.#send(link, forwarded, context) : this.#wait(link, forwarded, context);
    return answer.then(
      (response) => {
        report(context, 'answered', response.status);
        return response;
      },
      (err: unknown) => {
        report(context, outcomeOf(err), undefined);
        throw err;
      },
    );
  }

  /**
   * Forwards an HTTP upgrade (a WebSocket handshake) to the peer at `address`: sends the head
   * with the hop header and relays the peer's answer to `socket`. After a 101 the two connections
   * are piped both ways until either closes; after any other status both end once it is relayed.
   * Resolves with that status. Rejects as {@link forward} does, leaving `socket` untouched for
   * the caller to answer. Each upgrade has a connection of its own, not counted in
   * `maxSocketsPerPeer`.
   */
  async upgrade(address: string, request: InvocationRequest, socket: Duplex, head: Buffer, options: ForwardOptions = {}): Promise<number> {
    const context = forwardContext(address, request, true, options);
    let endpoint: { host: string; port: number };
    try {
      this.#check(request);
      endpoint = parsePeerAddress(address);
    } catch (err) {
      report(context, 'refused', undefined);
      throw err;
    }
    try {
      const answer = await pipeUpgrade(
        { request: new ForwardedRequest(request, this.#node), socket, head },
        { ...endpoint, label: context.label, connectTimeoutMs: this.#connectTimeoutMs },
      );
      report(context, 'answered', answer.status);
      return answer.status;
    } catch (err) {
      const failure = toForwardError(err, context, request.aborted ?? request.signal.aborted);
      report(context, outcomeOf(failure), undefined);
      throw failure;
    }
  }

  /**
   * Takes no new requests and closes every idle connection; a peer's connections still in use
   * close as soon as their exchanges end. Upgraded connections are left to their ends.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const [address, link] of this.#links) {
      if (link.inFlight === 0) {
        link.pool.destroy();
        this.#links.delete(address);
      }
    }
  }

  /** Connections open to the peer at `address` now, idle or busy. */
  connections(address: string): number {
    return this.#links.get(address)?.pool.connections ?? 0;
  }

  #check(request: InvocationRequest): void {
    if (this.#closed) {
      throw new LamplighterError(ErrorCodes.SHUTTING_DOWN, `Node '${this.#node}' is shutting down and forwards no more requests (request ${request.id})`);
    }
    const hop = forwardedBy(request);
    if (hop !== undefined) {
      throw new LamplighterError(
        ErrorCodes.INTERNAL,
        `Request ${request.id} was forwarded here by node '${hop}' and must be served on this node, not forwarded again`,
      );
    }
  }

  #link(address: string): PeerLink {
    let link = this.#links.get(address);
    if (link === undefined) {
      const { host, port } = parsePeerAddress(address);
      link = new PeerLink(new UpstreamPool({ host, port, connectTimeoutMs: this.#connectTimeoutMs, idleTimeoutMs: this.#idleTimeoutMs }));
      this.#links.set(address, link);
    }
    return link;
  }

  #send(link: PeerLink, request: ForwardedRequest, context: ForwardContext): Promise<InvocationResponse> {
    link.inFlight += 1;
    return proxyRequest(link.pool, request, {
      label: context.label,
      target: context.address,
      onSettled: () => this.#settled(link, context.address),
      // Traced: the hop is a client span, and the peer's server span becomes its child.
      span: { name: 'forward to peer', runtime: 'peer' },
    }).then(undefined, (err: unknown) => {
      throw toForwardError(err, context, request.aborted);
    });
  }

  // Waits, in order, for one of the peer's connections to be free; a request abandoned meanwhile leaves the line.
  #wait(link: PeerLink, request: ForwardedRequest, context: ForwardContext): Promise<InvocationResponse> {
    return new Promise<InvocationResponse>((resolve, reject) => {
      const waiter: Waiter = {
        start: () => {
          removeAbort();
          this.#send(link, request, context).then(resolve, reject);
        },
      };
      const removeAbort = request.onAbort(() => {
        const i = link.waiting.indexOf(waiter);
        if (i < 0) return;
        link.waiting.splice(i, 1);
        reject(new LamplighterError(ErrorCodes.TIMEOUT, `Request ${context.requestId} was abandoned while it waited for a connection to ${context.label}`));
      });
      link.waiting.push(waiter);
    });
  }

  #settled(link: PeerLink, address: string): void {
    link.inFlight -= 1;
    const next = link.waiting.shift();
    if (next) {
      // Not now: the pool settles an exchange from inside its read of the answer, and a request
      // started there would take over the connection (and its parser) before that read is done.
      link.inFlight += 1;
      queueMicrotask(() => {
        link.inFlight -= 1;
        next.start();
      });
      return;
    }
    if (this.#closed && link.inFlight === 0) {
      link.pool.destroy();
      if (this.#links.get(address) === link) this.#links.delete(address);
    }
  }
}

function forwardContext(address: string, request: InvocationRequest, upgrade: boolean, options: ForwardOptions): ForwardContext {
  const label = options.peer === undefined ? `the node at ${address}` : `node '${options.peer}' (${address})`;
  return { label, address, peer: options.peer, requestId: request.id, upgrade, startedAt: performance.now() };
}

function outcomeOf(err: unknown): ForwardOutcome {
  if (isPeerUnreachable(err)) return 'unreachable';
  return err instanceof LamplighterError && err.code === ErrorCodes.TIMEOUT ? 'abandoned' : 'failed';
}

function report(context: ForwardContext, outcome: ForwardOutcome, status: number | undefined): void {
  if (!forwardChannel.hasSubscribers) return;
  const event: ForwardEvent = {
    peer: context.address,
    node: context.peer,
    kind: context.upgrade ? 'upgrade' : 'request',
    outcome,
    status,
    durationMs: performance.now() - context.startedAt,
  };
  forwardChannel.publish(event);
}
