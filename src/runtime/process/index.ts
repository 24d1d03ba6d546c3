// The process runtime: any program serving HTTP on $PORT, supervised and proxied as an Instance.
export { createProcessFactory, ProcessFactory, DEFAULT_INHERITED_ENV } from './process-factory.js';
export type { ProcessFactoryOptions } from './process-factory.js';
export type { ProcessInstance } from './process-instance.js';
export type { FunctionFailure, RestartPolicyOptions } from './restart-policy.js';
export { systemClock } from './clock.js';
export type { Clock, ClockTimer } from './clock.js';
export { installExitHook, killAllChildGroups, liveChildGroups } from './child-registry.js';
export type { ExitHookOptions } from './child-registry.js';
export { HOP_BY_HOP_HEADERS } from './http-proxy.js';
export {
  processSpawnChannel,
  processReadyChannel,
  processExitChannel,
  processCrashLoopChannel,
} from './diagnostics.js';
