// Observability: metrics, logs and diagnostics channels, used by every other subsystem.
export { Metrics } from './metrics.js';
export type { MetricsSource, MetricsOptions, SandboxFigures, ForwardOutcome, DiscoveryEventKind, BreakerState } from './metrics.js';
export { FunctionLogs, FunctionLogDefaults } from './function-logs.js';
export type { LogLine, FunctionLogsOptions, FunctionLogEvents } from './function-logs.js';
export type { LogReadOptions, LogReadResult } from './log-file-reader.js';
export { natsLogSink } from './log-forwarder.js';
export type { LogSink, LogPublisher, NatsLogSinkOptions, LogForwarderOptions } from './log-forwarder.js';
export { nodeLogFs } from './log-fs.js';
export type { LogFs, LogFileHandle } from './log-fs.js';
export { createLogger } from './logger.js';
export type { Logger, LoggerOptions, LogFormat } from './logger.js';
export { requestChannel, instanceStartChannel, instanceStopChannel, deployStepChannel } from './diagnostics.js';
export type { RequestEvent, InstanceEvent, DeployStepEvent } from './diagnostics.js';
export { otlpHeaders, otlpLogSink, otlpLogsEndpoint } from './otlp-log-sink.js';
export type { OtlpLogSinkOptions } from './otlp-log-sink.js';
export { otlpEndpoint } from './otlp-endpoint.js';
export type { OtlpEndpointOptions, OtlpEnvironment, OtlpSignal } from './otlp-endpoint.js';
