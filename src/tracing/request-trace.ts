// The trace of one request: its server span and the child spans the dispatcher and runtimes open under it.
import { SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { LamplighterError } from '../errors/index.js';

/** What ran a request: a runtime, or a peer node it was forwarded to. */
export type RunRuntime = 'wagi' | 'component' | 'process' | 'peer';

/** Attribute names of Lamplighter's own (the HTTP ones follow the semantic conventions). */
export const TraceAttributes = {
  function: 'lamplighter.function',
  requestId: 'lamplighter.request_id',
  coldStart: 'lamplighter.cold_start',
  runtime: 'lamplighter.runtime',
  instance: 'lamplighter.instance',
} as const;

/** The W3C `traceparent` header value naming a span: `00-<trace id>-<span id>-<flags>`. */
function traceparentOf(span: Span): string {
  const c = span.spanContext();
  return `00-${c.traceId}-${c.spanId}-${c.traceFlags & 1 ? '01' : '00'}`;
}

/** `text` as a URL, or null (`URL.parse` is newer than some Node 20 releases). */
function parseUrl(text: string): URL | null {
  try {
    return new URL(text);
  } catch {
    return null;
  }
}

/** What a failure is called in `error.type`: the Lamplighter code, a type given as a string, else the error's code or name. */
function errorTypeOf(err: unknown): string {
  if (err instanceof LamplighterError) return err.code;
  if (typeof err === 'string') return err;
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.name;
  return 'Error';
}

/** Options for {@link RequestTrace.startCall}. */
export interface StartCallOptions {
  /** The span's name. @default the method */
  name?: string;
  /** `lamplighter.instance` of the span. @default none */
  instanceId?: string;
  /** `lamplighter.runtime` of the span. @default none */
  runtime?: RunRuntime;
  /** The span the call is made from (a component's run); @default the server span */
  parent?: TraceSpan;
}

/** One child span of a request: the wait for an instance, a run, an outbound call. */
export class TraceSpan {
  #traceparent: string | undefined;
  #failed = false;

  /** @internal Made by {@link RequestTrace}. */
  constructor(readonly span: Span) {}

  /**
   * The W3C `traceparent` value naming this span, to hand to the next hop (WAGI's
   * HTTP_TRACEPARENT, a process's or an outbound request's `traceparent` header) so that what
   * it does is this span's child.
   */
  get traceparent(): string {
    return (this.#traceparent ??= traceparentOf(this.span));
  }

  /** Records the status of an HTTP answer: `http.response.status_code`, and an error for 5xx. */
  setStatus(status: number): void {
    this.span.setAttribute('http.response.status_code', status);
    if (status >= 500 && !this.#failed) {
      this.#failed = true;
      this.span.setAttribute('error.type', String(status));
      this.span.setStatus({ code: SpanStatusCode.ERROR });
    }
  }

  /**
   * Records a failure: `error.type` (a LamplighterError's LL_ code; a string as it is, such as a
   * wasi:http error code `connection-refused`; else the error's code or name) and the status error.
   */
  fail(err: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.span.setAttribute('error.type', errorTypeOf(err));
    const internal = err instanceof LamplighterError && err.code === 'LL_INTERNAL';
    this.span.setStatus({ code: SpanStatusCode.ERROR, message: internal ? 'Internal error' : err instanceof Error ? err.message : String(err) });
  }

  /** Sets one attribute. */
  setAttribute(name: string, value: string | number | boolean): void {
    this.span.setAttribute(name, value);
  }

  /** Ends the span (later calls do nothing). */
  end(): void {
    this.span.end();
  }
}

/**
 * The trace of one request, made by the gateway when tracing is on: the server span, and the
 * children opened under it. Reached from a request with `traceOf(request)`.
 */
export class RequestTrace {
  readonly server: TraceSpan;
  readonly #tracer: Tracer;
  readonly #context: Context;
  readonly #method: string;
  #function: string | undefined;
  #status: number | undefined;
  #ended = false;

  /** @internal Made by the node's tracer. */
  constructor(tracer: Tracer, server: Span, parent: Context, method: string) {
    this.#tracer = tracer;
    this.#method = method;
    this.server = new TraceSpan(server);
    this.#context = trace.setSpan(parent, server);
  }

  /** The `traceparent` value naming the server span (for a hop that belongs to the request as a whole, such as forwarding it to another node). */
  get traceparent(): string {
    return this.server.traceparent;
  }

  /** Names the route the request matched: `http.route`, the span's name, and the function. */
  routed(pattern: string, fn: string): void {
    this.#function = fn;
    const span = this.server.span;
    span.setAttribute('http.route', pattern);
    span.setAttribute(TraceAttributes.function, fn);
    span.updateName(`${this.#method} ${pattern}`);
  }

  /** Records the answer the client gets, and whether it waited for a cold start. */
  respond(status: number, coldStart: boolean): void {
    this.#status = status;
    this.server.setStatus(status);
    if (coldStart) this.server.setAttribute(TraceAttributes.coldStart, true);
  }

  /** Records the error the request failed with (its LL_ code in `error.type`) and the status it became. */
  fail(err: LamplighterError): void {
    this.server.fail(err);
    this.respond(err.status, err.code === 'LL_COLD_START_TIMEOUT');
  }

  /** Ends the server span; `finished` false means the client went before the answer was written whole. */
  end(finished = true): void {
    if (this.#ended) return;
    this.#ended = true;
    if (!finished && this.#status === undefined) this.server.fail(new Error('the client went away'));
    this.server.end();
  }

  /** Starts the span of a request held for an instance; `cold` says none was ready (a cold start). */
  startWait(cold: boolean): TraceSpan {
    return this.#child('wait for instance', SpanKind.INTERNAL, { [TraceAttributes.coldStart]: cold });
  }

  /** Starts the span of one run: in a sandbox (`wagi`, `component`) on instance `instanceId`. */
  startRun(runtime: RunRuntime, instanceId: string): TraceSpan {
    return this.#child('run in sandbox', SpanKind.INTERNAL, { [TraceAttributes.runtime]: runtime, [TraceAttributes.instance]: instanceId });
  }

  /**
   * Starts the span of an HTTP call made for this request: the call to a process function's
   * program (`name` 'run in process'), or a component's outbound request (`name` defaults to the
   * method; `parent` its run span). Its {@link TraceSpan.traceparent} goes in the call's
   * `traceparent` header.
   */
  startCall(method: string, url: URL | string, options: StartCallOptions = {}): TraceSpan {
    const attributes: Attributes = { 'http.request.method': method };
    const target = typeof url === 'string' ? parseUrl(url) : url;
    if (target === null) {
      // A target that is no URL (OPTIONS *) is still traced: tracing never fails a request.
      attributes['url.full'] = String(url);
    } else {
      attributes['url.full'] = target.href;
      attributes['server.address'] = target.hostname;
      attributes['server.port'] = target.port === '' ? (target.protocol === 'https:' ? 443 : 80) : Number(target.port);
    }
    if (options.runtime) attributes[TraceAttributes.runtime] = options.runtime;
    if (options.instanceId) attributes[TraceAttributes.instance] = options.instanceId;
    return this.#child(options.name ?? method, SpanKind.CLIENT, attributes, options.parent);
  }

  #child(name: string, kind: SpanKind, attributes: Attributes, parent?: TraceSpan): TraceSpan {
    if (this.#function !== undefined) attributes[TraceAttributes.function] = this.#function;
    const context = parent === undefined ? this.#context : trace.setSpan(this.#context, parent.span);
    return new TraceSpan(this.#tracer.startSpan(name, { kind, attributes }, context));
  }
}
