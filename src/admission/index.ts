// Admission: the steps between route lookup and dispatch (deadline, breaker, pending cap), composed in one place.
export { AdmittedFunction, admissionPipeline } from './admitted-function.js';
export type { AdmissionOptions, AdmissionTarget } from './admitted-function.js';
export { breakerStep } from './breaker-step.js';
export type { BreakerGate, BreakerStatus, BreakerTicket, CallOutcome, OpenBreakerStatus } from './breaker-gate.js';
export { createBreakerGate, PartitionedBreakers } from './breaker/index.js';
export type { BreakerGateOptions } from './breaker/index.js';
export { deadlineStep } from './deadline-step.js';
export { checkPending, pendingCapStep } from './pending-cap-step.js';
export type { HeldRequests } from './pending-cap-step.js';
export { compose } from './request-handler.js';
export type { AdmissionStep, RequestHandler } from './request-handler.js';
