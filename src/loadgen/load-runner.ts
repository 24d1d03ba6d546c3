// Drives HTTP load at a fixed concurrency over undici clients and measures throughput, latency and errors.
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { Client, type Dispatcher } from 'undici';
import { LamplighterError, ErrorCodes } from '../errors/index.js';
import { systemClock, type Clock, type ClockTimer } from '../runtime/process/index.js';
import { LoadDefaults } from './load-defaults.js';
import { mean, median } from './stats.js';

/** Kinds of failure counted apart: status classes of answered requests, and transport failures. */
export type ErrorKind = '4xx' | '5xx' | 'timeout' | 'connect' | 'reset' | 'other';

/** One throughput sample, taken once per sample interval while a run is going. */
export interface LoadSample {
  /** 0-based position of the sample in the run. */
  index: number;
  /** Time from the start of the run to the end of this sample. */
  elapsedMs: number;
  /** Responses per second during this sample. */
  rps: number;
  /** Failures (error statuses and transport errors) during this sample. */
  errors: number;
}

/** Latency percentiles of the answered requests, in milliseconds; null when none was answered. */
export interface LatencySummary {
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
  mean: number | null;
}

/** Everything measured in one run against one URL. */
export interface LoadResult {
  /** The target. */
  url: string;
  /** HTTP method used. */
  method: string;
  /** Requests kept in flight. */
  concurrency: number;
  /** Responses received (any status) within the run. */
  requests: number;
  /** Wall time of the run. */
  durationMs: number;
  /** Time from the start of the run to its last response; null when nothing was answered. */
  lastResponseMs: number | null;
  /** Responses per second over the per-second samples. */
  rps: { mean: number; median: number };
  /** Latency from writing a request to its connection to the end of its response, in milliseconds. */
  latency: LatencySummary;
  /** Failures by kind; kinds that did not occur are absent. */
  errors: Partial<Record<ErrorKind, number>>;
  /** Responses per second, one value per sample interval. */
  samples: number[];
}

/** Options for {@link runLoad}. */
export interface LoadOptions {
  /** Requests kept in flight at once (one connection each unless pipelining). @default LoadDefaults.concurrency (10) */
  concurrency?: number;
  /** Length of the run; when `requests` is set too, whichever ends first wins. @default LoadDefaults.durationMs (10 s) unless `requests` is set */
  durationMs?: number;
  /** Exact number of requests to send; the run ends when all of them are answered or failed. @default undefined (run for `durationMs`) */
  requests?: number;
  /** HTTP method. @default 'GET' */
  method?: string;
  /** Request headers as name/value pairs. @default [] */
  headers?: ReadonlyArray<readonly [string, string]>;
  /** Request body, sent with every request. @default undefined (no body) */
  body?: string | Uint8Array;
  /** Connect, headers and body-inactivity timeout of each request. @default LoadDefaults.timeoutMs (10 s) */
  timeoutMs?: number;
  /** Requests one connection may have in flight; 1 turns pipelining off. @default 1 */
  pipelining?: number;
  /** Length of a throughput sample; a last sample shorter than half of it is dropped unless it is the only one. @default LoadDefaults.sampleIntervalMs (1 s) */
  sampleIntervalMs?: number;
  /** Called with each sample as it is taken. @default undefined */
  onSample?: (sample: LoadSample) => void;
  /** Ends the run early; what was measured so far is returned. @default undefined */
  signal?: AbortSignal;
  /** Time source for the run's length, samples and latencies; tests inject one they move. @default systemClock */
  clock?: Clock;
  /** Load sent before measuring, to warm the JIT on both sides (the measured run opens its connections afresh); not counted, and on top of `requests`. @default 0 */
  warmupMs?: number;
}

const _TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const _CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
]);
const _RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

/** Sorts a transport error into `timeout`, `connect`, `reset` or `other`. */
export function classifyError(err: unknown): ErrorKind {
  let cause: unknown = err;
  for (let depth = 0; depth < 4 && cause !== null && typeof cause === 'object'; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (_TIMEOUT_CODES.has(code)) return 'timeout';
      if (_CONNECT_CODES.has(code)) return 'connect';
      if (_RESET_CODES.has(code)) return 'reset';
    }
    cause = (cause as { cause?: unknown }).cause;
  }
  return 'other';
}

/** Sends requests to `url` at a fixed concurrency for a duration or a request count, and measures them. */
export async function runLoad(url: string, options: LoadOptions = {}): Promise<LoadResult> {
  const { warmupMs = 0, ...measured } = options;
  if (warmupMs > 0) {
    await new _Run(url, { ...measured, durationMs: warmupMs, requests: undefined, onSample: undefined }).start();
  }
  return new _Run(url, measured).start();
}

/**
 * One slot of concurrency: sends a request, waits for its end, sends the next. The same handler
 * object serves every request of its slot, so the only per-request allocations are undici's own.
 */
class _Worker implements Dispatcher.DispatchHandler {
  startedAt = 0;
  status = 0;
  readonly run: _Run;
  readonly client: Client;
  /** Bound once so retries after a failure do not allocate a closure per request. */
  readonly next: () => void;

  constructor(run: _Run, client: Client) {
    this.run = run;
    this.client = client;
    this.next = () => run.issue(this);
  }

  /** Called as undici writes the request to its connection: latency is timed from here, as wrk does. */
  onRequestStart(): void {
    this.startedAt = this.run.clock.now();
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    this.status = statusCode;
  }

  onResponseData(): void {}

  onResponseEnd(): void {
    this.run.answered(this);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.run.failed(this, err);
  }
}

class _Run {
  readonly url: string;
  readonly method: string;
  readonly concurrency: number;
  readonly limit: number;
  readonly durationMs: number;
  readonly intervalMs: number;
  readonly onSample: ((sample: LoadSample) => void) | undefined;
  readonly signal: AbortSignal | undefined;
  readonly clock: Clock;
  readonly dispatchOptions: Dispatcher.DispatchOptions;
  readonly clients: Client[] = [];
  readonly workers: _Worker[] = [];
  readonly histogram: RecordableHistogram = createHistogram({ lowest: 1, highest: 3_600_000_000_000, figures: 3 });
  /** Responses by status class (index = status / 100). */
  readonly byClass = [0, 0, 0, 0, 0, 0];
  readonly transport = new Map<ErrorKind, number>();
  readonly samples: number[] = [];

  issued = 0;
  answeredCount = 0;
  failures = 0;
  idle = 0;
  stopped = false;
  startedAt = 0;
  endedAt = 0;
  lastAnswerAt = 0;
  sampleStart = 0;
  sampleAnswered = 0;
  sampleFailures = 0;
  timer: ClockTimer | undefined;
  timerAt = 0;
  fatal: Error | undefined;
  resolve!: (result: LoadResult) => void;
  reject!: (err: Error) => void;

  constructor(url: string, options: LoadOptions) {
    let target: URL;
    try {
      target = new URL(url);
    } catch (cause) {
      throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Cannot benchmark '${url}': not a URL`, { cause });
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') {
      throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Cannot benchmark '${url}': only http: and https: URLs are supported, got '${target.protocol}'`);
    }
    this.url = url;
    this.method = options.method ?? LoadDefaults.method;
    this.concurrency = _positiveInteger('concurrency', options.concurrency ?? LoadDefaults.concurrency);
    this.limit = options.requests === undefined ? Number.POSITIVE_INFINITY : _positiveInteger('requests', options.requests);
    this.durationMs =
      options.durationMs ?? (options.requests === undefined ? LoadDefaults.durationMs : Number.POSITIVE_INFINITY);
    if (!(this.durationMs > 0)) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Cannot benchmark '${url}': duration must be positive, got ${this.durationMs} ms`);
    this.intervalMs = options.sampleIntervalMs ?? LoadDefaults.sampleIntervalMs;
    this.onSample = options.onSample;
    this.signal = options.signal;
    this.clock = options.clock ?? systemClock;

    const headers: string[] = [];
    for (const [name, value] of options.headers ?? []) headers.push(name, value);
    const body = options.body === undefined ? null : typeof options.body === 'string' ? Buffer.from(options.body) : Buffer.from(options.body);
    this.dispatchOptions = {
      path: target.pathname + target.search,
      method: this.method as Dispatcher.HttpMethod,
      headers,
      body,
    };

    const timeoutMs = options.timeoutMs ?? LoadDefaults.timeoutMs;
    const pipelining = _positiveInteger('pipelining', options.pipelining ?? LoadDefaults.pipelining);
    const connections = Math.ceil(this.concurrency / pipelining);
    for (let i = 0; i < connections; i++) {
      this.clients.push(
        new Client(target.origin, {
          pipelining,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
          connectTimeout: timeoutMs,
        }),
      );
    }
    for (let i = 0; i < this.concurrency; i++) this.workers.push(new _Worker(this, this.clients[i % connections] as Client));
  }

  start(): Promise<LoadResult> {
    return new Promise<LoadResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      if (this.signal?.aborted) {
        this.startedAt = this.sampleStart = this.clock.now();
        this.finish();
        return;
      }
      this.signal?.addEventListener('abort', this.onAbort, { once: true });
      this.startedAt = this.sampleStart = this.clock.now();
      this.schedule();
      for (const worker of this.workers) this.issue(worker);
    });
  }

  readonly onAbort = (): void => this.finish();

  /** Arms the timer for the next sample boundary or the end of the run, whichever comes first. */
  schedule(): void {
    const nextSample = this.startedAt + (this.samples.length + 1) * this.intervalMs;
    this.timerAt = Math.min(nextSample, this.startedAt + this.durationMs);
    this.timer = this.clock.setTimeout(this.tick, Math.max(0, this.timerAt - this.clock.now()));
  }

  readonly tick = (): void => {
    this.timer = undefined;
    if (this.stopped) return;
    const now = this.clock.now();
    // Node times timers from the event loop's cached clock, so one armed late in a long loop turn
    // can fire early by real time: wait out the rest rather than cut a sample short.
    if (now < this.timerAt - 0.5) {
      this.timer = this.clock.setTimeout(this.tick, this.timerAt - now);
      return;
    }
    if (now >= this.startedAt + this.durationMs - 0.5) {
      this.finish();
      return;
    }
    this.takeSample(now);
    this.schedule();
  };

  takeSample(now: number): void {
    const seconds = (now - this.sampleStart) / 1000;
    const answered = this.answeredCount - this.sampleAnswered;
    const rps = seconds > 0 ? answered / seconds : 0;
    this.samples.push(rps);
    const sample: LoadSample = {
      index: this.samples.length - 1,
      elapsedMs: now - this.startedAt,
      rps,
      errors: this.failures + this.byClass[4] + this.byClass[5] - this.sampleFailures,
    };
    this.sampleStart = now;
    this.sampleAnswered = this.answeredCount;
    this.sampleFailures = this.failures + this.byClass[4] + this.byClass[5];
    this.onSample?.(sample);
  }

  issue(worker: _Worker): void {
    if (this.stopped || this.issued >= this.limit) {
      if (++this.idle === this.workers.length) this.finish();
      return;
    }
    this.issued++;
    worker.client.dispatch(this.dispatchOptions, worker);
  }

  answered(worker: _Worker): void {
    if (this.stopped) return;
    const now = this.clock.now();
    this.lastAnswerAt = now;
    const ns = Math.round((now - worker.startedAt) * 1e6);
    this.histogram.record(ns > 0 ? ns : 1);
    this.answeredCount++;
    const cls = (worker.status / 100) | 0;
    if (cls >= 0 && cls < 6) this.byClass[cls]++;
    this.issue(worker);
  }

  failed(worker: _Worker, err: Error): void {
    if (this.stopped) return;
    if ((err as { code?: unknown }).code === 'UND_ERR_INVALID_ARG') {
      // A request undici refuses to build fails the same way every time: stop instead of spinning.
      this.fatal = new LamplighterError(ErrorCodes.BAD_REQUEST, `Cannot benchmark '${this.url}': ${err.message}`, { cause: err });
      this.finish();
      return;
    }
    const kind = classifyError(err);
    this.transport.set(kind, (this.transport.get(kind) ?? 0) + 1);
    this.failures++;
    // Errors can be reported synchronously from dispatch; retry on the next turn to keep the stack flat.
    setImmediate(worker.next);
  }

  finish(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this.onAbort);
    const now = this.clock.now();
    this.endedAt = now;
    if (now - this.sampleStart >= this.intervalMs / 2 || this.samples.length === 0) this.takeSample(now);
    // Requests still in flight at the end of a timed run are dropped, not counted.
    Promise.all(this.clients.map((c) => c.destroy().catch(() => undefined))).then(
      () => (this.fatal ? this.reject(this.fatal) : this.resolve(this.result())),
      (err: Error) => this.reject(err),
    );
  }

  result(): LoadResult {
    const errors: Partial<Record<ErrorKind, number>> = {};
    if (this.byClass[4] > 0) errors['4xx'] = this.byClass[4];
    if (this.byClass[5] > 0) errors['5xx'] = this.byClass[5];
    for (const [kind, count] of this.transport) errors[kind] = count;
    const h = this.histogram;
    const any = this.answeredCount > 0;
    const ms = (ns: number): number | null => (any ? ns / 1e6 : null);
    return {
      url: this.url,
      method: this.method,
      concurrency: this.concurrency,
      requests: this.answeredCount,
      durationMs: this.endedAt - this.startedAt,
      lastResponseMs: any ? this.lastAnswerAt - this.startedAt : null,
      rps: { mean: mean(this.samples), median: median(this.samples) },
      latency: {
        p50: ms(h.percentile(50)),
        p90: ms(h.percentile(90)),
        p99: ms(h.percentile(99)),
        max: ms(h.max),
        mean: ms(h.mean),
      },
      errors,
      samples: this.samples,
    };
  }
}

function _positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Cannot benchmark: ${name} must be a positive integer, got ${value}`);
  }
  return value;
}
