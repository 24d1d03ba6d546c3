// Function log lines sent on as OpenTelemetry log records: OTLP over HTTP with a JSON body, to a
// collector's /v1/logs. A sink of the bounded log forwarder, so a slow collector never slows a request.
import type { LogLine } from './function-logs.js';
import type { LogSink } from './log-forwarder.js';
import { otlpEndpoint, otlpSignalHeaders, type OtlpEnvironment } from './otlp-endpoint.js';

/** Options for {@link otlpLogSink}. */
export interface OtlpLogSinkOptions {
  /** The logs endpoint, e.g. `http://collector:4318/v1/logs`. */
  url: string;
  /** `service.name` of the resource. @default 'lamplighter' */
  serviceName?: string;
  /** Added as the resource's `service.instance.id` (the node's name). @default undefined */
  node?: string;
  /** Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`). @default {} */
  headers?: Record<string, string>;
  /** Longest wait for the collector's answer, in ms. @default 10_000 */
  timeoutMs?: number;
}

/** Severity numbers of the OpenTelemetry log data model: stdout INFO, stderr WARN, platform notes INFO2. */
const SEVERITY: Readonly<Record<LogLine['stream'], { number: number; text: string }>> = {
  stdout: { number: 9, text: 'INFO' },
  stderr: { number: 13, text: 'WARN' },
  platform: { number: 10, text: 'INFO2' },
};

const str = (key: string, value: string): { key: string; value: { stringValue: string } } => ({ key, value: { stringValue: value } });

/** The OTLP/JSON body for a batch of lines. */
export function otlpLogsBody(lines: readonly LogLine[], options: Pick<OtlpLogSinkOptions, 'serviceName' | 'node'> = {}): unknown {
  const resource = [str('service.name', options.serviceName ?? 'lamplighter')];
  if (options.node !== undefined) resource.push(str('service.instance.id', options.node));
  const observed = `${BigInt(Date.now()) * 1_000_000n}`;
  return {
    resourceLogs: [
      {
        resource: { attributes: resource },
        scopeLogs: [
          {
            scope: { name: 'lamplighter.function-logs' },
            logRecords: lines.map((line) => ({
              timeUnixNano: `${BigInt(line.time) * 1_000_000n}`,
              observedTimeUnixNano: observed,
              severityNumber: SEVERITY[line.stream].number,
              severityText: SEVERITY[line.stream].text,
              body: { stringValue: line.text },
              attributes: [str('faas.name', line.function), str('log.iostream', line.stream)],
            })),
          },
        ],
      },
    ],
  };
}

/** A sink posting each batch to an OTLP/HTTP logs endpoint; a non-2xx answer or a timeout rejects (the batch is dropped and counted). */
export function otlpLogSink(options: OtlpLogSinkOptions): LogSink {
  const timeoutMs = options.timeoutMs ?? 10_000;
  // Closing cuts a post still waiting for the collector, so a stalled one cannot hold the node's exit.
  const closing = new AbortController();
  return {
    name: 'otlp',
    async send(lines) {
      const res = await fetch(options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...options.headers },
        body: JSON.stringify(otlpLogsBody(lines, options)),
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), closing.signal]),
      });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`the collector at ${options.url} answered ${res.status}`);
    },
    close() {
      closing.abort();
      return Promise.resolve();
    },
  };
}

/**
 * The logs endpoint, by the rule traces follow ({@link otlpEndpoint}): `base` (the
 * `--otlp-endpoint` flag) plus `/v1/logs` wins; else OTEL_EXPORTER_OTLP_LOGS_ENDPOINT as given,
 * else OTEL_EXPORTER_OTLP_ENDPOINT plus `/v1/logs`; none when OTEL_LOGS_EXPORTER is `none`,
 * OTEL_SDK_DISABLED is `true` or nothing is set.
 */
export function otlpLogsEndpoint(base: string | undefined, env: OtlpEnvironment = process.env): string | undefined {
  return otlpEndpoint('logs', { flag: base, env });
}

/** The logs' extra request headers: OTEL_EXPORTER_OTLP_HEADERS, with OTEL_EXPORTER_OTLP_LOGS_HEADERS over it. */
export function otlpHeaders(env: OtlpEnvironment = process.env): Record<string, string> {
  return otlpSignalHeaders('logs', env);
}
