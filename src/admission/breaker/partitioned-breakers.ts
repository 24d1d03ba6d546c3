// A function's circuit breakers, one per partition key, held in bounded memory and answered locally.
import { ErrorCodes, LamplighterError } from '../../errors/index.js';
import type { InvocationRequest } from '../../instance/index.js';
import type { BreakerSpec, FunctionSpec } from '../../manifest/index.js';
import type { BreakerState, Metrics } from '../../observability/index.js';
import type { BreakerGate, BreakerStatus, BreakerTicket, CallOutcome } from '../breaker-gate.js';
import { Verdict, verdictOf } from './call-verdict.js';
import { BreakerList, KeyBreaker, State, WINDOW_BUCKETS, type BucketCounts } from './key-breaker.js';
import { describePartition, MAX_KEY_LENGTH, partitionKeyOf, retainedKey, type PartitionKeyOf } from './partition-key.js';

/** The key of the breaker that new keys share once every partition held is open. */
export const OVERFLOW_KEY = '(overflow)';

/** Options for {@link createBreakerGate}. */
export interface BreakerGateOptions {
  /** Where transitions and open keys are counted. @default undefined (not counted) */
  metrics?: Metrics;
  /** Milliseconds on the wall clock, so buckets of different nodes line up. @default Date.now */
  clock?: () => number;
  /**
   * How often open breakers past `open_for` are turned half-open and idle half-open ones closed
   * without a request asking (keeps the open-keys gauge true); 0 leaves it to requests and
   * {@link PartitionedBreakers.openKeys}. @default a quarter of open_for, from 100 ms to 5 s
   */
  sweepIntervalMs?: number;
}

/** A breaker that is refusing requests (open) or letting probes through (half-open). */
export interface OpenBreaker {
  key: string;
  state: 'open' | 'half_open';
  /** Until it lets probes through; 0 when half-open. */
  retryAfterMs: number;
}

/** One partition's counts, per bucket of the window: what a node would send a key's owner. */
export interface BreakerCounts {
  key: string;
  state: BreakerState;
  /** Length of a bucket; bucket starts are multiples of it on the gate's clock. */
  bucketMs: number;
  /** Buckets holding at least one call, oldest first. */
  buckets: BucketCounts[];
}

/**
 * A decision about one key taken elsewhere (by the key's owner in the cluster), applied to the
 * local breaker: open for the time the owner has left, or closed with a fresh window.
 */
export type RemoteVerdict = { state: 'open'; openForMs: number } | { state: 'closed' };

/** Told when a half-open key's probes decide it; the cluster protocol passes this on to the key's owner. */
export interface ProbeListener {
  /** `key` closed because its probes passed (true), or reopened because one failed (false). */
  probeEnded(key: string, passed: boolean): void;
}

const STATE_NAMES: Readonly<Record<State, BreakerState>> = { [State.Closed]: 'closed', [State.Open]: 'open', [State.HalfOpen]: 'half_open' };

/** The breakers of one function revision, implementing the admission pipeline's {@link BreakerGate}. */
export class PartitionedBreakers implements BreakerGate {
  /** The function the breakers guard. */
  readonly functionName: string;
  /** The partition as the manifest wrote it: "none", "client", "path" or "header:NAME". */
  readonly partition: string;
  /** Reads a request's partition key. */
  readonly keyOf: PartitionKeyOf;
  readonly #spec: BreakerSpec;
  readonly #bucketMs: number;
  readonly #clock: () => number;
  readonly #metrics: Metrics | undefined;
  readonly #byKey = new Map<string, KeyBreaker>();
  /** Closed breakers, least recently used first: the ones forgotten when the map is full. */
  readonly #closed = new BreakerList();
  /** Open and half-open breakers, by openUntil: never forgotten while in here. */
  readonly #notClosed = new BreakerList();
  /** Shared by new keys while every partition held is open. */
  readonly #overflow = new KeyBreaker(OVERFLOW_KEY);
  readonly #sweepIntervalMs: number;
  #sweepTimer: NodeJS.Timeout | undefined;
  #openReported = 0;
  #closedForGood = false;
  #probeListener: ProbeListener | undefined;
  #closeListeners: (() => void)[] = [];
  readonly #totals: [number, number] = [0, 0];

  constructor(functionName: string, spec: BreakerSpec, options: BreakerGateOptions = {}) {
    this.functionName = functionName;
    this.partition = describePartition(spec.partition);
    this.keyOf = partitionKeyOf(spec.partition);
    this.#spec = spec;
    this.#bucketMs = spec.windowMs / WINDOW_BUCKETS;
    this.#clock = options.clock ?? Date.now;
    this.#metrics = options.metrics;
    this.#sweepIntervalMs = options.sweepIntervalMs ?? Math.min(5000, Math.max(100, spec.openForMs / 4));
    this.#metrics?.breakerDeclared(functionName);
  }

  /** The manifest's `[function.breaker]`, units resolved. */
  get spec(): BreakerSpec {
    return this.#spec;
  }

  /** Length of a bucket of the window, in ms; bucket starts are multiples of it on the gate's clock. */
  get bucketMs(): number {
    return this.#bucketMs;
  }

  /** Partitions held now (the overflow breaker not included); at most max_keys. */
  get size(): number {
    return this.#byKey.size;
  }

  admit(request: InvocationRequest): BreakerTicket | LamplighterError {
    let key = this.keyOf(request);
    if (key.length > MAX_KEY_LENGTH) key = key.slice(0, MAX_KEY_LENGTH);
    const b = this.#byKey.get(key) ?? this.#add(key);
    if (b.state === State.Closed) {
      if (b !== this.#overflow) this.#closed.moveToTail(b);
      return new Ticket(this, b, false);
    }
    return this.#admitNotClosed(b);
  }

  /** The open and half-open breakers, soonest to probe first, at most `limit`. */
  openKeys(limit = 100): OpenBreaker[] {
    const now = this.#clock();
    this.#sweep(now);
    const out: OpenBreaker[] = [];
    for (let b = this.#notClosed.head; b && out.length < limit; b = b.next) {
      out.push({ key: b.key, state: b.state === State.Open ? 'open' : 'half_open', retryAfterMs: b.state === State.Open ? b.openUntil - now : 0 });
    }
    return out;
  }

  /** How many breakers are open or half-open now. */
  openCount(): number {
    this.#sweep(this.#clock());
    return this.#notClosed.length;
  }

  /** `key`'s state and counts per bucket, or undefined when no breaker is held for it. */
  counts(key: string): BreakerCounts | undefined {
    const b = key === OVERFLOW_KEY ? this.#overflow : this.#byKey.get(key);
    if (!b) return undefined;
    const now = this.#clock();
    this.#sweep(now);
    return { key: b.key, state: STATE_NAMES[b.state], bucketMs: this.#bucketMs, buckets: b.buckets(now, this.#bucketMs) };
  }

  /**
   * Every partition with a call in the window, with its counts per bucket: open ones first, then
   * closed ones from the most recently used, at most `limit`. What a node would send each key's
   * owner to be judged across the cluster.
   */
  snapshot(limit = 1000): BreakerCounts[] {
    const now = this.#clock();
    this.#sweep(now);
    const out: BreakerCounts[] = [];
    const add = (b: KeyBreaker): void => {
      const buckets = b.buckets(now, this.#bucketMs);
      if (buckets.length > 0 || b.state !== State.Closed) out.push({ key: b.key, state: STATE_NAMES[b.state], bucketMs: this.#bucketMs, buckets });
    };
    for (let b = this.#notClosed.head; b && out.length < limit; b = b.next) add(b);
    for (let b = this.#closed.tail; b && out.length < limit; b = b.prev) add(b);
    if (out.length < limit && this.#overflow.state === State.Closed) add(this.#overflow);
    return out;
  }

  status(limit: number): BreakerStatus {
    const keys = this.openKeys(limit).map((b) => ({ key: b.key, state: b.state, retryAfter: Math.ceil(b.retryAfterMs / 1000) }));
    return { partition: this.partition, open: this.openCount(), keys };
  }

  /**
   * Applies a decision taken elsewhere to `key`'s breaker. Open: the breaker refuses for
   * `openForMs` (or longer, if it was already open for longer), then turns half-open here as any
   * open breaker does; its counts start afresh, since they led to the decision. Closed: an open or
   * half-open breaker closes; any breaker's counts start afresh. False when nothing changed (a
   * closed verdict for a key not held; an open one that only the overflow breaker could take).
   */
  applyRemote(key: string, verdict: RemoteVerdict): boolean {
    if (this.#closedForGood || key === OVERFLOW_KEY) return false;
    const now = this.#clock();
    if (verdict.state === 'closed') {
      const b = this.#byKey.get(key);
      if (!b) return false;
      if (b.state === State.Closed) {
        b.clearCounts();
        return false;
      }
      this.#close(b, false);
      return true;
    }
    const b = this.#byKey.get(key) ?? this.#add(key.length > MAX_KEY_LENGTH ? key.slice(0, MAX_KEY_LENGTH) : key);
    if (b === this.#overflow) return false;
    b.clearCounts();
    const until = now + Math.max(0, verdict.openForMs);
    if (b.state === State.Open && b.openUntil >= until) return false;
    this.#open(b, now, until);
    return true;
  }

  /** Sets who hears of probes deciding a half-open key (one listener; undefined removes it). */
  setProbeListener(listener: ProbeListener | undefined): void {
    this.#probeListener = listener;
  }

  /** Calls `listener` once when the gate closes (at once if it has); the cluster detaches so. */
  whenClosed(listener: () => void): void {
    if (this.#closedForGood) listener();
    else this.#closeListeners.push(listener);
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closedForGood;
  }

  close(): void {
    if (this.#closedForGood) return;
    this.#closedForGood = true;
    const listeners = this.#closeListeners;
    this.#closeListeners = [];
    for (const listener of listeners) {
      try {
        listener();
      } catch {
        // A listener's fault must not keep the revision from going.
      }
    }
    if (this.#sweepTimer) clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    // This revision's open keys leave the gauge with it; the next revision counts its own.
    if (this.#openReported !== 0) this.#metrics?.breakerOpenKeys(this.functionName, -this.#openReported);
    this.#openReported = 0;
  }

  /** A ticket's outcome; called once per ticket by {@link Ticket.done}. */
  _report(b: KeyBreaker, epoch: number, probe: boolean, outcome: CallOutcome): void {
    if (b.forgotten || epoch !== b.epoch) return;
    const verdict = verdictOf(outcome, this.#spec.slowCallMs);
    if (verdict === Verdict.Ignored) {
      if (probe) b.probesOut--;
      return;
    }
    const failed = verdict === Verdict.Failure;
    const now = this.#clock();
    if (b.state === State.Closed) {
      b.record(now, this.#bucketMs, failed);
      if (!failed) {
        b.consecutiveFailures = 0;
        return;
      }
      b.consecutiveFailures++;
      if (this.#spec.consecutiveFailures > 0 && b.consecutiveFailures >= this.#spec.consecutiveFailures) {
        this.#open(b, now);
        return;
      }
      // Only a failure can push the ratio up to the threshold, so successes skip the sum.
      const totals = this.#totals;
      b.totals(now, this.#bucketMs, totals);
      if (totals[0] >= this.#spec.minRequests && totals[1] >= this.#spec.failureRatio * totals[0] - 1e-9) this.#open(b, now);
    } else if (probe && b.state === State.HalfOpen) {
      b.probesOut--;
      if (failed) {
        this.#open(b, now);
        this.#probeEnded(b, false);
      } else if (++b.probesPassed >= this.#spec.halfOpenProbes) {
        this.#close(b, false);
        this.#probeEnded(b, true);
      }
    }
  }

  #probeEnded(b: KeyBreaker, passed: boolean): void {
    if (!this.#probeListener || b === this.#overflow) return;
    try {
      this.#probeListener.probeEnded(b.key, passed);
    } catch {
      // The listener only queues a message; a fault of its own must not fail the request's ending.
    }
  }

  #add(key: string): KeyBreaker {
    if (this.#byKey.size >= this.#spec.maxKeys) {
      const lru = this.#closed.head;
      if (!lru) {
        // Every partition held is open or half-open: those are what the breakers exist to keep,
        // so the newcomer shares the overflow breaker until one of them closes.
        this.#sweep(this.#clock());
        if (!this.#closed.head) return this.#overflow;
        return this.#add(key);
      }
      this.#closed.remove(lru);
      this.#byKey.delete(lru.key);
      lru.forgotten = true;
    }
    const kept = retainedKey(key);
    const b = new KeyBreaker(kept);
    this.#byKey.set(kept, b);
    this.#closed.push(b);
    return b;
  }

  #admitNotClosed(b: KeyBreaker): BreakerTicket | LamplighterError {
    const now = this.#clock();
    if (b.state === State.Open && now >= b.openUntil) this.#halfOpen(b);
    if (b.state === State.HalfOpen) {
      if (b.probesOut + b.probesPassed < this.#spec.halfOpenProbes) {
        b.probesOut++;
        return new Ticket(this, b, true);
      }
      return this.#refusal(b, 1, 'is letting a few probe requests through (half-open)');
    }
    return this.#refusal(b, Math.max(1, Math.ceil((b.openUntil - now) / 1000)), 'is open after failures');
  }

  #refusal(b: KeyBreaker, retryAfter: number, why: string): LamplighterError {
    // Refusals come in floods while a breaker is open; one error per key and second will do.
    if (b.refusal && b.refusalRetryAfter === retryAfter) return b.refusal;
    const which = this.#spec.partition.kind === 'none' ? '' : ` with ${this.partition} ${JSON.stringify(b.key)}`;
    b.refusal = new LamplighterError(
      ErrorCodes.BREAKER_OPEN,
      `Function '${this.functionName}' is refusing requests${which}: its circuit breaker ${why}; retry in ${retryAfter} s`,
      { retryAfter, detail: { function: this.functionName, partition: this.partition, key: b.key } },
    );
    b.refusalRetryAfter = retryAfter;
    return b.refusal;
  }

  #open(b: KeyBreaker, now: number, until = now + this.#spec.openForMs): void {
    if (b.state === State.Closed) {
      if (b !== this.#overflow) this.#closed.remove(b);
    } else {
      this.#notClosed.remove(b);
    }
    b.state = State.Open;
    b.epoch++;
    b.openUntil = until;
    b.probesOut = b.probesPassed = 0;
    b.refusal = undefined;
    this.#notClosed.insertByOpenUntil(b);
    this.#transitioned('open');
  }

  #halfOpen(b: KeyBreaker): void {
    b.state = State.HalfOpen;
    b.epoch++;
    b.probesOut = b.probesPassed = 0;
    b.refusal = undefined;
    this.#transitioned('half_open');
  }

  /** Closes `b`; an idle one goes first in line to be forgotten, one a probe closed last. */
  #close(b: KeyBreaker, idle: boolean): void {
    this.#notClosed.remove(b);
    b.state = State.Closed;
    b.epoch++;
    b.clearCounts();
    b.refusal = undefined;
    if (b !== this.#overflow) {
      if (idle) this.#closed.unshift(b);
      else this.#closed.push(b);
    }
    this.#transitioned('closed');
  }

  #transitioned(to: BreakerState): void {
    this.#metrics?.breakerTransition(this.functionName, to);
    if (this.#closedForGood) return;
    const open = this.#notClosed.length;
    if (open !== this.#openReported) {
      this.#metrics?.breakerOpenKeys(this.functionName, open - this.#openReported);
      this.#openReported = open;
    }
    if (open > 0 && !this.#sweepTimer && this.#sweepIntervalMs > 0) this.#armSweep();
  }

  #armSweep(): void {
    this.#sweepTimer = setTimeout(() => {
      this.#sweepTimer = undefined;
      this.#sweep(this.#clock());
      if (this.#notClosed.length > 0 && !this.#closedForGood) this.#armSweep();
    }, this.#sweepIntervalMs);
    this.#sweepTimer.unref();
  }

  /**
   * Open breakers past open_for turn half-open; half-open ones that no request probed for a
   * further open_for close (nothing left to judge them by), so an abandoned key cannot hold a
   * partition, or the gauge, forever. The list is ordered by openUntil, so the walk stops early.
   */
  #sweep(now: number): void {
    let b = this.#notClosed.head;
    while (b && b.openUntil <= now) {
      const next = b.next;
      if (b.state === State.Open) this.#halfOpen(b);
      if (b.probesOut === 0 && now >= b.openUntil + this.#spec.openForMs) this.#close(b, true);
      b = next;
    }
  }
}

/** One admitted request; its outcome counts once, and only toward the state it was admitted in. */
class Ticket implements BreakerTicket {
  readonly #gate: PartitionedBreakers;
  readonly #breaker: KeyBreaker;
  readonly #epoch: number;
  readonly #probe: boolean;
  #done = false;

  constructor(gate: PartitionedBreakers, breaker: KeyBreaker, probe: boolean) {
    this.#gate = gate;
    this.#breaker = breaker;
    this.#epoch = breaker.epoch;
    this.#probe = probe;
  }

  done(outcome: CallOutcome): void {
    if (this.#done) return;
    this.#done = true;
    this.#gate._report(this.#breaker, this.#epoch, this.#probe, outcome);
  }
}

/** The breakers of `spec`'s function, or undefined when its manifest has no `[function.breaker]`. */
export function createBreakerGate(spec: FunctionSpec, options: BreakerGateOptions = {}): PartitionedBreakers | undefined {
  return spec.breaker === undefined ? undefined : new PartitionedBreakers(spec.name, spec.breaker, options);
}
