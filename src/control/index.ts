// Control plane: the node (Platform) and its admin API.
export { Platform } from './platform.js';
export type { PlatformOptions, DeployRequest, AppStatus, FunctionStatus } from './platform.js';
export { startAdminApi, MAX_BLOB_BYTES, ADMIN_API_HEADER } from './admin-api.js';
export { buildFactory } from './runtimes.js';
export type { RuntimeContext } from './runtimes.js';
