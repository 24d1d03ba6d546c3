// What the gateway routes a request to, and the request it hands over: shared by gateway, admission and dispatch.
import type { Duplex } from 'node:stream';
import type { LamplighterError } from '../errors/index.js';
import type { FunctionSpec } from '../manifest/index.js';
import type { InvocationRequest, InvocationResponse } from './index.js';

/** A response and whether the request waited for an instance to light. */
export interface DispatchResult {
  response: InvocationResponse;
  coldStart: boolean;
  /** The node that served it, when another node did. */
  node?: string;
}

/**
 * A request the gateway routed: one it can abandon. The admission steps abort it when its
 * deadline passes, the gateway when the client goes away.
 */
export interface RoutedRequest extends InvocationRequest {
  /** Abandons the request; `reason` says why when the platform gave up on it (LL_TIMEOUT). */
  abort(reason?: LamplighterError): void;
  /** Why the platform abandoned the request; undefined while it runs or when the client left. */
  readonly abortReason: LamplighterError | undefined;
  /** Calls `listener` once when the request is abandoned; returns its remover. */
  onAbort(listener: () => void): () => void;
}

/**
 * What a route leads to: something that serves requests for one function. The dispatcher is one
 * (requests go straight to instances); an admitted function wraps one in the admission steps.
 */
export interface GatewayTarget {
  readonly spec: FunctionSpec;
  /** Serves a request; `node` names the node that served it when another did. */
  dispatch(request: RoutedRequest): Promise<DispatchResult>;
  /** Hands over an upgrade; resolves with whether it waited for a cold start and the status the function answered. */
  upgrade(request: InvocationRequest, socket: Duplex, head: Buffer): Promise<{ coldStart: boolean; status: number }>;
}
