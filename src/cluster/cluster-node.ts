// This node's place in the cluster: its entry in the `nodes` group, its functions' instances in
// `fn:<name>` groups, the peers' health as discovery sees it, and forwarding to them.
import type { Duplex } from 'node:stream';
import type { DiscoveryScope } from '../discovery/index.js';
import type { InvocationRequest, InvocationResponse } from '../instance/index.js';
import type { ClusterFunctionView, ClusterNodeView } from './cluster-view.js';
import { ClusterFunctionPeers, functionGroupName, type ForwardOutcome, type LocalInstanceFigure } from './function-peers.js';

/** Discovery group every node joins with its gateway's address. */
export const NODES_GROUP = 'nodes';

/** How long a peer that refused a forward is passed over, in ms: discovery drops a dead one soon after. */
const SUSPECT_FOR_MS = 1000;

/** How long a node that went silent (not one that left) is still listed, as down. */
const LIST_DOWN_FOR_MS = 10 * 60_000;

/** What forwards requests to a peer's gateway. */
export interface Forwarder {
  forward(address: string, request: InvocationRequest): Promise<InvocationResponse>;
  upgrade(address: string, request: InvocationRequest, socket: Duplex, head: Buffer): Promise<number>;
  close(): Promise<void>;
}

/** Options for {@link ClusterNode}. */
export interface ClusterNodeOptions {
  scope: DiscoveryScope;
  forwarder: Forwarder;
  /** Whether a forward's failure means nothing was sent (the request can be served elsewhere). */
  isUnreachable: (err: unknown) => boolean;
  /** Counts each forward's outcome. */
  onForward?: (fn: string, outcome: ForwardOutcome) => void;
}

/** This node in the cluster. Everything it answers comes from local memory. */
export class ClusterNode {
  readonly scope: DiscoveryScope;
  readonly forwarder: Forwarder;
  readonly #options: ClusterNodeOptions;
  readonly #peers = new Set<ClusterFunctionPeers>();
  /** Forwards in flight, by node then function. */
  readonly #inFlight = new Map<string, Map<string, number>>();
  /** Peers that refused a forward, until when (Date.now()). */
  readonly #suspect = new Map<string, number>();
  /** The gateway's address as peers reach it; set once it listens. */
  address = '';
  #announced = false;
  #draining = false;
  #generation = 0;
  /** Nodes dropped without saying they were leaving (killed, cut off), listed as down for a while. */
  readonly #down = new Map<string, { address: string | undefined; lastHeartbeat: number; since: number }>();
  readonly #nodesMonitor: { stop(): void };

  constructor(options: ClusterNodeOptions) {
    this.scope = options.scope;
    this.forwarder = options.forwarder;
    this.#options = options;
    // A node that leaves gracefully marks itself draining first; one that vanishes without it went down.
    this.#nodesMonitor = this.scope.monitor(NODES_GROUP, (event) => {
      for (const member of event.members) {
        if (member.node === this.name) continue;
        if (event.kind === 'join') this.#down.delete(member.node);
        else if (event.kind === 'leave' && member.data.draining !== true) {
          const heard = this.scope.nodes().find((n) => n.name === member.node)?.lastHeartbeat;
          const now = Date.now();
          this.#down.set(member.node, { address: typeof member.data.address === 'string' ? member.data.address : undefined, lastHeartbeat: heard ?? now, since: now });
        }
      }
    });
  }

  get name(): string {
    return this.scope.node;
  }

  /** Whether this node has said where it listens (before that it publishes no instance). */
  get announced(): boolean {
    return this.#announced;
  }

  /** Joins the `nodes` group with the gateway's address and publishes every function's instances. */
  announce(address: string): void {
    this.address = address;
    this.#announced = true;
    this.scope.join(NODES_GROUP, this.name, { address, draining: false });
    for (const peers of this.#peers) peers.publish();
  }

  /** The dispatcher's view of one function on the other nodes; `figures` reads its local instances. */
  peersFor(fn: string, figures: () => LocalInstanceFigure[]): ClusterFunctionPeers {
    const peers = new ClusterFunctionPeers(this, fn, ++this.#generation, figures);
    this.#peers.add(peers);
    if (this.#announced && !this.#draining) peers.changed();
    return peers;
  }

  /** Called by a function's peers when it closes. */
  forget(peers: ClusterFunctionPeers): void {
    this.#peers.delete(peers);
  }

  /** Whether discovery knows the node, and it has not said it is leaving. */
  isHealthy(node: string): boolean {
    if (node === this.name) return !this.#draining;
    for (const member of this.scope.members(NODES_GROUP)) if (member.node === node) return member.data.draining !== true;
    return false;
  }

  /** Whether a request may be forwarded to `node` now. */
  takesForwards(node: string): boolean {
    if (node === this.name || !this.isHealthy(node)) return false;
    const until = this.#suspect.get(node);
    if (until === undefined) return true;
    if (Date.now() < until) return false;
    this.#suspect.delete(node);
    return true;
  }

  /** Where to reach `node`, from its entry in the `nodes` group. */
  choice(node: string): { node: string; address: string } | undefined {
    for (const member of this.scope.members(NODES_GROUP)) {
      if (member.node === node && typeof member.data.address === 'string') return { node, address: member.data.address };
    }
    return undefined;
  }

  isUnreachable(err: unknown): boolean {
    return this.#options.isUnreachable(err);
  }

  /** Forwards this node has sent to `node` for `fn` and not yet seen answered. */
  inFlightTo(node: string, fn: string): number {
    return this.#inFlight.get(node)?.get(fn) ?? 0;
  }

  /** Counts a forward in flight; the returned function ends it with its outcome. */
  forwardStarted(node: string, fn: string): (outcome: ForwardOutcome) => void {
    let byFn = this.#inFlight.get(node);
    if (!byFn) this.#inFlight.set(node, (byFn = new Map()));
    byFn.set(fn, (byFn.get(fn) ?? 0) + 1);
    let ended = false;
    return (outcome) => {
      if (ended) return;
      ended = true;
      const left = (byFn.get(fn) ?? 1) - 1;
      if (left > 0) byFn.set(fn, left);
      else byFn.delete(fn);
      if (outcome === 'unreachable') this.#suspect.set(node, Date.now() + SUSPECT_FOR_MS);
      this.#options.onForward?.(fn, outcome);
    };
  }

  /**
   * Leaving gracefully: says so in the `nodes` group and withdraws every instance, so that no
   * node forwards here any more; requests in flight finish.
   */
  drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    // Left and joined again in one message, not updated: updates are coalesced, and the goodbye
    // that follows must find the others knowing this node was draining, not gone down.
    if (this.#announced) {
      this.scope.leave(NODES_GROUP, this.name);
      this.scope.join(NODES_GROUP, this.name, { address: this.address, draining: true });
    }
    for (const peers of [...this.#peers]) peers.close();
  }

  /** The nodes as discovery sees them. */
  nodeViews(): ClusterNodeView[] {
    const entries = new Map<string, { address: string | undefined; draining: boolean }>();
    for (const member of this.scope.members(NODES_GROUP)) {
      entries.set(member.node, { address: typeof member.data.address === 'string' ? member.data.address : undefined, draining: member.data.draining === true });
    }
    const views: ClusterNodeView[] = [];
    for (const peer of this.scope.nodes()) {
      const entry = entries.get(peer.name);
      // A node that left its `nodes` entry has left the cluster, though its last heartbeat lingers.
      if (!peer.self && !entry) continue;
      const draining = peer.self ? this.#draining : (entry?.draining ?? false);
      views.push({
        name: peer.name,
        address: peer.self ? this.address || undefined : entry?.address,
        healthy: !draining,
        lastHeartbeat: new Date(peer.lastHeartbeat).toISOString(),
        self: peer.self,
        draining,
      });
    }
    const now = Date.now();
    for (const [name, down] of this.#down) {
      if (now - down.since > LIST_DOWN_FOR_MS) this.#down.delete(name);
      else if (!entries.has(name)) views.push({ name, address: down.address, healthy: false, lastHeartbeat: new Date(down.lastHeartbeat).toISOString(), self: false, draining: false });
    }
    return views.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Where a function's instances run, on every node; `max` is its scale.max. */
  functionView(fn: string, max: number): ClusterFunctionView {
    const instances = this.scope.members(functionGroupName(fn)).map((m) => ({ node: m.node, id: m.id, free: typeof m.data.free === 'number' ? m.data.free : 0 }));
    instances.sort((a, b) => a.node.localeCompare(b.node) || a.id.localeCompare(b.id, undefined, { numeric: true }));
    return { name: fn, max, instances };
  }

  /** Leaves the cluster: withdraws everything, then stops discovery and forwarding. */
  async close(): Promise<void> {
    this.drain();
    this.#nodesMonitor.stop();
    await this.scope.close();
    await this.forwarder.close();
  }
}
