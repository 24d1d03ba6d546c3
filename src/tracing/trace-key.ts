// How a request carries its trace from the gateway to the dispatcher and the runtimes.
import type { RequestTrace } from './request-trace.js';

/** The property under which a request carries its {@link RequestTrace}; set by the gateway only when tracing is on. */
export const REQUEST_TRACE: unique symbol = Symbol('lamplighter.requestTrace');

/** A request that may carry a trace. */
export interface Traceable {
  readonly [REQUEST_TRACE]?: RequestTrace | undefined;
}

/**
 * The trace of `request`, or undefined when tracing is off (or the request came another way,
 * such as an upgrade). The one check a runtime makes before any tracing work.
 */
export function traceOf(request: object): RequestTrace | undefined {
  return (request as Traceable)[REQUEST_TRACE];
}
