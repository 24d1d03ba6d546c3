// Breakers judged across the cluster: the breaker protocol over core NATS, for every function attached on this node.
//
// Subjects, under `lamplighter.breaker.<scope>`:
//   `.node.<node>`     to one node (as the owner of some keys): report, probe
//   `.fn.<function>`   to every node serving the function: decision
// Each function's nodes are the members of the discovery group `breakers:<function>`.
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { PartitionedBreakers } from '../admission/breaker/index.js';
import type { DiscoveryScope } from '../discovery/index.js';
import { FunctionCluster, type BreakerClusterEvent, type ClusterDecision, type ClusterLink } from './function-cluster.js';
import { decodeMessage, encodeMessage, type BreakerMessage } from './wire.js';

/** Default {@link ClusterBreakersOptions.reportIntervalMs}. */
export const DEFAULT_REPORT_INTERVAL_MS = 250;
/** Default {@link ClusterBreakersOptions.refreshMs}. */
export const DEFAULT_REFRESH_MS = 1000;
/** Default {@link ClusterBreakersOptions.decisionMarginMs}. */
export const DEFAULT_DECISION_MARGIN_MS = 5000;

/** Options for {@link ClusterBreakers}. */
export interface ClusterBreakersOptions {
  /** How often this node sends each key's owner its counts, in ms. @default 250 */
  reportIntervalMs?: number;
  /** How often an owner sends its live decisions again (lost messages, nodes that came later), in ms. @default 1000 */
  refreshMs?: number;
  /**
   * How long a decision outlives its open time on each node (a closed decision: this long) before
   * it expires and the node decides alone until its owner speaks again, in ms. @default 5000
   */
  decisionMarginMs?: number;
  /** Wall clock in ms; must be the gates' clock, since bucket starts are compared across nodes. @default Date.now */
  clock?: () => number;
  /** Told of every message sent, taken in or dropped, for metrics. @default none */
  onEvent?: (kind: BreakerClusterEvent) => void;
}

/** The discovery group of the nodes serving `fn` with breakers. */
export function breakerGroup(fn: string): string {
  return `breakers:${fn}`;
}

/** The subject prefix of the breaker protocol in a discovery scope. */
export function breakerSubject(scope: string): string {
  return `lamplighter.breaker.${subjectToken(scope)}`;
}

/**
 * One node's part in judging breakers across the cluster. Each attached function's gate keeps
 * answering every request from local memory; this sends its counts to each key's owner on a
 * timer, judges the keys this node owns, and applies the owners' decisions to the gate.
 * The caller owns the connection and the scope, and closes them after this.
 */
export class ClusterBreakers {
  /** This node's name (the scope's). */
  readonly node: string;
  readonly #nc: NatsConnection;
  readonly #scope: DiscoveryScope;
  readonly #base: string;
  readonly #clock: () => number;
  readonly #onEvent: ((kind: BreakerClusterEvent) => void) | undefined;
  readonly #functions = new Map<string, { cluster: FunctionCluster; subscription: Subscription }>();
  readonly #counts = new Map<BreakerClusterEvent, number>();
  readonly #link: ClusterLink;
  readonly #inbox: Subscription;
  readonly #timer: NodeJS.Timeout;
  readonly #timing: { marginMs: number; refreshMs: number };
  #closed = false;

  constructor(nc: NatsConnection, scope: DiscoveryScope, options: ClusterBreakersOptions = {}) {
    this.node = scope.node;
    this.#nc = nc;
    this.#scope = scope;
    this.#base = breakerSubject(scope.scope);
    this.#clock = options.clock ?? Date.now;
    this.#onEvent = options.onEvent;
    this.#timing = { marginMs: options.decisionMarginMs ?? DEFAULT_DECISION_MARGIN_MS, refreshMs: options.refreshMs ?? DEFAULT_REFRESH_MS };
    this.#link = {
      node: this.node,
      nodes: (fn) => this.#nodesOf(fn),
      send: (node, message) => this.#publish(`${this.#base}.node.${subjectToken(node)}`, message),
      broadcast: (message) => this.#publish(`${this.#base}.fn.${subjectToken(message.fn)}`, message),
      count: (kind) => this.#count(kind),
    };
    this.#inbox = nc.subscribe(`${this.#base}.node.${subjectToken(this.node)}`, {
      callback: (err, msg) => this.#receive(err, msg as Msg | undefined, undefined),
    });
    this.#timer = setInterval(() => this.#tick(), options.reportIntervalMs ?? DEFAULT_REPORT_INTERVAL_MS);
    this.#timer.unref();
  }

  /**
   * Takes part in the cluster for `gate`'s function: joins its discovery group, reports its
   * counts, applies decisions to it, until the gate closes (the revision goes) or the returned
   * detach is called. A newer revision's gate may be attached before the older one closes; the
   * newest serves.
   */
  attach(gate: PartitionedBreakers): () => void {
    if (this.#closed || gate.closed) return () => {};
    const fn = gate.functionName;
    let entry = this.#functions.get(fn);
    if (!entry) {
      const cluster = new FunctionCluster(fn, this.#link, this.#timing, this.#clock);
      const subscription = this.#nc.subscribe(`${this.#base}.fn.${subjectToken(fn)}`, {
        callback: (err, msg) => this.#receive(err, msg as Msg | undefined, fn),
      });
      entry = { cluster, subscription };
      this.#functions.set(fn, entry);
      this.#scope.join(breakerGroup(fn), this.node);
    }
    entry.cluster.add(gate);
    const attached = entry;
    let detached = false;
    const detach = (): void => {
      if (detached) return;
      detached = true;
      attached.cluster.remove(gate);
      if (!attached.cluster.empty || this.#functions.get(fn) !== attached) return;
      this.#functions.delete(fn);
      this.#release(fn, attached);
    };
    gate.whenClosed(detach);
    return detach;
  }

  /** The live decision this node knows for `key` of `fn`, or undefined (the key is judged locally). */
  decision(fn: string, key: string): ClusterDecision | undefined {
    return this.#functions.get(fn)?.cluster.decision(key);
  }

  /** How many messages were sent, taken in and dropped, by kind. */
  stats(): Partial<Record<BreakerClusterEvent, number>> {
    return Object.fromEntries(this.#counts);
  }

  /** Stops the timer and every subscription and leaves the groups; the gates go on deciding alone. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#unsubscribe(this.#inbox);
    for (const [fn, entry] of this.#functions) this.#release(fn, entry);
    this.#functions.clear();
  }

  #release(fn: string, entry: { cluster: FunctionCluster; subscription: Subscription }): void {
    entry.cluster.close();
    this.#unsubscribe(entry.subscription);
    try {
      this.#scope.leave(breakerGroup(fn), this.node);
    } catch {
      // The scope closed first: its members left with it.
    }
  }

  #nodesOf(fn: string): readonly string[] {
    const nodes = new Set<string>([this.node]);
    for (const m of this.#scope.members(breakerGroup(fn))) nodes.add(m.node);
    return [...nodes];
  }

  #tick(): void {
    for (const { cluster } of this.#functions.values()) {
      try {
        cluster.tick();
      } catch {
        this.#count('error');
      }
    }
  }

  /** A message on this node's inbox (`fn` undefined) or a function's decision subject. */
  #receive(err: Error | null, msg: Msg | undefined, fn: string | undefined): void {
    // An error comes without a message (a permissions violation, the subscription closing).
    if (err || !msg) {
      this.#count('error');
      return;
    }
    try {
      const message = decodeMessage(msg.data);
      if (!message) {
        this.#count('malformed');
        return;
      }
      // Decisions come only on their function's subject, reports and probes only to an inbox.
      const entry = this.#functions.get(message.fn);
      if (!entry || (fn === undefined) !== (message.kind !== 'decision') || (fn !== undefined && fn !== message.fn)) {
        this.#count('foreign');
        return;
      }
      if (message.kind === 'report') entry.cluster.receiveReport(message);
      else if (message.kind === 'probe') entry.cluster.receiveProbe(message);
      else if (message.from !== this.node) entry.cluster.receiveDecisions(message);
    } catch {
      this.#count('error');
    }
  }

  #publish(subject: string, message: BreakerMessage): void {
    try {
      this.#nc.publish(subject, encodeMessage(message));
    } catch {
      // A closed or draining connection: the others will do without this node's word.
      this.#count('unsent');
    }
  }

  #unsubscribe(subscription: Subscription): void {
    try {
      subscription.unsubscribe();
    } catch {
      // The connection closed first.
    }
  }

  #count(kind: BreakerClusterEvent): void {
    this.#counts.set(kind, (this.#counts.get(kind) ?? 0) + 1);
    try {
      this.#onEvent?.(kind);
    } catch {
      // Counting is best effort.
    }
  }
}

// A name made one subject token: no dots, wildcards or white space.
function subjectToken(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, (ch) => `%${ch.codePointAt(0)!.toString(16).padStart(2, '0')}`);
}
