// The headers one node adds to a request it forwards to another, and to the answer it serves.
import type { InvocationRequest } from '../instance/index.js';

/**
 * Set on a request one node forwards to another, to the forwarding node's name. A node that
 * receives a request carrying it serves it itself (or holds it) and never forwards it again, so
 * two nodes with stale views of each other's capacity cannot pass a request back and forth.
 */
export const HOP_HEADER = 'x-lamplighter-hop';

/** Set on every answer to the name of the node whose instance served it. */
export const NODE_HEADER = 'x-lamplighter-node';

/**
 * The name of the node that forwarded `request` here, or undefined when it came from a client.
 * A request for which this is defined must not be forwarded again.
 */
export function forwardedBy(request: InvocationRequest): string | undefined {
  const value = request.headers[HOP_HEADER];
  return Array.isArray(value) ? value[0] : value;
}
