// How many instances a function should have, from its demand and its [function.scale] settings.
import type { FunctionScale } from '../manifest/index.js';
import type { DemandTracker } from './demand-tracker.js';

/** The inputs and the decision, for logs, metrics and KEDA. */
export interface ScaleDecision {
  desired: number;
  /** Which figure scaled the function. */
  metric: 'concurrency' | 'rate';
  /** The per-instance target of that figure. */
  target: number;
  /** The figure now (time-weighted concurrency, or requests/s). */
  value: number;
  /** True while a request is in the system or one ended less than `idle` ago. */
  active: boolean;
}

/** Computes the desired instance count between `min` and `max`. */
export function decideScale(scale: FunctionScale, demand: DemandTracker, now: number): ScaleDecision {
  const active = demand.active > 0 || now - demand.lastActivity < scale.idleMs;
  let metric: ScaleDecision['metric'];
  let target: number;
  let value: number;
  let needed: number;
  if (scale.rate !== undefined) {
    metric = 'rate';
    target = scale.rate;
    value = demand.rate(now);
    needed = Math.ceil(value / target - 1e-9);
  } else {
    metric = 'concurrency';
    target = scale.target ?? 1;
    // The window average keeps instances through short lulls; the recent figure and the
    // requests in the system now make growth react within a bucket.
    value = demand.concurrency(now);
    const recent = Math.max(demand.recentConcurrency(now), demand.active);
    needed = Math.ceil(Math.max(value, recent) / target - 1e-9);
  }
  // A function keeps one instance until it has been idle for `idle`: a trickle keeps it lit.
  // Once idle, it goes to `min` whatever the window still remembers: the window only sizes an
  // active function, so an `idle` shorter than the window still puts the function out.
  needed = active ? Math.max(needed, 1) : 0;
  const desired = Math.min(scale.max, Math.max(scale.min, needed));
  return { desired, metric, target, value, active };
}
