// Where spans go and how many may wait: the options of a node's tracer, and how flags and OTEL_* variables set them.
import { otlpEndpoint, type OtlpEnvironment } from '../observability/index.js';

/** Defaults of {@link TracingOptions}. */
export const TracingDefaults = {
  serviceName: 'lamplighter',
  maxQueueSize: 2048,
  maxExportBatchSize: 512,
  scheduledDelayMs: 1000,
  exportTimeoutMs: 5000,
  failureLogIntervalMs: 60_000,
  closeTimeoutMs: 2000,
} as const;

/** How a node exports its spans (OTLP over HTTP, JSON bodies). */
export interface TracingOptions {
  /** The OTLP/HTTP traces URL spans are POSTed to, e.g. `http://collector:4318/v1/traces`. */
  url: string;
  /** `service.name` of the node's spans. @default TracingDefaults.serviceName */
  serviceName?: string;
  /** Spans held for export at most; beyond it new spans are dropped and counted. @default TracingDefaults.maxQueueSize */
  maxQueueSize?: number;
  /** Spans sent in one export request at most. @default TracingDefaults.maxExportBatchSize */
  maxExportBatchSize?: number;
  /** How often waiting spans are sent, in ms (a full batch goes at once). @default TracingDefaults.scheduledDelayMs */
  scheduledDelayMs?: number;
  /** How long one export request may take before it counts as failed, in ms. @default TracingDefaults.exportTimeoutMs */
  exportTimeoutMs?: number;
  /** Export failures and drops are logged at most once per this many ms. @default TracingDefaults.failureLogIntervalMs */
  failureLogIntervalMs?: number;
  /** How long closing the node waits for the last spans to be sent, in ms. @default TracingDefaults.closeTimeoutMs */
  closeTimeoutMs?: number;
}

/** The variables {@link tracingFromEnvironment} reads. */
export type TracingEnvironment = OtlpEnvironment;

/**
 * The tracing a node runs with, or undefined (tracing off): the traces URL by the rule every
 * signal follows ({@link otlpEndpoint}: `--otlp-endpoint` plus `/v1/traces` wins, then
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, then OTEL_EXPORTER_OTLP_ENDPOINT plus
 * `/v1/traces`; off when OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none).
 * `OTEL_SERVICE_NAME` names the service. Throws on a URL that is not http(s).
 */
export function tracingFromEnvironment(flagEndpoint: string | undefined, env: TracingEnvironment = process.env): TracingOptions | undefined {
  const url = otlpEndpoint('traces', { flag: flagEndpoint, env });
  if (url === undefined) return undefined;
  return { url, serviceName: env.OTEL_SERVICE_NAME?.trim() || undefined };
}
