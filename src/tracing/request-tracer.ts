// A node's tracer: starts each request's server span (honouring a W3C traceparent) and exports spans over OTLP/HTTP.
import type { IncomingHttpHeaders } from 'node:http';
import { ROOT_CONTEXT, SpanKind, type Attributes, type Context, type TextMapGetter, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Counter } from 'prom-client';
import type { Logger, Metrics } from '../observability/index.js';
import { RequestTrace, TraceAttributes } from './request-trace.js';
import { SpanQueue, type SpanDropReason } from './span-queue.js';
import { TracingDefaults, type TracingOptions } from './tracing-options.js';

/** What a node's tracer reports to and names. */
export interface RequestTracerContext {
  metrics: Metrics;
  logger: Logger;
  /** The node's name: the `lamplighter.node` resource attribute. */
  nodeName: string;
  /** Where spans go instead of OTLP/HTTP at `url`; for tests. @default an OTLPTraceExporter */
  exporter?: SpanExporter;
}

/** The parts of an incoming request its server span describes. */
export interface TracedRequest {
  method: string;
  headers: IncomingHttpHeaders;
  /** Host name the client asked for, without port. */
  host: string;
  /** Port the gateway received it on. */
  port: number;
  /** The path, without the query. */
  path: string;
  remoteAddress: string;
  /** @default none: the caller sets it once known */
  requestId?: string;
}

/** Methods the HTTP semantic conventions name; any other is `_OTHER`, with the method kept in `http.request.method_original`. */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

const HEADER_GETTER: TextMapGetter<IncomingHttpHeaders> = {
  get: (carrier, key) => carrier[key],
  keys: (carrier) => Object.keys(carrier),
};

const DROP_REASONS: readonly SpanDropReason[] = ['queue_full', 'export_failed', 'closed'];

/**
 * Traces requests when a node runs with an OTLP endpoint; a node without one has no tracer at all,
 * so the request path pays a single `undefined` check. Spans wait in a bounded {@link SpanQueue}:
 * when it is full they are dropped and counted (`lamplighter_spans_dropped_total`), and export
 * failures are counted and logged at most once per `failureLogIntervalMs`; none of it is ever
 * thrown into a request.
 */
export class RequestTracer {
  readonly #tracer: Tracer;
  readonly #provider: BasicTracerProvider;
  readonly #queue: SpanQueue;
  readonly #propagator = new W3CTraceContextPropagator();
  readonly #logger: Logger;
  readonly #url: string;
  readonly #logIntervalMs: number;
  readonly #closeTimeoutMs: number;
  readonly #dropped: Counter<'reason'>;
  readonly #exportFailures: Counter;
  readonly #exported: Counter;
  /** What happened since the last log line, and when that was. */
  #unlogged = { failures: 0, queueFull: 0, exportFailed: 0, closed: 0, lastError: undefined as string | undefined };
  #lastLogAt = -Infinity;
  #closing: Promise<void> | undefined;

  constructor(options: TracingOptions, context: RequestTracerContext) {
    this.#logger = context.logger;
    this.#url = options.url;
    this.#logIntervalMs = options.failureLogIntervalMs ?? TracingDefaults.failureLogIntervalMs;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? TracingDefaults.closeTimeoutMs;
    const registry = context.metrics.registry;
    const registers = [registry];
    // A node that reloads its tracing makes a new tracer: it counts on in the series already there.
    const existing = <T>(name: string): T | undefined => registry.getSingleMetric(name) as T | undefined;
    this.#dropped =
      existing<Counter<'reason'>>('lamplighter_spans_dropped_total') ??
      new Counter({
        name: 'lamplighter_spans_dropped_total',
        help: 'Spans not exported, by reason (queue_full: the export queue was full; export_failed: the export request carrying them failed; closed: still queued when the node closed)',
        labelNames: ['reason'],
        registers,
      });
    for (const reason of DROP_REASONS) this.#dropped.inc({ reason }, 0);
    this.#exportFailures = existing<Counter>('lamplighter_span_export_failures_total') ?? new Counter({ name: 'lamplighter_span_export_failures_total', help: 'OTLP span export requests that failed or timed out', registers });
    this.#exported = existing<Counter>('lamplighter_spans_exported_total') ?? new Counter({ name: 'lamplighter_spans_exported_total', help: 'Spans the OTLP endpoint accepted', registers });
    const exportTimeoutMs = options.exportTimeoutMs ?? TracingDefaults.exportTimeoutMs;
    const exporter = context.exporter ?? new OTLPTraceExporter({ url: options.url, timeoutMillis: exportTimeoutMs, concurrencyLimit: 2 });
    const maxQueueSize = Math.max(1, options.maxQueueSize ?? TracingDefaults.maxQueueSize);
    this.#queue = new SpanQueue(exporter, {
      maxQueueSize,
      maxExportBatchSize: Math.max(1, Math.min(maxQueueSize, options.maxExportBatchSize ?? TracingDefaults.maxExportBatchSize)),
      scheduledDelayMs: options.scheduledDelayMs ?? TracingDefaults.scheduledDelayMs,
      exportTimeoutMs,
      events: {
        dropped: (count, reason) => this.#onDropped(count, reason),
        exported: (count) => this.#exported.inc(count),
        exportFailed: (count, error) => this.#onExportFailed(count, error),
      },
    });
    // OTEL_RESOURCE_ATTRIBUTES adds to the resource; the service name and node name are Lamplighter's.
    const resource = defaultResource()
      .merge(detectResources({ detectors: [envDetector] }))
      .merge(resourceFromAttributes({ 'service.name': options.serviceName ?? TracingDefaults.serviceName, 'lamplighter.node': context.nodeName }));
    this.#provider = new BasicTracerProvider({ resource, spanProcessors: [this.#queue] });
    this.#tracer = this.#provider.getTracer('lamplighter');
  }

  /** Spans waiting to be exported. */
  get queued(): number {
    return this.#queue.queued;
  }

  /**
   * Starts the server span of a request: the child of the client's `traceparent` (and
   * `tracestate`) when it sent a valid one, else the root of a new trace.
   */
  startRequest(request: TracedRequest): RequestTrace {
    const parent: Context = request.headers.traceparent === undefined ? ROOT_CONTEXT : this.#propagator.extract(ROOT_CONTEXT, request.headers, HEADER_GETTER);
    const method = KNOWN_METHODS.has(request.method) ? request.method : '_OTHER';
    const attributes: Attributes = {
      'http.request.method': method,
      'url.path': request.path,
      'url.scheme': 'http',
      'server.address': request.host,
      'server.port': request.port,
      'client.address': request.remoteAddress,
      'network.protocol.version': '1.1',
    };
    if (request.requestId !== undefined) attributes[TraceAttributes.requestId] = request.requestId;
    if (method === '_OTHER') attributes['http.request.method_original'] = request.method;
    const agent = request.headers['user-agent'];
    if (agent !== undefined) attributes['user_agent.original'] = agent;
    const span = this.#tracer.startSpan(method === '_OTHER' ? 'HTTP' : method, { kind: SpanKind.SERVER, attributes }, parent);
    return new RequestTrace(this.#tracer, span, parent, method === '_OTHER' ? 'HTTP' : method);
  }

  /** Sends every span ended so far; resolves when the queue is empty. */
  flush(): Promise<void> {
    return this.#queue.forceFlush();
  }

  /** Sends what is left (within `closeTimeoutMs`) and stops; spans ended later are dropped. */
  close(): Promise<void> {
    this.#closing ??= this.#queue.shutdown(this.#closeTimeoutMs).then(() => this.#provider.shutdown());
    return this.#closing;
  }

  #onDropped(count: number, reason: SpanDropReason): void {
    this.#dropped.inc({ reason }, count);
    if (reason === 'queue_full') this.#unlogged.queueFull += count;
    else if (reason === 'closed') this.#unlogged.closed += count;
    // Drops at close are said at once: there is no later.
    this.#maybeLog(reason === 'closed');
  }

  #onExportFailed(count: number, error: Error | undefined): void {
    this.#exportFailures.inc();
    this.#dropped.inc({ reason: 'export_failed' }, count);
    this.#unlogged.failures++;
    this.#unlogged.exportFailed += count;
    this.#unlogged.lastError = error?.message;
    this.#maybeLog();
  }

  /** One warning per interval at most (or now, when `now`), summing what happened since the last. */
  #maybeLog(now = false): void {
    const at = Date.now();
    if (!now && at - this.#lastLogAt < this.#logIntervalMs) return;
    this.#lastLogAt = at;
    const u = this.#unlogged;
    this.#unlogged = { failures: 0, queueFull: 0, exportFailed: 0, closed: 0, lastError: undefined };
    const said: string[] = [];
    if (u.failures > 0) said.push(`${u.failures} export request(s) to ${this.#url} failed${u.lastError ? ` (${u.lastError})` : ''}, dropping ${u.exportFailed} span(s)`);
    if (u.queueFull > 0) said.push(`${u.queueFull} span(s) dropped because the queue was full: ${this.#url} takes spans slower than the node makes them`);
    if (u.closed > 0) said.push(`${u.closed} span(s) not sent before the node closed`);
    if (said.length === 0) return;
    this.#logger.warn(
      { otlpUrl: this.#url, failedExports: u.failures, droppedExportFailed: u.exportFailed, droppedQueueFull: u.queueFull, droppedAtClose: u.closed, lastError: u.lastError },
      `Spans lost: ${said.join('; ')} (lamplighter_spans_dropped_total)`,
    );
  }
}
