// Time-weighted concurrency and request rate of one function, in short buckets over a window.
//
// Concurrency is integrated over time (request-milliseconds per bucket), so a burst that starts
// and ends between two scaler ticks still counts, and a long request counts for its whole life.

/** Options for {@link DemandTracker}. */
export interface DemandTrackerOptions {
  /** Length of the averaging window in ms. @default 10000 */
  windowMs?: number;
  /** Length of one bucket in ms. @default 1000 */
  bucketMs?: number;
}

/** Tracks the demand on one function: requests in the system and their rate. */
export class DemandTracker {
  private readonly bucketMs: number;
  private readonly buckets: number;
  /** Request-milliseconds of concurrency accumulated per bucket (ring). */
  private readonly area: Float64Array;
  /** Requests started per bucket (ring). */
  private readonly starts: Float64Array;
  private bucketIndex = -1;
  private lastChange = 0;
  /** Requests in the system now: held or being served. */
  active = 0;
  /** When the last request started or ended (ms); -Infinity before any. */
  lastActivity = -Infinity;

  constructor(now: number, options: DemandTrackerOptions = {}) {
    this.bucketMs = options.bucketMs ?? 1000;
    this.buckets = Math.max(1, Math.ceil((options.windowMs ?? 10_000) / this.bucketMs));
    this.area = new Float64Array(this.buckets);
    this.starts = new Float64Array(this.buckets);
    this.lastChange = now;
    this.bucketIndex = Math.floor(now / this.bucketMs);
  }

  /** Brings the integral up to `now`, zeroing buckets the clock moved past. */
  private advance(now: number): void {
    if (now < this.lastChange) now = this.lastChange;
    let t = this.lastChange;
    const target = Math.floor(now / this.bucketMs);
    while (this.bucketIndex < target) {
      const bucketEnd = (this.bucketIndex + 1) * this.bucketMs;
      this.area[this.bucketIndex % this.buckets]! += this.active * (bucketEnd - t);
      t = bucketEnd;
      this.bucketIndex++;
      if (target - this.bucketIndex > this.buckets) {
        // Skipped more than a whole window: every bucket is stale.
        this.area.fill(0);
        this.starts.fill(0);
        this.bucketIndex = target;
        t = target * this.bucketMs;
        break;
      }
      this.area[this.bucketIndex % this.buckets] = 0;
      this.starts[this.bucketIndex % this.buckets] = 0;
    }
    this.area[this.bucketIndex % this.buckets]! += this.active * (now - t);
    this.lastChange = now;
  }

  /** A request entered the system (held or served). */
  begin(now: number): void {
    this.advance(now);
    this.active++;
    this.starts[this.bucketIndex % this.buckets]! += 1;
    this.lastActivity = now;
  }

  /** A request left the system (answered or failed). */
  end(now: number): void {
    this.advance(now);
    this.active = Math.max(0, this.active - 1);
    this.lastActivity = now;
  }

  /** Sums a ring over the whole window up to `now`; also returns the window's length in ms. */
  private windowSum(ring: Float64Array, now: number): [sum: number, spanMs: number] {
    this.advance(now);
    const spanMs = (this.buckets - 1) * this.bucketMs + (now - this.bucketIndex * this.bucketMs);
    let sum = 0;
    for (let i = 0; i < this.buckets; i++) sum += ring[i]!;
    return [sum, spanMs];
  }

  /** Mean concurrency over the whole window up to `now`. */
  concurrency(now: number): number {
    const [sum, span] = this.windowSum(this.area, now);
    return span > 0 ? sum / span : this.active;
  }

  /** Mean concurrency over the last full bucket and the current one (reacts within a bucket). */
  recentConcurrency(now: number): number {
    this.advance(now);
    const elapsedInBucket = now - this.bucketIndex * this.bucketMs;
    const prev = this.area[(this.bucketIndex - 1 + this.buckets) % this.buckets]!;
    const cur = this.area[this.bucketIndex % this.buckets]!;
    const span = (this.buckets > 1 ? this.bucketMs : 0) + elapsedInBucket;
    return span > 0 ? ((this.buckets > 1 ? prev : 0) + cur) / span : this.active;
  }

  /** Requests per second over the window. */
  rate(now: number): number {
    const [sum, span] = this.windowSum(this.starts, now);
    return span > 0 ? (sum * 1000) / span : 0;
  }
}
