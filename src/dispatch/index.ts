// The dispatcher: per-function instance groups, held requests, and lighting on demand.
export { FunctionGroup } from './function-group.js';
export type { DispatchResult, FunctionGroupOptions } from './function-group.js';
