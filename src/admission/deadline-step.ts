// Admission step: answers LL_TIMEOUT when a request's deadline (limits.timeout) passes, abandoning it.
import { performance } from 'node:perf_hooks';
import { functionTimeout, type LamplighterError } from '../errors/index.js';
import { destroyResponseBody, type DispatchResult } from '../instance/index.js';
import type { FunctionSpec } from '../manifest/index.js';
import type { AdmissionStep } from './request-handler.js';

/**
 * Gives each request until its `deadline` (set by the gateway from `limits.timeout` when it
 * arrived, so time spent before admission counts), or `limits.timeout` from now for a request
 * without one, to get its answer's head. When it passes, the request is aborted first (so the
 * instance lets go of it and any step listening counts it as timed out), then the caller gets
 * LL_TIMEOUT (504) at once, whether or not what runs it has stopped yet. A request whose deadline
 * passed before it got here is not dispatched. An answer that comes later is dropped and its body
 * destroyed.
 */
export function deadlineStep(spec: FunctionSpec): AdmissionStep {
  // Read per request: a limit the manifest leaves unset follows the node's, which a reload changes.
  const timedOut = (): LamplighterError => functionTimeout(spec.name, spec.limits.timeoutMs);
  return (next) => (request) => {
    const left = request.deadline === undefined ? spec.limits.timeoutMs : Math.ceil(request.deadline - performance.now());
    if (left <= 0) {
      const err = timedOut();
      request.abort(err);
      return Promise.reject(err);
    }
    return new Promise<DispatchResult>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        const err = timedOut();
        request.abort(err);
        if (settled) return;
        settled = true;
        reject(err);
      }, left);
      let pending: Promise<DispatchResult>;
      try {
        pending = next(request);
      } catch (err) {
        pending = Promise.reject(err);
      }
      pending.then(
        (result) => {
          clearTimeout(timer);
          if (settled) return destroyResponseBody(result.response);
          settled = true;
          resolve(result);
        },
        (err: unknown) => {
          clearTimeout(timer);
          if (settled) return;
          settled = true;
          reject(err);
        },
      );
    });
  };
}

