// One function's instances on the other nodes, read from discovery; and this node's, published there.
import type { Duplex } from 'node:stream';
import type { MemberData } from '../discovery/index.js';
import type { ForwardedResponse, FunctionPeers, PeerChoice } from '../dispatch/index.js';
import { NODE_HEADER, type InvocationRequest, type InvocationResponse } from '../instance/index.js';
import type { ClusterNode } from './cluster-node.js';

/** One local instance as the dispatcher counts it. */
export interface LocalInstanceFigure {
  id: string;
  /** Requests it can take now (0 while lighting or being put out). */
  free: number;
  ready: boolean;
}

/** What forwarding leads to: the peer's outcome, as the forwarded-requests metric counts it. */
export type ForwardOutcome = 'served' | 'unreachable' | 'failed';

/** Discovery group of a function's instances. */
export function functionGroupName(fn: string): string {
  return `fn:${fn}`;
}

/** How long after publishing a change the next is sent: bursts of requests become one message. */
const PUBLISH_DELAY_MS = 5;

/** Headers of the peer's gateway that this node's gateway sets again itself. */
const PEER_OWN_HEADERS = new Set(['x-request-id', 'x-lamplighter-cold-start', NODE_HEADER]);

/** {@link FunctionPeers} over a discovery scope: reads other nodes' members, publishes this node's. */
export class ClusterFunctionPeers implements FunctionPeers {
  readonly #node: ClusterNode;
  readonly #fn: string;
  readonly #group: string;
  readonly #figures: () => LocalInstanceFigure[];
  /** What was last published of each local instance (id → free). */
  readonly #published = new Map<string, { free: number; ready: boolean }>();
  /**
   * Prefix of this group's member ids: instance ids restart with each revision's group, and the
   * old revision's instances may still be leaving while the new one's join.
   */
  readonly #prefix: string;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(node: ClusterNode, fn: string, generation: number, figures: () => LocalInstanceFigure[]) {
    this.#node = node;
    this.#fn = fn;
    this.#prefix = `${generation}/`;
    this.#group = functionGroupName(fn);
    this.#figures = figures;
  }

  /** Room per other node: free capacity less what this node has forwarded there and not yet heard back. */
  #roomByNode(): Map<string, { room: number; instances: number }> {
    const byNode = new Map<string, { room: number; instances: number }>();
    for (const member of this.#node.scope.members(this.#group)) {
      if (!this.#node.takesForwards(member.node)) continue;
      const entry = byNode.get(member.node) ?? { room: 0, instances: 0 };
      entry.instances++;
      const free = member.data.free;
      if (typeof free === 'number') entry.room += free;
      byNode.set(member.node, entry);
    }
    for (const [node, entry] of byNode) entry.room -= this.#node.inFlightTo(node, this.#fn);
    return byNode;
  }

  withRoom(): PeerChoice | undefined {
    let best: { node: string; room: number } | undefined;
    for (const [node, { room }] of this.#roomByNode()) if (room > 0 && (!best || room > best.room)) best = { node, room };
    return best && this.#node.choice(best.node);
  }

  withInstances(): PeerChoice | undefined {
    let best: { node: string; room: number } | undefined;
    for (const [node, { room, instances }] of this.#roomByNode()) if (instances > 0 && (!best || room > best.room)) best = { node, room };
    return best && this.#node.choice(best.node);
  }

  remoteInstances(): number {
    let n = 0;
    for (const member of this.#node.scope.members(this.#group)) if (member.node !== this.#node.name && this.#node.isHealthy(member.node)) n++;
    return n;
  }

  yieldsExcess(): boolean {
    // The node with the greatest name among those running the function puts out the excess.
    let last = this.#published.size > 0 || this.#figures().length > 0 ? this.#node.name : '';
    for (const member of this.#node.scope.members(this.#group)) if (this.#node.isHealthy(member.node) && member.node > last) last = member.node;
    return last === this.#node.name;
  }

  async forward(peer: PeerChoice, request: InvocationRequest): Promise<ForwardedResponse> {
    const done = this.#node.forwardStarted(peer.node, this.#fn);
    let response: InvocationResponse;
    try {
      response = await this.#node.forwarder.forward(peer.address, request);
    } catch (err) {
      done(this.#node.isUnreachable(err) ? 'unreachable' : 'failed');
      throw err;
    }
    done('served');
    let coldStart = false;
    let node = peer.node;
    const headers: InvocationResponse['headers'] = [];
    for (const pair of response.headers) {
      const lower = pair[0].toLowerCase();
      if (!PEER_OWN_HEADERS.has(lower)) headers.push(pair);
      else if (lower === 'x-lamplighter-cold-start') coldStart = pair[1] === 'true';
      else if (lower === NODE_HEADER) node = pair[1];
    }
    return { response: { status: response.status, headers, body: response.body }, coldStart, node };
  }

  async upgrade(peer: PeerChoice, request: InvocationRequest, socket: Duplex, head: Buffer): Promise<number> {
    const done = this.#node.forwardStarted(peer.node, this.#fn);
    try {
      const status = await this.#node.forwarder.upgrade(peer.address, request, socket, head);
      done('served');
      return status;
    } catch (err) {
      done(this.#node.isUnreachable(err) ? 'unreachable' : 'failed');
      throw err;
    }
  }

  isUnreachable(err: unknown): boolean {
    return this.#node.isUnreachable(err);
  }

  changed(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.publish();
    }, PUBLISH_DELAY_MS);
    this.#timer.unref();
  }

  /** Brings this node's members of the function's group in line with its instances now. */
  publish(): void {
    if (this.#closed || !this.#node.announced) return;
    const scope = this.#node.scope;
    const seen = new Set<string>();
    for (const figure of this.#figures()) {
      const { free, ready } = figure;
      const id = this.#prefix + figure.id;
      seen.add(id);
      const last = this.#published.get(id);
      const data: MemberData = { address: this.#node.address, free, ready };
      if (!last) scope.join(this.#group, id, data);
      else if (last.free !== free || last.ready !== ready) scope.update(this.#group, id, data);
      this.#published.set(id, { free, ready });
    }
    for (const id of this.#published.keys()) {
      if (seen.has(id)) continue;
      scope.leave(this.#group, id);
      this.#published.delete(id);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const id of this.#published.keys()) this.#node.scope.leave(this.#group, id);
    this.#published.clear();
    this.#node.forget(this);
  }
}
