// Admission step: refuses a request that would be held past limits.max_pending (503 LL_OVER_CAPACITY).
import { overPendingCap } from '../dispatch/index.js';
import type { InvocationRequest } from '../instance/index.js';
import type { FunctionSpec } from '../manifest/index.js';
import type { AdmissionStep } from './request-handler.js';

/** What the pending cap reads of the dispatcher behind it. */
export interface HeldRequests {
  /** Requests held waiting for an instance now. */
  readonly pendingCount: number;
  /** Whether a request arriving now would be held (no instance, placeholder or node takes it at once). */
  wouldHold(request: InvocationRequest): boolean;
}

/**
 * Refuses a request when `limits.max_pending` requests are held already and this one would be held
 * too; a request that finds room is never refused. Throws the refusal; the gateway answers it.
 * A prediction: the dispatcher refuses the same way when a request it did not foresee holding
 * (its forward reached nothing) would pass the cap.
 */
export function checkPending(spec: FunctionSpec, held: HeldRequests, request: InvocationRequest): void {
  const waiting = held.pendingCount;
  // The count first: below the cap (the common case) the dispatcher is not asked anything more.
  if (waiting < spec.limits.maxPending || !held.wouldHold(request)) return;
  throw overPendingCap(spec, waiting);
}

/** The pending cap as a step: {@link checkPending} before the handler after it. */
export function pendingCapStep(spec: FunctionSpec, held: HeldRequests): AdmissionStep {
  return (next) => (request) => {
    try {
      checkPending(spec, held, request);
    } catch (err) {
      return Promise.reject(err);
    }
    return next(request);
  };
}
