// Prometheus metrics of one node, in a registry of its own so several nodes can share a process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { RequestSeriesSet, type RequestSeries } from './request-series.js';

/** One function's live figures, as {@link MetricsSource.functions} lists them. */
export interface FunctionFigures {
  name: string;
  instances: number;
  pending: number;
  inFlight: number;
  memoryBytes?: number;
}

/** Live figures the metrics read at scrape time rather than tracking on every change. */
export interface MetricsSource {
  /** Every deployed function with its lit instances and held requests. */
  functions(): FunctionFigures[];
  /** The sandbox pool's state, when the node runs one. */
  sandbox?(): SandboxFigures;
  /** Nodes of the cluster seen as healthy, this one included; without it the node is alone (1). */
  clusterNodes?(): number;
}

/**
 * How a request forwarded to another node ended: `served` (the peer answered, whatever the
 * status), `unreachable` (no connection to the peer), `failed` (the exchange broke off after
 * it was sent), `refused` (the peer would not take it: draining, no capacity, a loop).
 */
export type ForwardOutcome = 'served' | 'unreachable' | 'failed' | 'refused';

/**
 * What discovery handled: a member's `join`, `leave` or `update` (its free capacity changed),
 * a node seen (`node_up`) or dropped (`node_down`), a node's whole member list (`sync`), or a
 * message it could not read (`malformed`).
 */
export type DiscoveryEventKind = 'join' | 'leave' | 'update' | 'node_up' | 'node_down' | 'sync' | 'malformed';

/** Every {@link DiscoveryEventKind}; each series is exported from the start, at 0. */
const DISCOVERY_EVENT_KINDS: readonly DiscoveryEventKind[] = ['join', 'leave', 'update', 'node_up', 'node_down', 'sync', 'malformed'];

/** The states of a circuit breaker: closed (serving), open (refusing), half-open (letting probes through). */
export type BreakerState = 'closed' | 'open' | 'half_open';

const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half_open'];

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
  /** Time each instance took to light (cold-start waits are coldStartWait, per held request). */
  readonly instanceStart: Histogram<'function'>;
  readonly #functionCpu: Counter<'function' | 'runtime'>;
  /** Damaged files found in the store (revision, pointer, blob), each counted once. */
  readonly storeDamagedFiles: Counter<'kind'>;
  readonly #forwarded: Counter<'function' | 'outcome'>;
  readonly #discoveryEvents: Counter<'kind'>;
  readonly #breakerClusterMessages: Counter<'kind'>;
  readonly #breakerTransitions: Counter<'function' | 'to'>;
  readonly #breakerOpenKeys: Gauge<'function'>;
  readonly #logLinesDropped: Counter<'function' | 'sink'>;
  readonly #logLinesDamaged: Counter<'function'>;
  private source: MetricsSource = { functions: () => [] };
  /** What the source said for the scrape under way, asked once for every gauge that reads it. */
  #scrape: { functions?: FunctionFigures[]; sandbox?: SandboxFigures } | undefined;

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
    this.instanceStart = new Histogram({
      name: 'lamplighter_instance_start_seconds',
      help: 'Time an instance took to light, from its start until it could take requests, by function',
      labelNames: ['function'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#functionCpu = new Counter({
      name: 'lamplighter_function_cpu_seconds_total',
      help: 'Time sandbox and component worker threads spent running each function (its code and host calls; runs are synchronous on their thread), by function and runtime',
      labelNames: ['function', 'runtime'],
      registers,
    });
    this.storeDamagedFiles = new Counter({ name: 'lamplighter_store_damaged_files_total', help: 'Damaged files found in the store, by kind (revision, pointer, blob)', labelNames: ['kind'], registers });
    this.#forwarded = new Counter({
      name: 'lamplighter_forwarded_requests_total',
      help: 'Requests this node forwarded to another node, by function and outcome (served: the peer answered; unreachable: no connection to it; failed: the exchange broke off; refused: the peer would not take it)',
      labelNames: ['function', 'outcome'],
      registers,
    });
    this.#breakerClusterMessages = new Counter({
      name: 'lamplighter_breaker_cluster_messages_total',
      help: 'Messages of the breakers\' cluster protocol, by kind (report_sent, report_received: counts to a key\'s owner; probe_sent; decision_sent, decision_applied: an owner\'s verdict; malformed: one it could not read)',
      labelNames: ['kind'],
      registers,
    });
    this.#discoveryEvents = new Counter({
      name: 'lamplighter_discovery_events_total',
      help: 'Discovery events this node handled, by kind (join, leave, update: a member changed; node_up, node_down: a node seen or dropped; sync: a node\'s whole member list; malformed: a message it could not read)',
      labelNames: ['kind'],
      registers,
    });
    // Every kind is known up front, so each series exists from the start and rate() sees its first event.
    for (const kind of DISCOVERY_EVENT_KINDS) this.#discoveryEvents.inc({ kind }, 0);
    this.#breakerTransitions = new Counter({
      name: 'lamplighter_breaker_transitions_total',
      help: 'Circuit breaker transitions, by function and the state entered (open: refusing; half_open: letting probes through; closed: serving again), summed over partition keys',
      labelNames: ['function', 'to'],
      registers,
    });
    this.#breakerOpenKeys = new Gauge({
      name: 'lamplighter_breaker_open_keys',
      help: 'Partition keys whose circuit breaker is open or half-open, by function',
      labelNames: ['function'],
      registers,
    });
    this.#logLinesDropped = new Counter({
      name: 'lamplighter_log_lines_dropped_total',
      help: 'Function log lines not kept, by function and sink (file: the log files, whose disk did not keep up or failed; nats: forwarding)',
      labelNames: ['function', 'sink'],
      registers,
    });
    this.#logLinesDamaged = new Counter({
      name: 'lamplighter_log_lines_damaged_total',
      help: 'Damaged lines (torn by a crash, garbled) skipped while reading function log files, by function, counted at each read',
      labelNames: ['function'],
      registers,
    });
    const self = this;
    new Gauge({
      name: 'lamplighter_cluster_nodes',
      help: 'Nodes of the cluster this node sees as healthy, itself included (1 on an embedded node)',
      registers,
      collect() {
        this.set(self.source.clusterNodes?.() ?? 1);
      },
    });
    new Gauge({
      name: 'lamplighter_instances',
      help: 'Instances lit now, by function (0 when the function is at zero)',
      labelNames: ['function'],
      registers,
      collect() {
        this.reset();
        for (const f of self.#functionsNow()) this.set({ function: f.name }, f.instances);
      },
    });
    new Gauge({
      name: 'lamplighter_function_memory_bytes',
      help: "Linear memory a function's instances hold now, by function (components: each worker's instance; WAGI: the runs in flight)",
      labelNames: ['function'],
      registers,
      collect() {
        this.reset();
        for (const f of self.#functionsNow()) if (f.memoryBytes !== undefined) this.set({ function: f.name }, f.memoryBytes);
      },
    });
    new Gauge({
      name: 'lamplighter_pending_requests',
      help: 'Requests held waiting for a free instance, by function',
      labelNames: ['function'],
      registers,
      collect() {
        this.reset();
        for (const f of self.#functionsNow()) this.set({ function: f.name }, f.pending);
      },
    });
    new Gauge({
      name: 'lamplighter_in_flight_requests',
      help: 'Requests being served by an instance now, by function',
      labelNames: ['function'],
      registers,
      collect() {
        this.reset();
        for (const f of self.#functionsNow()) this.set({ function: f.name }, f.inFlight);
      },
    });
    const sandboxGauge = (name: string, help: string, read: (f: SandboxFigures) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(self.#sandboxNow()));
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
        const f = self.#sandboxNow();
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

  /**
   * What `functionName` has answered since the node started (or the metrics were reset), read
   * without prom-client; undefined before its first answer. Asking makes no series, unlike
   * {@link requestSeries}, so a reader leaves /metrics as it was.
   */
  answeredRequests(functionName: string): Readonly<RequestSeries> | undefined {
    return this.#requests.find(functionName);
  }

  /** Counts a request forwarded to another node for `functionName`, by how it ended. */
  forwarded(functionName: string, outcome: ForwardOutcome): void {
    this.#forwarded.inc({ function: functionName, outcome });
  }

  /** Counts one event discovery handled. */
  discoveryEvent(kind: DiscoveryEventKind): void {
    this.#discoveryEvents.inc({ kind });
  }

  /** One message of the breakers' cluster protocol. */
  breakerClusterMessage(kind: string): void {
    this.#breakerClusterMessages.inc({ kind });
  }

  /** Makes `functionName`'s breaker series exist at 0, so rate() sees their first change. */
  breakerDeclared(functionName: string): void {
    for (const to of BREAKER_STATES) this.#breakerTransitions.inc({ function: functionName, to }, 0);
    this.#breakerOpenKeys.inc({ function: functionName }, 0);
  }

  /** Counts one breaker of `functionName` (whatever its key) entering state `to`. */
  breakerTransition(functionName: string, to: BreakerState): void {
    this.#breakerTransitions.inc({ function: functionName, to });
  }

  /**
   * Moves the count of `functionName`'s open (or half-open) keys by `delta`. Deltas rather than a
   * value, so two revisions of one function serving side by side during a deploy add up.
   */
  breakerOpenKeys(functionName: string, delta: number): void {
    this.#breakerOpenKeys.inc({ function: functionName }, delta);
  }

  /** Counts function log lines `sink` did not keep. */
  logLinesDropped(functionName: string, sink: string, count: number): void {
    this.#logLinesDropped.inc({ function: functionName, sink }, count);
  }

  /** Counts damaged lines skipped while reading a function's log files. */
  logLinesDamaged(functionName: string, count: number): void {
    this.#logLinesDamaged.inc({ function: functionName }, count);
  }

  /**
   * The run-time counter of `fn`, its labels bound once (a function's runs then add to it with no
   * label lookup): call the result with each run's thread time in seconds.
   */
  functionRun(fn: string, runtime: string): (seconds: number) => void {
    const series = this.#functionCpu.labels({ function: fn, runtime });
    return (seconds) => {
      if (seconds > 0) series.inc(seconds);
    };
  }

  /** Sets where the live gauges read from. */
  setSource(source: MetricsSource): void {
    this.source = source;
  }

  /**
   * The Prometheus text exposition. The source's function list and sandbox figures are asked for
   * once for the whole scrape, not once per gauge that reads them.
   */
  async render(): Promise<string> {
    const scrape = {};
    this.#scrape = scrape;
    try {
      return await this.registry.metrics();
    } finally {
      if (this.#scrape === scrape) this.#scrape = undefined;
    }
  }

  /** The function list for the scrape under way (asked for on first use), or asked now outside one. */
  #functionsNow(): FunctionFigures[] {
    const scrape = this.#scrape;
    if (!scrape) return this.source.functions();
    return (scrape.functions ??= this.source.functions());
  }

  #sandboxNow(): SandboxFigures {
    const scrape = this.#scrape;
    if (!scrape) return this.source.sandbox?.() ?? NO_SANDBOX;
    return (scrape.sandbox ??= this.source.sandbox?.() ?? NO_SANDBOX);
  }
}
