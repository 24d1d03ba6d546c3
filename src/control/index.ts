// Control plane: the node (Platform) and its admin API.
export { Platform } from './platform.js';
export type { PlatformOptions, DeployRequest, DeployResult, AppStatus, FunctionStatus } from './platform.js';
export type { RestoreNote } from './restore-plan.js';
export { startAdminApi, MAX_BLOB_BYTES } from './admin-api.js';
export { buildFactory } from './runtimes.js';
export type { RuntimeContext } from './runtimes.js';
