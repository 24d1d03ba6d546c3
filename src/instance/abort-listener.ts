// Hearing that a request was given up, without making an AbortSignal when the request offers a
// cheaper hook: the gateway's requests do, and a signal with its listeners costs microseconds a
// request on the hot path.
import type { InvocationRequest } from './index.js';

type Abortable = Pick<InvocationRequest, 'signal' | 'aborted' | 'onAbort'>;

/** True once the request is given up (the client left, its deadline passed). */
export function isAborted(request: Abortable): boolean {
  return request.aborted ?? request.signal.aborted;
}

/**
 * Calls `listener` once when the request is given up (on a microtask when it already is);
 * returns what stops listening.
 */
export function listenForAbort(request: Abortable, listener: () => void): () => void {
  if (request.onAbort && request.aborted !== undefined) return request.onAbort(listener);
  const { signal } = request;
  if (signal.aborted) {
    queueMicrotask(listener);
    return () => {};
  }
  signal.addEventListener('abort', listener, { once: true });
  return () => signal.removeEventListener('abort', listener);
}
