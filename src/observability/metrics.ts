// Prometheus metrics of one node, in a registry of its own so several nodes can share a process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { RequestSeriesSet, type RequestSeries } from './request-series.js';

/** Live figures the metrics read at scrape time rather than tracking on every change. */
export interface MetricsSource {
  /** Every deployed function with its lit instances and held requests. */
  functions(): Array<{ name: string; instances: number; pending: number; inFlight: number }>;
  /** The sandbox pool's state, when the node runs one. */
  sandbox?(): SandboxFigures;
}

/** What the sandbox pool reports: enough to see a wedged pool at a glance. */
export interface SandboxFigures {
  /** Worker threads running. */
  workers: number;
  /** Workers with a run sent to them. */
  busy: number;
  /** Workers held by a long run. */
  held: number;
  /** Runs waiting in the pool for a worker. */
  queued: number;
  /** Workers stopped because a run passed its deadline. */
  replacedForTimeout: number;
  /** Workers that failed or exited on their own. */
  replacedForCrash: number;
}

const NO_SANDBOX: SandboxFigures = { workers: 0, busy: 0, held: 0, queued: 0, replacedForTimeout: 0, replacedForCrash: 0 };

/** Options for {@link Metrics}. */
export interface MetricsOptions {
  /** Also export Node process metrics (heap, event loop lag). @default true */
  processMetrics?: boolean;
}

/** The metrics a node exports at /metrics. */
export class Metrics {
  readonly registry = new Registry();
  readonly #requests = new RequestSeriesSet();
  readonly coldStarts: Counter<'function'>;
  readonly coldStartWait: Histogram<'function'>;
  /** Damaged files found in the store (revision, pointer, blob), each counted once. */
  readonly storeDamagedFiles: Counter<'kind'>;
  private source: MetricsSource = { functions: () => [] };

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    this.#requests.register(this.registry);
    this.coldStarts = new Counter({ name: 'lamplighter_cold_starts_total', help: 'Times a function was lit from zero instances', labelNames: ['function'], registers });
    this.coldStartWait = new Histogram({
      name: 'lamplighter_cold_start_wait_seconds',
      help: 'Time requests were held waiting for an instance to light',
      labelNames: ['function'],
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
      registers,
    });
    this.storeDamagedFiles = new Counter({ name: 'lamplighter_store_damaged_files_total', help: 'Damaged files found in the store, by kind (revision, pointer, blob)', labelNames: ['kind'], registers });
    const self = this;
    new Gauge({
      name: 'lamplighter_instances',
      help: 'Instances lit now, by function (0 when the function is at zero)',
      labelNames: ['function'],
      registers,
      collect() {
        this.reset();
        for (const f of self.source.functions()) this.set({ function: f.name }, f.instances);
      },
    });
    new Gauge({
      name: 'lamplighter_pending_requests',
      help: 'Requests held waiting for a free instance, by function',
      labelNames: ['function'],
      registers,
      collect() {
        this.reset();
        for (const f of self.source.functions()) this.set({ function: f.name }, f.pending);
      },
    });
    new Gauge({
      name: 'lamplighter_in_flight_requests',
      help: 'Requests being served by an instance now, by function',
      labelNames: ['function'],
      registers,
      collect() {
        this.reset();
        for (const f of self.source.functions()) this.set({ function: f.name }, f.inFlight);
      },
    });
    const sandboxGauge = (name: string, help: string, read: (f: SandboxFigures) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(self.source.sandbox?.() ?? NO_SANDBOX));
        },
      });
    };
    sandboxGauge('lamplighter_sandbox_workers', 'Sandbox worker threads running', (f) => f.workers);
    sandboxGauge('lamplighter_sandbox_workers_busy', 'Sandbox workers with a run sent to them', (f) => f.busy);
    sandboxGauge('lamplighter_sandbox_workers_held', 'Sandbox workers held by a long run', (f) => f.held);
    sandboxGauge('lamplighter_sandbox_runs_queued', 'WAGI runs waiting in the pool for a sandbox worker', (f) => f.queued);
    new Counter({
      name: 'lamplighter_sandbox_workers_replaced_total',
      help: 'Sandbox workers stopped and replaced, by reason (timeout: a run passed its deadline)',
      labelNames: ['reason'],
      registers,
      collect() {
        const f = self.source.sandbox?.() ?? NO_SANDBOX;
        this.reset();
        this.inc({ reason: 'timeout' }, f.replacedForTimeout);
        this.inc({ reason: 'crash' }, f.replacedForCrash);
      },
    });
    if (options.processMetrics ?? true) {
      // prom-client names its own series process_* and nodejs_*; the prefix only namespaces them.
      collectDefaultMetrics({ register: this.registry, prefix: 'lamplighter_' });
      // Its nodejs_active_{handles,requests,resources}_total are gauges (sums of the labelled
      // series beside them), and a gauge named _total reads as a counter to Prometheus.
      for (const metric of this.registry.getMetricsAsArray()) {
        const { name, type } = metric as unknown as { name: string; type: string };
        if (type === 'gauge' && name.endsWith('_total')) this.registry.removeSingleMetric(name);
      }
    }
  }

  /** Records a request the gateway answered before routing it to a function (404, 400…). */
  recordUnrouted(status: number): void {
    this.#requests.recordUnrouted(status);
  }

  /** Where the gateway records `functionName`'s answered requests (counts by status, durations). */
  requestSeries(functionName: string): RequestSeries {
    return this.#requests.of(functionName);
  }

  /** Sets where the live gauges read from. */
  setSource(source: MetricsSource): void {
    this.source = source;
  }

  /** The Prometheus text exposition. */
  async render(): Promise<string> {
    return this.registry.metrics();
  }
}
