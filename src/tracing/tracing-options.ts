// Where spans go and how many may wait: the options of a node's tracer, and how flags and OTEL_* variables set them.

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
export type TracingEnvironment = Readonly<Record<string, string | undefined>>;

/** `base` with the OTLP traces path appended, as the OTLP exporter spec says for `OTEL_EXPORTER_OTLP_ENDPOINT`. */
function tracesUrl(base: string): string {
  return `${base.endsWith('/') ? base : `${base}/`}v1/traces`;
}

function checkedUrl(url: string, where: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`${where} must be an http:// or https:// URL such as http://localhost:4318, got '${url}'`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new Error(`${where} must be an http:// or https:// URL such as http://localhost:4318, got '${url}'`);
  }
  return url;
}

/**
 * The tracing a node runs with, or undefined (tracing off): `--otlp-endpoint` (a base URL, as
 * `OTEL_EXPORTER_OTLP_ENDPOINT`; `/v1/traces` is appended) wins; then
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is), then `OTEL_EXPORTER_OTLP_ENDPOINT`. The
 * variables are ignored when `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
 * `OTEL_SERVICE_NAME` names the service. Throws on a URL that is not http(s).
 */
export function tracingFromEnvironment(flagEndpoint: string | undefined, env: TracingEnvironment = process.env): TracingOptions | undefined {
  const serviceName = env.OTEL_SERVICE_NAME?.trim() || undefined;
  if (flagEndpoint !== undefined) return { url: tracesUrl(checkedUrl(flagEndpoint, '--otlp-endpoint')), serviceName };
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  if (env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() === 'none') return undefined;
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return { url: checkedUrl(traces, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'), serviceName };
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (base) return { url: tracesUrl(checkedUrl(base, 'OTEL_EXPORTER_OTLP_ENDPOINT')), serviceName };
  return undefined;
}
