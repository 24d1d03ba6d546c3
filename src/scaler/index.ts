// The scaler: demand per function and the policy that turns it into an instance count.
export { DemandTracker } from './demand-tracker.js';
export type { DemandTrackerOptions } from './demand-tracker.js';
export { decideScale } from './scale-policy.js';
export type { ScaleDecision } from './scale-policy.js';
