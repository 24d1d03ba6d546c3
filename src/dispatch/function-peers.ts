// What a function's dispatcher knows of the same function on the other nodes of a cluster.
import type { Duplex } from 'node:stream';
import type { InvocationRequest, InvocationResponse } from '../instance/index.js';

/** A node a request can be forwarded to. */
export interface PeerChoice {
  readonly node: string;
  /** `host:port` of its gateway. */
  readonly address: string;
}

/** A response a peer node served, and what it said of it. */
export interface ForwardedResponse {
  response: InvocationResponse;
  /** Whether the request waited for an instance to light on the peer. */
  coldStart: boolean;
  /** The node that served it. */
  node: string;
}

/**
 * One function's view of its instances on other nodes, and the way to reach them. Answered from
 * local memory: nothing here waits on the network except `forward` and `upgrade`.
 */
export interface FunctionPeers {
  /** A node whose instances have room now (the most room first), or undefined. */
  withRoom(): PeerChoice | undefined;
  /** A node with instances, busy or not (the least loaded), for when this node may light none. */
  withInstances(): PeerChoice | undefined;
  /** Instances of the function lit or lighting on the other healthy nodes. */
  remoteInstances(): number;
  /**
   * Whether this node is the one to put out instances while the cluster holds more than
   * `scale.max` (so that two nodes never both shrink for the same excess).
   */
  yieldsExcess(): boolean;
  /** Forwards a request; a rejection that {@link isUnreachable} accepts means nothing was sent. */
  forward(peer: PeerChoice, request: InvocationRequest): Promise<ForwardedResponse>;
  /** Forwards an HTTP upgrade; resolves with the status the peer answered. */
  upgrade(peer: PeerChoice, request: InvocationRequest, socket: Duplex, head: Buffer): Promise<number>;
  /** True for a forward that failed before anything was sent: the request can be served elsewhere. */
  isUnreachable(err: unknown): boolean;
  /** The local instances changed (lit, put out, busier or freer); others hear of it soon, coalesced. */
  changed(): void;
  /** This node stops offering the function (its group stopped). */
  close(): void;
}
