// What an owner knows of its keys: each node's latest counts per bucket, and the sum that judges a key.
import { compareEpochs, type Epoch } from './decision-epoch.js';
import type { ReportedKey, WireBucket } from './wire.js';

/** Buckets in a window, as the gates keep it. */
const WINDOW_BUCKETS = 10;

/** The thresholds a key is judged by: the function's `[function.breaker]`. */
export interface JudgeRule {
  bucketMs: number;
  minRequests: number;
  failureRatio: number;
  /** Nodes that must report failures; undefined: a majority of the reporting nodes, at least 2. */
  quorum: number | undefined;
}

/** A key's calls over the window, summed over the nodes that reported it. */
export interface Tally {
  requests: number;
  failures: number;
  /** Nodes with at least one call of the key in the window. */
  reporters: number;
  /** Nodes with at least one failure of the key in the window. */
  failingNodes: number;
  /** Failing nodes needed for the cluster to open the key. */
  required: number;
  /** True when the sum crosses the thresholds and enough nodes saw failures. */
  opens: boolean;
}

interface NodeReport {
  buckets: readonly WireBucket[];
}

interface LedgerKey {
  /** Reports from before this decision no longer count (the decision restarted the counts). */
  since: Epoch | null;
  byNode: Map<string, NodeReport>;
}

/** One function's reports as its keys' owner holds them; bounded to `maxKeys` keys. */
export class OwnerLedger {
  readonly #keys = new Map<string, LedgerKey>();

  constructor(readonly maxKeys: number) {}

  /** Keys with reports held. */
  get size(): number {
    return this.#keys.size;
  }

  /**
   * Replaces `from`'s report of a key. False when it is dropped: counted before the key's latest
   * decision (the sender has not applied it yet), or a new key while the ledger is full.
   */
  record(from: string, reported: ReportedKey): boolean {
    let entry = this.#keys.get(reported.key);
    if (!entry) {
      if (this.#keys.size >= this.maxKeys) return false;
      entry = { since: null, byNode: new Map() };
      this.#keys.set(reported.key, entry);
    }
    if (compareEpochs(reported.epoch, entry.since) < 0) return false;
    entry.byNode.set(from, { buckets: reported.buckets });
    return true;
  }

  /** A decision about `key` was taken: counts reported before it no longer count. */
  restart(key: string, epoch: Epoch): void {
    const entry = this.#keys.get(key);
    if (entry) {
      entry.since = epoch;
      entry.byNode.clear();
    } else if (this.#keys.size < this.maxKeys) {
      this.#keys.set(key, { since: epoch, byNode: new Map() });
    }
  }

  /** `key`'s calls in the window ending at `now`, summed over nodes, and whether they open it. */
  tally(key: string, now: number, rule: JudgeRule): Tally | undefined {
    const entry = this.#keys.get(key);
    if (!entry) return undefined;
    const current = Math.floor(now / rule.bucketMs);
    let requests = 0;
    let failures = 0;
    let reporters = 0;
    let failingNodes = 0;
    for (const report of entry.byNode.values()) {
      let r = 0;
      let f = 0;
      for (const [start, req, fail] of report.buckets) {
        const age = current - Math.round(start / rule.bucketMs);
        // One bucket ahead is allowed for clocks a little apart.
        if (age >= -1 && age < WINDOW_BUCKETS) {
          r += req;
          f += fail;
        }
      }
      if (r > 0) reporters++;
      if (f > 0) failingNodes++;
      requests += r;
      failures += f;
    }
    const required = rule.quorum ?? Math.max(2, Math.floor(reporters / 2) + 1);
    const opens = requests > 0 && requests >= rule.minRequests && failures >= rule.failureRatio * requests - 1e-9 && failingNodes >= required;
    return { requests, failures, reporters, failingNodes, required, opens };
  }

  /**
   * Drops reports whose every bucket has left the window, then keys with no report and no live
   * decision (`live(key)` says whether one is), so a silent node or key leaves no trace.
   */
  prune(now: number, bucketMs: number, live: (key: string) => boolean): void {
    const current = Math.floor(now / bucketMs);
    for (const [key, entry] of this.#keys) {
      for (const [node, report] of entry.byNode) {
        const newest = report.buckets.reduce((m, b) => Math.max(m, Math.round(b[0] / bucketMs)), -Infinity);
        if (current - newest >= WINDOW_BUCKETS) entry.byNode.delete(node);
      }
      if (!live(key)) {
        entry.since = null;
        if (entry.byNode.size === 0) this.#keys.delete(key);
      }
    }
  }
}
