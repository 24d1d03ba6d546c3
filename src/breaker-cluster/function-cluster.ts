// One function's part in the breaker protocol on one node: its reports, its judgement of the keys it owns, the decisions it applies.
import { OVERFLOW_KEY, type PartitionedBreakers } from '../admission/breaker/index.js';
import { compareEpochs, nextEpoch, type Epoch } from './decision-epoch.js';
import { ownerOf } from './key-owner.js';
import { OwnerLedger } from './owner-ledger.js';
import { MAX_KEYS_PER_MESSAGE, WIRE_VERSION, type Decision, type DecisionMessage, type ProbeMessage, type ReportedKey, type ReportMessage } from './wire.js';

/** What the protocol counts: messages sent and taken in, and those dropped, by why. */
export type BreakerClusterEvent =
  | 'report_sent'
  | 'report_received'
  | 'probe_sent'
  | 'decision_sent'
  | 'decision_applied'
  | 'malformed'
  | 'foreign'
  | 'stale'
  | 'dropped'
  | 'unsent'
  | 'error';

/** How a function's part reaches the others; implemented over NATS by ClusterBreakers. */
export interface ClusterLink {
  /** This node's name. */
  readonly node: string;
  /** Names of the nodes serving the function (this one included), from the discovery view. */
  nodes(fn: string): readonly string[];
  /** A report or probe to one node. */
  send(node: string, message: ReportMessage | ProbeMessage): void;
  /** Decisions to every node serving the function. */
  broadcast(message: DecisionMessage): void;
  /** Counts an event for stats and metrics. */
  count(kind: BreakerClusterEvent): void;
}

/** Timing of the protocol. */
export interface ProtocolTiming {
  /** How long a decision is kept after its open time ends (closed ones: this long), in ms. */
  marginMs: number;
  /** How often an owner sends its live decisions again, in ms. */
  refreshMs: number;
}

/** The newest decision a node knows about a key, as a status would show it. */
export interface ClusterDecision {
  state: 'open' | 'closed';
  epoch: Epoch;
  /** Open: ms before it turns half-open; 0 once past (or closed). */
  leftMs: number;
  /** Ms before the node forgets the decision (its TTL) and the key is judged afresh. */
  expiresInMs: number;
}

interface KnownDecision {
  epoch: Epoch;
  state: 'open' | 'closed';
  openUntil: number;
  expiresAt: number;
}

interface PendingProbe {
  key: string;
  epoch: Epoch;
  passed: boolean;
}

/** Probe outcomes waiting to be sent at most; past it they are dropped (the owner's decision expires anyway). */
const MAX_PENDING_PROBES = 1000;

/** One function's breakers as one node takes part in the cluster. */
export class FunctionCluster {
  readonly fn: string;
  readonly #link: ClusterLink;
  readonly #timing: ProtocolTiming;
  readonly #clock: () => number;
  /** Gates of the function's revisions on this node; the last attached is the one that serves. */
  readonly #gates: PartitionedBreakers[] = [];
  /** The newest live decision per key, from whichever owner took it. */
  readonly #known = new Map<string, KnownDecision>();
  #ledger: OwnerLedger | undefined;
  #probes: PendingProbe[] = [];
  #probeFlush: NodeJS.Immediate | undefined;
  #lastRefresh = 0;
  readonly #probeListener = { probeEnded: (key: string, passed: boolean): void => this.#probeEnded(key, passed) };

  constructor(fn: string, link: ClusterLink, timing: ProtocolTiming, clock: () => number) {
    this.fn = fn;
    this.#link = link;
    this.#timing = timing;
    this.#clock = clock;
  }

  /** The gate serving the function now. */
  get gate(): PartitionedBreakers | undefined {
    return this.#gates.at(-1);
  }

  /** True when no revision's gate is attached. */
  get empty(): boolean {
    return this.#gates.length === 0;
  }

  /** A revision's gate; it serves from now on, and live open decisions apply to it too. */
  add(gate: PartitionedBreakers): void {
    this.gate?.setProbeListener(undefined);
    this.#gates.push(gate);
    gate.setProbeListener(this.#probeListener);
    if (!this.#ledger || this.#ledger.maxKeys !== gate.spec.maxKeys) this.#ledger = new OwnerLedger(gate.spec.maxKeys);
    const now = this.#clock();
    for (const [key, d] of this.#known) {
      if (d.state === 'open' && d.openUntil > now) gate.applyRemote(key, { state: 'open', openForMs: d.openUntil - now });
    }
  }

  /** Takes a revision's gate out; the one attached before it serves again. */
  remove(gate: PartitionedBreakers): void {
    const at = this.#gates.lastIndexOf(gate);
    if (at < 0) return;
    gate.setProbeListener(undefined);
    this.#gates.splice(at, 1);
    this.gate?.setProbeListener(this.#probeListener);
  }

  /** The live decision known for `key`, if any. */
  decision(key: string): ClusterDecision | undefined {
    const now = this.#clock();
    const d = this.#live(key, now);
    if (!d) return undefined;
    return { state: d.state, epoch: d.epoch, leftMs: Math.max(0, d.openUntil - now), expiresInMs: d.expiresAt - now };
  }

  /** Once per report interval: forgets expired decisions, reports counts to owners, repeats live decisions. */
  tick(): void {
    const gate = this.gate;
    if (!gate) return;
    const now = this.#clock();
    for (const [key, d] of this.#known) if (d.expiresAt <= now) this.#known.delete(key);
    this.#ledger?.prune(now, gate.bucketMs, (key) => this.#known.has(key));
    const nodes = this.#link.nodes(this.fn);
    this.#report(gate, nodes, now);
    if (now - this.#lastRefresh >= this.#timing.refreshMs) {
      this.#lastRefresh = now;
      this.#refresh(nodes, now);
    }
  }

  /** Counts from another node (or this one) of keys it believes this node owns. */
  receiveReport(message: ReportMessage): void {
    const gate = this.gate;
    const ledger = this.#ledger;
    // A revision with another window counts in buckets of another length: not comparable.
    if (!gate || !ledger || message.bucketMs !== gate.bucketMs) {
      this.#link.count('foreign');
      return;
    }
    this.#link.count('report_received');
    const now = this.#clock();
    const spec = gate.spec;
    const rule = { bucketMs: gate.bucketMs, minRequests: spec.minRequests, failureRatio: spec.failureRatio, quorum: spec.quorum };
    const decisions: Decision[] = [];
    for (const reported of message.keys) {
      if (!ledger.record(message.from, reported)) {
        this.#link.count('stale');
        continue;
      }
      if (this.#live(reported.key, now)?.state === 'open') continue;
      if (ledger.tally(reported.key, now, rule)?.opens) decisions.push(this.#decide(reported.key, 'open', spec.openForMs, now));
    }
    this.#broadcast(decisions);
  }

  /** A node's probes decided a key under this node's (or its predecessor's) open decision. */
  receiveProbe(message: ProbeMessage): void {
    const gate = this.gate;
    const now = this.#clock();
    const d = this.#live(message.key, now);
    if (!gate || !d || d.state !== 'open' || compareEpochs(message.epoch, d.epoch) !== 0) {
      // Not under the decision in force: a probe of a breaker opened locally, or one already answered.
      this.#link.count('stale');
      return;
    }
    this.#broadcast([this.#decide(message.key, message.passed ? 'closed' : 'open', gate.spec.openForMs, now)]);
  }

  /** Decisions from a key's owner; each applies only if newer than the one known. */
  receiveDecisions(message: DecisionMessage): void {
    const now = this.#clock();
    for (const d of message.decisions) {
      if (this.#apply(d, now)) this.#link.count('decision_applied');
    }
  }

  /** Stops the probe flush and lets go of the gates. */
  close(): void {
    if (this.#probeFlush) clearImmediate(this.#probeFlush);
    this.#probeFlush = undefined;
    this.#probes = [];
    for (const gate of this.#gates) gate.setProbeListener(undefined);
    this.#gates.length = 0;
  }

  #live(key: string, now: number): KnownDecision | undefined {
    const d = this.#known.get(key);
    return d && d.expiresAt > now ? d : undefined;
  }

  #report(gate: PartitionedBreakers, nodes: readonly string[], now: number): void {
    const byOwner = new Map<string, ReportedKey[]>();
    for (const c of gate.snapshot(gate.spec.maxKeys)) {
      // The overflow breaker stands for different keys on each node: nothing to sum.
      if (c.buckets.length === 0 || c.key === OVERFLOW_KEY) continue;
      const owner = ownerOf(nodes, this.fn, c.key) ?? this.#link.node;
      let keys = byOwner.get(owner);
      if (!keys) byOwner.set(owner, (keys = []));
      keys.push({ key: c.key, epoch: this.#live(c.key, now)?.epoch ?? null, buckets: c.buckets.map((b) => [b.start, b.requests, b.failures] as const) });
    }
    for (const [owner, keys] of byOwner) {
      for (let at = 0; at < keys.length; at += MAX_KEYS_PER_MESSAGE) {
        const message: ReportMessage = { v: WIRE_VERSION, kind: 'report', fn: this.fn, from: this.#link.node, bucketMs: gate.bucketMs, keys: keys.slice(at, at + MAX_KEYS_PER_MESSAGE) };
        if (owner === this.#link.node) {
          this.receiveReport(message);
        } else {
          this.#link.send(owner, message);
          this.#link.count('report_sent');
        }
      }
    }
  }

  /**
   * Sends again the live decisions this node took or whose keys it owns now: heals lost messages
   * and tells newcomers. The decider keeps at it after ownership moved, since the new owner (a node
   * back from a partition) may never have heard of the decision.
   */
  #refresh(nodes: readonly string[], now: number): void {
    const decisions: Decision[] = [];
    for (const [key, d] of this.#known) {
      if (d.expiresAt <= now) continue;
      if (d.epoch[2] !== this.#link.node && ownerOf(nodes, this.fn, key) !== this.#link.node) continue;
      if (d.state === 'open' && d.openUntil <= now) continue;
      decisions.push({ key, epoch: d.epoch, state: d.state, leftMs: d.state === 'open' ? d.openUntil - now : 0 });
    }
    this.#broadcast(decisions);
  }

  #decide(key: string, state: 'open' | 'closed', openForMs: number, now: number): Decision {
    const d: Decision = { key, epoch: nextEpoch(this.#known.get(key)?.epoch, now, this.#link.node), state, leftMs: state === 'open' ? openForMs : 0 };
    this.#apply(d, now);
    return d;
  }

  #apply(d: Decision, now: number): boolean {
    const known = this.#known.get(d.key);
    if (compareEpochs(d.epoch, known?.epoch) <= 0) return false;
    const gate = this.gate;
    if (!known && gate && this.#known.size >= 2 * gate.spec.maxKeys) {
      this.#link.count('dropped');
      return false;
    }
    const openUntil = d.state === 'open' ? now + d.leftMs : now;
    this.#known.set(d.key, { epoch: d.epoch, state: d.state, openUntil, expiresAt: openUntil + this.#timing.marginMs });
    this.#ledger?.restart(d.key, d.epoch);
    gate?.applyRemote(d.key, d.state === 'open' ? { state: 'open', openForMs: d.leftMs } : { state: 'closed' });
    return true;
  }

  #broadcast(decisions: Decision[]): void {
    for (let at = 0; at < decisions.length; at += MAX_KEYS_PER_MESSAGE) {
      this.#link.broadcast({ v: WIRE_VERSION, kind: 'decision', fn: this.fn, from: this.#link.node, decisions: decisions.slice(at, at + MAX_KEYS_PER_MESSAGE) });
      this.#link.count('decision_sent');
    }
  }

  // Called from a ticket's done(), on the request path: only queue; the owner hears of it a moment later.
  #probeEnded(key: string, passed: boolean): void {
    const d = this.#live(key, this.#clock());
    // A breaker this node opened on its own thresholds is its own business.
    if (!d || d.state !== 'open' || this.#probes.length >= MAX_PENDING_PROBES) return;
    this.#probes.push({ key, epoch: d.epoch, passed });
    this.#probeFlush ??= setImmediate(() => this.#flushProbes());
  }

  #flushProbes(): void {
    this.#probeFlush = undefined;
    const probes = this.#probes;
    this.#probes = [];
    try {
      this.#sendProbes(probes);
    } catch {
      // Outside any caller that could take it; the decision's TTL covers a probe not heard.
      this.#link.count('error');
    }
  }

  #sendProbes(probes: readonly PendingProbe[]): void {
    const nodes = this.#link.nodes(this.fn);
    for (const p of probes) {
      const message: ProbeMessage = { v: WIRE_VERSION, kind: 'probe', fn: this.fn, from: this.#link.node, key: p.key, epoch: p.epoch, passed: p.passed };
      const owner = ownerOf(nodes, this.fn, p.key) ?? this.#link.node;
      if (owner === this.#link.node) {
        this.receiveProbe(message);
      } else {
        this.#link.send(owner, message);
        this.#link.count('probe_sent');
      }
    }
  }
}
