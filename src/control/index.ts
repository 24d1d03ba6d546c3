// Control plane: the node (Platform) and its admin API.
export { Platform } from './platform.js';
export type { ConfigControl, ConfigReport, GatewayTlsSettings, PlatformOptions } from './platform.js';
export type { DeployRequest, DeployResult } from './deployments.js';
export type { AppStatus, FunctionStatus } from './app-status.js';
export type { RestoreNote } from './restore-plan.js';
export type { FunctionInspection, NodeInspection } from './node-inspection.js';
export { MAX_PROFILE_SECONDS } from './node-profiler.js';
export { startAdminApi, MAX_BLOB_BYTES, ADMIN_API_HEADER } from './admin-api.js';
export { buildFactory } from './runtimes.js';
export type { RuntimeContext } from './runtimes.js';
