// Where one OTLP signal (traces, logs) is sent, and with which headers, by OpenTelemetry's environment variables.
import { parseKeyPairsIntoRecord } from '@opentelemetry/core';

/** The signals a node sends over OTLP/HTTP. */
export type OtlpSignal = 'traces' | 'logs';

/** The variables read: OTEL_* names. */
export type OtlpEnvironment = Readonly<Record<string, string | undefined>>;

/** Options for {@link otlpEndpoint}. */
export interface OtlpEndpointOptions {
  /** `--otlp-endpoint`: a base URL as OTEL_EXPORTER_OTLP_ENDPOINT, winning over every variable. @default undefined */
  flag?: string;
  /** @default process.env */
  env?: OtlpEnvironment;
}

/**
 * The OTLP/HTTP URL `signal` is POSTed to, or undefined (not sent). The flag wins (a base URL:
 * `/v1/<signal>` is appended). Otherwise, unless OTEL_SDK_DISABLED=true or
 * OTEL_<SIGNAL>_EXPORTER=none: OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT used as it is, else
 * OTEL_EXPORTER_OTLP_ENDPOINT with `/v1/<signal>` appended, as the OTLP exporter spec says.
 * Throws, naming where it came from, on a URL that is not http(s).
 */
export function otlpEndpoint(signal: OtlpSignal, options: OtlpEndpointOptions = {}): string | undefined {
  const env = options.env ?? process.env;
  const path = `v1/${signal}`;
  if (options.flag !== undefined) return appendPath(checkedUrl(options.flag, '--otlp-endpoint'), path);
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  const upper = signal.toUpperCase();
  if (env[`OTEL_${upper}_EXPORTER`]?.trim().toLowerCase() === 'none') return undefined;
  const specific = `OTEL_EXPORTER_OTLP_${upper}_ENDPOINT`;
  const own = env[specific]?.trim();
  if (own) return checkedUrl(own, specific);
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (base) return appendPath(checkedUrl(base, 'OTEL_EXPORTER_OTLP_ENDPOINT'), path);
  return undefined;
}

/**
 * Extra request headers for `signal`: OTEL_EXPORTER_OTLP_HEADERS, with
 * OTEL_EXPORTER_OTLP_<SIGNAL>_HEADERS over it (`key=value,key2=value2`, percent-encoded), read as
 * OpenTelemetry's own exporters read them.
 */
export function otlpSignalHeaders(signal: OtlpSignal, env: OtlpEnvironment = process.env): Record<string, string> {
  return { ...parseKeyPairsIntoRecord(env.OTEL_EXPORTER_OTLP_HEADERS), ...parseKeyPairsIntoRecord(env[`OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_HEADERS`]) };
}

function appendPath(base: string, path: string): string {
  return `${base.endsWith('/') ? base : `${base}/`}${path}`;
}

function checkedUrl(url: string, where: string): string {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (parsed?.protocol !== 'http:' && parsed?.protocol !== 'https:') {
    throw new Error(`${where} must be an http:// or https:// URL such as http://localhost:4318, got '${url}'`);
  }
  return url;
}
