// The shape of the admission pipeline: a handler serves a routed request, a step wraps a handler.
import type { DispatchResult, RoutedRequest } from '../instance/index.js';

/** Serves one routed request: the response, whether it waited for a cold start, and the node. */
export type RequestHandler = (request: RoutedRequest) => Promise<DispatchResult>;

/** One admission step: given the handler after it, the handler that runs it first. */
export type AdmissionStep = (next: RequestHandler) => RequestHandler;

/**
 * Composes steps around `last`, the first step outermost: `compose([a, b], d)` runs a, then b,
 * then d. Done once per function revision, never per request.
 */
export function compose(steps: readonly AdmissionStep[], last: RequestHandler): RequestHandler {
  let handler = last;
  for (let i = steps.length - 1; i >= 0; i--) handler = steps[i]!(handler);
  return handler;
}
