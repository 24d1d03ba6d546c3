// Observability: metrics, logs and diagnostics channels, used by every other subsystem.
export { Metrics } from './metrics.js';
export type { MetricsSource, MetricsOptions, SandboxFigures, ForwardOutcome, DiscoveryEventKind, BreakerState } from './metrics.js';
export { FunctionLogs } from './function-logs.js';
export type { LogLine, FunctionLogsOptions } from './function-logs.js';
export { createLogger } from './logger.js';
export type { Logger, LoggerOptions } from './logger.js';
export { requestChannel, instanceStartChannel, instanceStopChannel, deployStepChannel } from './diagnostics.js';
export type { RequestEvent, InstanceEvent, DeployStepEvent } from './diagnostics.js';
