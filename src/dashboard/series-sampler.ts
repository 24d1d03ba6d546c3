// Per-second samples of each function's request rate, latency, cold starts and instances, kept in a
// ring for the dashboard's charts. It reads the same figures /metrics exports (requests straight from
// the gateway's series, cold starts through the registry), so it adds nothing to the request path,
// and it runs only while a page is reading it.
import type { Registry } from 'prom-client';
import { DURATION_BUCKETS, type RequestSeries } from '../observability/index.js';

/** Sampler defaults: interval, samples kept per function, and how long it runs after its last reader. */
export const SamplerDefaults = {
  intervalMs: 1000,
  keep: 300,
  idleStopMs: 60_000,
} as const;

/** One function's live figures, as the node lists them. */
export interface FunctionFigures {
  name: string;
  instances: number;
  inFlight: number;
  pending: number;
}

/** Where the sampler reads from: the node's metrics (its registry and request series) and its functions. */
export interface SamplerSource {
  readonly metrics: {
    readonly registry: Registry;
    answeredRequests(functionName: string): Readonly<RequestSeries> | undefined;
  };
  list(): ReadonlyArray<{ readonly functions: readonly FunctionFigures[] }>;
}

/** One function over one interval. Latency and wait figures are null when nothing happened. */
export interface Sample {
  /** End of the interval, seconds since the epoch. */
  t: number;
  /** Requests answered per second. */
  rate: number;
  /** Requests answered with a 5xx status, per second. */
  errors: number;
  /** Mean, median and 99th percentile time to response headers (ms). */
  meanMs: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  /** Times the function was lit from zero. */
  coldStarts: number;
  /** Mean time requests were held for a cold start (ms). */
  coldWaitMs: number | null;
  instances: number;
  inFlight: number;
  pending: number;
}

/** A function's samples (oldest first) and its totals since the node started. */
export interface FunctionSeries {
  samples: Sample[];
  totalRequests: number;
  totalColdStarts: number;
}

/** Options for {@link SeriesSampler}. */
export interface SeriesSamplerOptions {
  /** Time between samples. @default 1000 */
  intervalMs?: number;
  /** Samples kept per function. @default 300 */
  keep?: number;
  /** The sampler stops this long after the last read. @default 60000 */
  idleStopMs?: number;
}

/** Upper bounds of the request-duration buckets, the last one Infinity. */
const DURATION_BOUNDS: readonly number[] = [...DURATION_BUCKETS, Infinity];

/** Metric names the sampler reads through the registry (see src/observability). */
const COLD_STARTS = 'lamplighter_cold_starts_total';
const COLD_START_WAIT = 'lamplighter_cold_start_wait_seconds';

interface HistogramReading {
  /** Upper bounds, ascending, the last one Infinity. */
  bounds: readonly number[];
  cumulative: number[];
  sum: number;
  count: number;
}

interface Reading {
  at: number;
  duration: HistogramReading | undefined;
  errors: number;
  coldStarts: number;
  coldWaitSum: number;
  coldWaitCount: number;
}

interface Tracked {
  last: Reading;
  series: FunctionSeries;
}

/** Samples every function of a node once per interval while someone reads the samples. */
export class SeriesSampler {
  readonly #source: SamplerSource;
  readonly #intervalMs: number;
  readonly #keep: number;
  readonly #idleStopMs: number;
  readonly #functions = new Map<string, Tracked>();
  #timer: NodeJS.Timeout | undefined;
  #lastRead = 0;
  #ticking = false;

  constructor(source: SamplerSource, options: SeriesSamplerOptions = {}) {
    this.#source = source;
    this.#intervalMs = options.intervalMs ?? SamplerDefaults.intervalMs;
    this.#keep = options.keep ?? SamplerDefaults.keep;
    this.#idleStopMs = options.idleStopMs ?? SamplerDefaults.idleStopMs;
  }

  /** The samples of every function; starts sampling if it was stopped. */
  read(): Record<string, FunctionSeries> {
    this.#lastRead = Date.now();
    if (!this.#timer) {
      this.#timer = setInterval(() => void this.#tick(), this.#intervalMs);
      this.#timer.unref();
      void this.#tick();
    }
    return Object.fromEntries([...this.#functions].map(([name, tracked]) => [name, tracked.series]));
  }

  /** Stops sampling and forgets every sample. */
  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#functions.clear();
  }

  async #tick(): Promise<void> {
    if (this.#ticking) return;
    if (Date.now() - this.#lastRead > this.#idleStopMs) {
      this.close();
      return;
    }
    this.#ticking = true;
    try {
      await this.#sample();
    } catch {
      // A sample that could not be read is a gap in the charts; it must never take the node down.
    } finally {
      this.#ticking = false;
    }
  }

  async #sample(): Promise<void> {
    const metrics = this.#source.metrics;
    const [coldStarts, coldWaits] = await Promise.all([readValues(metrics.registry, COLD_STARTS), readHistograms(metrics.registry, COLD_START_WAIT)]);
    const starts = new Map<string, number>();
    for (const v of coldStarts) starts.set(String(v.labels.function ?? ''), v.value);

    const at = Date.now();
    const seen = new Set<string>();
    for (const app of this.#source.list()) {
      for (const f of app.functions) {
        seen.add(f.name);
        const wait = coldWaits.get(f.name);
        const answered = metrics.answeredRequests(f.name);
        const reading: Reading = {
          at,
          duration: answered && durationsOf(answered),
          errors: answered ? errorsOf(answered) : 0,
          coldStarts: starts.get(f.name) ?? 0,
          coldWaitSum: wait?.sum ?? 0,
          coldWaitCount: wait?.count ?? 0,
        };
        const tracked = this.#functions.get(f.name);
        if (!tracked) {
          // The first reading is only a baseline: what came before it is in the totals, not in a sample.
          this.#functions.set(f.name, { last: reading, series: { samples: [], totalRequests: reading.duration?.count ?? 0, totalColdStarts: reading.coldStarts } });
          continue;
        }
        const samples = tracked.series.samples;
        samples.push(sampleBetween(tracked.last, reading, f));
        if (samples.length > this.#keep) samples.splice(0, samples.length - this.#keep);
        tracked.last = reading;
        tracked.series.totalRequests = reading.duration?.count ?? 0;
        tracked.series.totalColdStarts = reading.coldStarts;
      }
    }
    for (const name of this.#functions.keys()) if (!seen.has(name)) this.#functions.delete(name);
  }
}

/** A function's request durations as a cumulative histogram, copied (the series keeps counting). */
function durationsOf(series: Readonly<RequestSeries>): HistogramReading {
  const cumulative: number[] = [];
  let total = 0;
  for (const n of series.buckets) cumulative.push((total += n));
  return { bounds: DURATION_BOUNDS, cumulative, sum: series.sum, count: series.count };
}

/** A function's answers with a 5xx status so far. */
function errorsOf(series: Readonly<RequestSeries>): number {
  let n = 0;
  for (const [status, count] of series.statuses) if (status >= 500) n += count;
  return n;
}

/** The sample for the interval between two readings of one function. */
function sampleBetween(before: Reading, after: Reading, figures: FunctionFigures): Sample {
  const seconds = Math.max((after.at - before.at) / 1000, 0.001);
  const now = after.duration;
  // Counters that went down were reset (registry.resetMetrics()): count from zero.
  const prev = now && before.duration && before.duration.count <= now.count ? before.duration : undefined;
  const count = now ? now.count - (prev?.count ?? 0) : 0;
  const buckets = now ? now.cumulative.map((c, i) => c - (prev?.cumulative[i] ?? 0)) : [];
  const delta = (a: number, b: number): number => (a >= b ? a - b : a);
  const waits = delta(after.coldWaitCount, before.coldWaitCount);
  return {
    t: after.at / 1000,
    rate: count / seconds,
    errors: delta(after.errors, before.errors) / seconds,
    meanMs: count > 0 && now ? ((now.sum - (prev?.sum ?? 0)) / count) * 1000 : null,
    p50Ms: count > 0 && now ? quantile({ bounds: now.bounds, cumulative: buckets }, 0.5) * 1000 : null,
    p99Ms: count > 0 && now ? quantile({ bounds: now.bounds, cumulative: buckets }, 0.99) * 1000 : null,
    coldStarts: delta(after.coldStarts, before.coldStarts),
    coldWaitMs: waits > 0 ? (delta(after.coldWaitSum, before.coldWaitSum) / waits) * 1000 : null,
    instances: figures.instances,
    inFlight: figures.inFlight,
    pending: figures.pending,
  };
}

/** A histogram as exported: upper bounds ascending (the last one Infinity) and cumulative counts. */
export interface Buckets {
  bounds: readonly number[];
  cumulative: readonly number[];
}

/**
 * The q-quantile of a histogram, interpolated linearly inside its bucket (as Prometheus'
 * histogram_quantile does); past the last finite bound it is that bound.
 */
export function quantile(histogram: Buckets, q: number): number {
  const { bounds, cumulative } = histogram;
  const rank = q * (cumulative[cumulative.length - 1] ?? 0);
  for (let i = 0; i < bounds.length; i++) {
    if (cumulative[i]! < rank) continue;
    const upper = bounds[i]!;
    const lower = i === 0 ? 0 : bounds[i - 1]!;
    if (!Number.isFinite(upper)) return lower;
    const below = i === 0 ? 0 : cumulative[i - 1]!;
    const inBucket = cumulative[i]! - below;
    return inBucket > 0 ? lower + ((upper - lower) * (rank - below)) / inBucket : upper;
  }
  const finite = bounds.filter(Number.isFinite);
  return finite[finite.length - 1] ?? 0;
}

interface MetricValue {
  metricName?: string;
  labels: Record<string, string | number | undefined>;
  value: number;
}

async function readValues(registry: Registry, name: string): Promise<MetricValue[]> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return [];
  const got = (await metric.get()) as { values: MetricValue[] };
  return got.values;
}

/** Every function's histogram `name`, cumulative per bucket as exported. */
async function readHistograms(registry: Registry, name: string): Promise<Map<string, HistogramReading>> {
  const out = new Map<string, HistogramReading>();
  const buckets = new Map<string, Array<[number, number]>>();
  for (const v of await readValues(registry, name)) {
    const fn = String(v.labels.function ?? '');
    let reading = out.get(fn);
    if (!reading) {
      reading = { bounds: [], cumulative: [], sum: 0, count: 0 };
      out.set(fn, reading);
      buckets.set(fn, []);
    }
    if (v.metricName === `${name}_bucket`) {
      const le = v.labels.le;
      buckets.get(fn)!.push([le === '+Inf' ? Infinity : Number(le), v.value]);
    } else if (v.metricName === `${name}_sum`) reading.sum = v.value;
    else if (v.metricName === `${name}_count`) reading.count = v.value;
  }
  for (const [fn, list] of buckets) {
    list.sort((a, b) => a[0] - b[0]);
    const reading = out.get(fn)!;
    reading.bounds = list.map((b) => b[0]);
    reading.cumulative = list.map((b) => b[1]);
  }
  return out;
}
