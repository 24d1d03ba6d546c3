// One partition's breaker: its state, and its requests and failures over a sliding window of buckets.
import type { LamplighterError } from '../../errors/index.js';

/** Buckets the sliding window is kept in; the window slides a tenth of its length at a time. */
export const WINDOW_BUCKETS = 10;

/** Where a breaker is: serving, refusing, or letting probes through. */
export const enum State {
  Closed = 0,
  Open = 1,
  HalfOpen = 2,
}

/** Requests and failures of one bucket of the window; `start` is on the gate's clock (ms). */
export interface BucketCounts {
  start: number;
  requests: number;
  failures: number;
}

/**
 * The state and counts of one partition key. Plain mutable fields: the gate drives every
 * transition, so that the LRU lists, the metrics and the state change together.
 */
export class KeyBreaker {
  state: State = State.Closed;
  /** Bumped on every transition; a ticket from an older epoch reports to nobody. */
  epoch = 0;
  /** Open: when it turns half-open. Half-open: when it did. */
  openUntil = 0;
  consecutiveFailures = 0;
  /** Half-open: probes let through and not yet reported. */
  probesOut = 0;
  /** Half-open: probes that succeeded. */
  probesPassed = 0;
  /** Set once the gate has let go of this key; its tickets report to nobody. */
  forgotten = false;
  /** Neighbours in the gate's list (closed keys by last use, or the others by openUntil). */
  prev: KeyBreaker | undefined = undefined;
  next: KeyBreaker | undefined = undefined;
  /** The refusal last answered, reused while its Retry-After second is the same. */
  refusal: LamplighterError | undefined = undefined;
  refusalRetryAfter = 0;
  // Per bucket: its index on the clock (time / bucketMs), its requests, its failures.
  readonly #buckets = new Float64Array(WINDOW_BUCKETS * 3).fill(Number.NaN);

  constructor(readonly key: string) {}

  /** Counts one call ending at `now`. */
  record(now: number, bucketMs: number, failed: boolean): void {
    const index = Math.floor(now / bucketMs);
    const at = (index % WINDOW_BUCKETS) * 3;
    const b = this.#buckets;
    if (b[at] !== index) {
      b[at] = index;
      b[at + 1] = 0;
      b[at + 2] = 0;
    }
    b[at + 1]! += 1;
    if (failed) b[at + 2]! += 1;
  }

  /** Requests and failures in the window ending at `now`, into `out` ([requests, failures]). */
  totals(now: number, bucketMs: number, out: [number, number]): void {
    const current = Math.floor(now / bucketMs);
    const b = this.#buckets;
    let requests = 0;
    let failures = 0;
    for (let at = 0; at < b.length; at += 3) {
      const age = current - b[at]!;
      if (age >= 0 && age < WINDOW_BUCKETS) {
        requests += b[at + 1]!;
        failures += b[at + 2]!;
      }
    }
    out[0] = requests;
    out[1] = failures;
  }

  /** The window's buckets that hold a call, oldest first. */
  buckets(now: number, bucketMs: number): BucketCounts[] {
    const current = Math.floor(now / bucketMs);
    const b = this.#buckets;
    const out: BucketCounts[] = [];
    for (let at = 0; at < b.length; at += 3) {
      const age = current - b[at]!;
      if (age >= 0 && age < WINDOW_BUCKETS && b[at + 1]! > 0) out.push({ start: b[at]! * bucketMs, requests: b[at + 1]!, failures: b[at + 2]! });
    }
    return out.sort((x, y) => x.start - y.start);
  }

  /** Forgets every count (a breaker closing starts a fresh window). */
  clearCounts(): void {
    this.#buckets.fill(Number.NaN);
    this.consecutiveFailures = 0;
  }
}

/** A doubly linked list threaded through the breakers themselves: no allocation to move one. */
export class BreakerList {
  head: KeyBreaker | undefined = undefined;
  tail: KeyBreaker | undefined = undefined;
  length = 0;

  /** Appends `b`, which must be in no list. */
  push(b: KeyBreaker): void {
    b.prev = this.tail;
    b.next = undefined;
    if (this.tail) this.tail.next = b;
    else this.head = b;
    this.tail = b;
    this.length++;
  }

  /**
   * Puts `b`, which must be in no list, after the last breaker whose openUntil is not later than
   * its own: keeps a list ordered by openUntil when a decision from elsewhere opens a breaker for
   * less than open_for. Walks from the end, where a breaker opened now almost always belongs.
   */
  insertByOpenUntil(b: KeyBreaker): void {
    let after = this.tail;
    while (after && after.openUntil > b.openUntil) after = after.prev;
    if (!after) {
      this.unshift(b);
      return;
    }
    b.prev = after;
    b.next = after.next;
    if (after.next) after.next.prev = b;
    else this.tail = b;
    after.next = b;
    this.length++;
  }

  /** Puts `b`, which must be in no list, at the front. */
  unshift(b: KeyBreaker): void {
    b.prev = undefined;
    b.next = this.head;
    if (this.head) this.head.prev = b;
    else this.tail = b;
    this.head = b;
    this.length++;
  }

  /** Takes `b`, which must be in this list, out of it. */
  remove(b: KeyBreaker): void {
    if (b.prev) b.prev.next = b.next;
    else this.head = b.next;
    if (b.next) b.next.prev = b.prev;
    else this.tail = b.prev;
    b.prev = b.next = undefined;
    this.length--;
  }

  /** Moves `b`, which must be in this list, to its end. */
  moveToTail(b: KeyBreaker): void {
    if (this.tail === b) return;
    this.remove(b);
    this.push(b);
  }
}
