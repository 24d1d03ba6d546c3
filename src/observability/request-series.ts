// Request counts and durations per function, kept as plain numbers on the gateway's hot path and
// turned into Prometheus series only when scraped. prom-client's labelled observe() validates and
// hashes its labels on every call, which the gateway paid once per request.
import type { Registry } from 'prom-client';

/** Upper bounds (seconds) of the request-duration histogram's buckets. */
export const DURATION_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** One function's answered requests: a count per status and a histogram of durations. */
export class RequestSeries {
  /** Observations per bucket (not cumulative); the last slot is past the largest bound. */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  sum = 0;
  count = 0;
  /** Requests answered per status code. */
  readonly statuses = new Map<number, number>();

  constructor(readonly functionName: string) {}

  /** Records one answered request. */
  record(status: number, seconds: number): void {
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
    this.buckets[i]! += 1;
    this.sum += seconds;
    this.count += 1;
  }
}

/** The series of every function, and their export as a counter and a histogram. */
export class RequestSeriesSet {
  readonly #series = new Map<string, RequestSeries>();
  /** Requests answered before reaching any function, per status code. */
  readonly #unrouted = new Map<number, number>();

  /** Records a request answered before routing: no route (404), or one the server could not read (400…). */
  recordUnrouted(status: number): void {
    this.#unrouted.set(status, (this.#unrouted.get(status) ?? 0) + 1);
  }

  /** The series of `functionName` if it has one; asking makes none. */
  find(functionName: string): RequestSeries | undefined {
    return this.#series.get(functionName);
  }

  /** The series of `functionName`, made on first use. */
  of(functionName: string): RequestSeries {
    let series = this.#series.get(functionName);
    if (!series) {
      series = new RequestSeries(functionName);
      this.#series.set(functionName, series);
    }
    return series;
  }

  /**
   * Registers `lamplighter_requests_total` ({function, code}), the duration histogram
   * `lamplighter_request_duration_seconds` ({function}) and `lamplighter_unrouted_requests_total`
   * ({code}), read from the series at scrape time and cleared by the registry's resetMetrics().
   */
  register(registry: Registry): void {
    const counter = 'lamplighter_requests_total';
    const histogram = 'lamplighter_request_duration_seconds';
    this.#registerMetric(registry, counter, 'Requests answered, by function and status code', 'counter', () => {
      const out: MetricValue[] = [];
      for (const series of this.#series.values()) {
        for (const [status, n] of series.statuses) out.push({ labels: { function: series.functionName, code: String(status) }, value: n });
      }
      return out;
    });
    this.#registerMetric(registry, histogram, 'Time from request to response headers, by function', 'histogram', () => {
      const out: MetricValue[] = [];
      for (const series of this.#series.values()) {
        const fn = series.functionName;
        let cumulative = 0;
        for (let i = 0; i < DURATION_BUCKETS.length; i++) {
          cumulative += series.buckets[i]!;
          out.push({ metricName: `${histogram}_bucket`, labels: { le: DURATION_BUCKETS[i]!, function: fn }, value: cumulative });
        }
        out.push({ metricName: `${histogram}_bucket`, labels: { le: '+Inf', function: fn }, value: series.count });
        out.push({ metricName: `${histogram}_sum`, labels: { function: fn }, value: series.sum });
        out.push({ metricName: `${histogram}_count`, labels: { function: fn }, value: series.count });
      }
      return out;
    });
    this.#registerMetric(registry, 'lamplighter_unrouted_requests_total', 'Requests answered before reaching a function (no route, or a request the gateway could not read), by status code', 'counter', () =>
      [...this.#unrouted].map(([status, n]) => ({ labels: { code: String(status) }, value: n })),
    );
  }

  // prom-client reads any object with this shape; its own classes would validate and hash labels per update.
  #registerMetric(registry: Registry, name: string, help: string, type: 'counter' | 'histogram', values: () => MetricValue[]): void {
    const metric = {
      name,
      help,
      type,
      aggregator: 'sum',
      get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
      reset: () => {
        this.#series.clear();
        this.#unrouted.clear();
      },
    };
    registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
  }
}

interface MetricValue {
  metricName?: string;
  labels: Record<string, string | number>;
  value: number;
}
