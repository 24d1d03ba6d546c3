// The headers one node adds to a request it forwards to another, and to the answer it serves.
import { HOP_HEADER, NODE_HEADER, type InvocationRequest } from '../instance/index.js';

// The header names live with the request shape, which the gateway reads too.
export { HOP_HEADER, NODE_HEADER };

/**
 * The name of the node that forwarded `request` here, or undefined when it came from a client.
 * A request for which this is defined must not be forwarded again.
 */
export function forwardedBy(request: InvocationRequest): string | undefined {
  const value = request.headers[HOP_HEADER];
  return Array.isArray(value) ? value[0] : value;
}
