// Tracing: OpenTelemetry spans for each request (server, wait for an instance, run, outbound calls), exported over OTLP/HTTP.
export { RequestTracer } from './request-tracer.js';
export type { RequestTracerContext, TracedRequest } from './request-tracer.js';
export { RequestTrace, TraceSpan, TraceAttributes } from './request-trace.js';
export type { RunRuntime, StartCallOptions } from './request-trace.js';
export { REQUEST_TRACE, traceOf } from './trace-key.js';
export type { Traceable } from './trace-key.js';
export { TracingDefaults, tracingFromEnvironment } from './tracing-options.js';
export type { TracingEnvironment, TracingOptions } from './tracing-options.js';
