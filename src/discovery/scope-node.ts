// The process-group protocol of one node in one scope, over any transport that carries WireMessages.
//
// Each node owns its members and numbers its deltas; receivers apply deltas in order and ask for
// a wholesale sync whenever they cannot (a gap, an unknown node, a new incarnation). Heartbeats
// carry the last sequence, so a lost delta is noticed within one heartbeat.
import { randomBytes } from 'node:crypto';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import {
  DEFAULT_DOWN_AFTER_MS,
  DEFAULT_HEARTBEAT_MS,
  UPDATE_COALESCE_MS,
  type DiscoveryEventKind,
  type DiscoveryScope,
  type DiscoveryTiming,
  type GroupEvent,
  type GroupMonitor,
  type Member,
  type MemberData,
  type PeerNode,
} from './discovery.js';
import { GroupView, sameData, type MemberEntry, type NodeTable } from './group-view.js';
import type { WireGroups, WireMessage, WireOp } from './wire.js';

/** How a node's messages reach the others. Delivery may be lost, never reordered between two nodes. */
export interface ScopeTransport {
  /** To every other node of the scope. */
  broadcast(message: WireMessage): void;
  /** To one node. */
  send(node: string, message: WireMessage): void;
  /**
   * False while no other node can hear this one: changes then need no delta, since a node that
   * appears later gets everything in the sync that answers its announcement. @default always true
   */
  hasPeers?(): boolean;
}

/** Options for {@link ScopeNode}. */
export interface ScopeNodeOptions {
  scope: string;
  node: string;
  /** @default heartbeat 1000 ms, down after 3000 ms */
  timing?: DiscoveryTiming;
  /** Told of every event, for metrics. @default none */
  onEvent?: (kind: DiscoveryEventKind) => void;
  /** Called once when the node closes or halts; `close` waits for it (to flush the goodbye). @default none */
  onClosed?: () => void | Promise<void>;
}

interface Peer {
  incarnation: string;
  /** Last delta applied. */
  seq: number;
  /** False until a sync of this incarnation arrived: deltas cannot be applied before. */
  synced: boolean;
  lastHeard: number;
  syncAskedAt: number;
}

/** Checked timing with defaults filled in. */
export function resolveTiming(timing: DiscoveryTiming = {}): Required<DiscoveryTiming> {
  const heartbeatMs = timing.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const downAfterMs = timing.downAfterMs ?? DEFAULT_DOWN_AFTER_MS;
  if (!(heartbeatMs >= 10) || !(downAfterMs >= 2 * heartbeatMs)) {
    throw new LamplighterError(
      ErrorCodes.BAD_REQUEST,
      `Cannot start discovery: heartbeat must be at least 10 ms and the drop time at least twice the heartbeat, got heartbeat ${heartbeatMs} ms, drop after ${downAfterMs} ms`,
    );
  }
  return { heartbeatMs, downAfterMs };
}

/** One node of a scope: its members, its view of the others', and the protocol keeping them in step. */
export class ScopeNode implements DiscoveryScope {
  readonly scope: string;
  readonly node: string;
  readonly #timing: Required<DiscoveryTiming>;
  readonly #incarnation = randomBytes(8).toString('hex');
  readonly #onEvent: (kind: DiscoveryEventKind) => void;
  readonly #view: GroupView;
  readonly #peers = new Map<string, Peer>();
  /** Incarnations that said goodbye; their stragglers must not bring them back. */
  readonly #departed = new Map<string, string>();
  #transport: ScopeTransport | undefined;
  #seq = 0;
  #ops: WireOp[] = [];
  #flushQueued = false;
  readonly #pendingUpdates = new Set<string>();
  #updateTimer: NodeJS.Timeout | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #checkTimer: NodeJS.Timeout | undefined;
  #lastCheck = 0;
  #closed = false;
  readonly #onClosed: (() => void | Promise<void>) | undefined;

  constructor(options: ScopeNodeOptions) {
    if (options.scope.length === 0 || options.node.length === 0) {
      throw new LamplighterError(ErrorCodes.BAD_REQUEST, 'Cannot start discovery: the scope and the node need non-empty names');
    }
    this.scope = options.scope;
    this.node = options.node;
    this.#timing = resolveTiming(options.timing);
    const onEvent = options.onEvent;
    this.#onEvent = onEvent
      ? (kind) => {
          try {
            onEvent(kind);
          } catch {
            // A metric's failure is no reason to lose a membership change.
          }
        }
      : () => {};
    this.#view = new GroupView(this.#onEvent);
    this.#onClosed = options.onClosed;
  }

  get timing(): Required<DiscoveryTiming> {
    return this.#timing;
  }

  /** True once closed or halted. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Connects the node to its transport and announces it; the others answer with their members. */
  attach(transport: ScopeTransport): void {
    this.#transport = transport;
    this.announce();
  }

  /** Broadcasts this node's members and asks every node for theirs (at start, and after a reconnect). */
  announce(): void {
    if (this.#closed) return;
    this.#flush();
    this.#transport?.broadcast({ t: 'discover', n: this.node, i: this.#incarnation, s: this.#seq, g: this.#ownGroups() });
  }

  /** Starts heartbeats and the drop check; idempotent. A node alone needs neither. */
  startTimers(): void {
    if (this.#closed || this.#heartbeatTimer) return;
    const { heartbeatMs, downAfterMs } = this.#timing;
    this.#heartbeatTimer = setInterval(() => this.#heartbeat(), heartbeatMs).unref();
    const checkMs = Math.max(5, Math.min(heartbeatMs, Math.floor(downAfterMs / 4)));
    this.#lastCheck = Date.now();
    this.#checkTimer = setInterval(() => this.#dropSilent(checkMs), checkMs).unref();
  }

  /** Stops timers without telling anyone: what a crash looks like to the others. */
  halt(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTimers();
    void Promise.resolve(this.#onClosed?.()).catch(() => {});
  }

  join(group: string, id: string, data: MemberData = {}): void {
    this.#checkOpen(group, id);
    const frozen = Object.freeze({ ...data });
    const count = (this.#view.entry(this.node, group, id)?.count ?? 0) + 1;
    this.#view.apply(this.node, [{ group, id, count, data: frozen }]);
    this.#queue({ op: 'join', group, id, data: frozen });
  }

  leave(group: string, id: string): boolean {
    this.#checkOpen(group, id);
    const entry = this.#view.entry(this.node, group, id);
    if (!entry) return false;
    this.#view.apply(this.node, [{ group, id, count: entry.count - 1, data: entry.data }]);
    this.#queue({ op: 'leave', group, id });
    return true;
  }

  update(group: string, id: string, data: MemberData): void {
    this.#checkOpen(group, id);
    const entry = this.#view.entry(this.node, group, id);
    // An update racing the member's leave has nothing left to describe.
    if (!entry || sameData(entry.data, data)) return;
    this.#view.apply(this.node, [{ group, id, count: entry.count, data: Object.freeze({ ...data }) }]);
    if (!this.#heard()) return;
    this.#pendingUpdates.add(updateKey(group, id));
    this.#updateTimer ??= setTimeout(() => this.#flushUpdates(), UPDATE_COALESCE_MS).unref();
  }

  members(group: string): readonly Member[] {
    return this.#view.members(group);
  }

  localMembers(group: string): readonly Member[] {
    return this.#view.nodeMembers(this.node, group);
  }

  groups(): string[] {
    return this.#view.groups();
  }

  monitor(group: string, listener: (event: GroupEvent) => void): GroupMonitor {
    return this.#view.monitor(group, listener);
  }

  monitorScope(listener: (event: GroupEvent) => void): { readonly groups: ReadonlyMap<string, readonly Member[]>; stop(): void } {
    return this.#view.monitorScope(listener);
  }

  nodes(): readonly PeerNode[] {
    const now = Date.now();
    const list: PeerNode[] = [{ name: this.node, lastHeartbeat: now, self: true }];
    for (const [name, peer] of this.#peers) list.push({ name, lastHeartbeat: peer.lastHeard, self: false });
    return list;
  }

  /** Tells the others this node leaves with all its members (one message), and stops. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#stopTimers();
    this.#closed = true;
    this.#transport?.broadcast({ t: 'bye', n: this.node, i: this.#incarnation });
    await this.#onClosed?.();
  }

  /** Handles one message from another node. */
  receive(message: WireMessage): void {
    if (this.#closed || message.n === this.node) return;
    const now = Date.now();
    if (this.#departed.get(message.n) === message.i) return;
    let peer = this.#peers.get(message.n);
    if (message.t === 'bye') {
      if (peer?.incarnation === message.i) this.#drop(message.n);
      this.#departed.set(message.n, message.i);
      return;
    }
    this.#departed.delete(message.n);
    if (!peer) {
      peer = { incarnation: message.i, seq: 0, synced: false, lastHeard: now, syncAskedAt: 0 };
      this.#peers.set(message.n, peer);
      this.#onEvent('node_up');
    }
    peer.lastHeard = now;
    switch (message.t) {
      case 'hb':
        if (peer.incarnation !== message.i || !peer.synced || message.s !== peer.seq) this.#askSync(message.n, peer, now);
        return;
      case 'delta':
        if (peer.incarnation !== message.i || !peer.synced) return this.#askSync(message.n, peer, now);
        if (message.s <= peer.seq) return;
        if (message.s !== peer.seq + 1) return this.#askSync(message.n, peer, now);
        peer.seq = message.s;
        return this.#applyOps(message.n, message.ops);
      case 'sync':
        return this.#applySync(message.n, peer, message.i, message.s, message.g);
      case 'discover':
        this.#applySync(message.n, peer, message.i, message.s, message.g);
        this.#flush();
        this.#transport?.send(message.n, this.#syncMessage());
        return;
      case 'syncreq':
        this.#flush();
        this.#transport?.send(message.n, this.#syncMessage());
        if (peer.incarnation !== message.i || !peer.synced) this.#askSync(message.n, peer, now);
        return;
    }
  }

  #checkOpen(group: string, id: string): void {
    if (this.#closed) {
      throw new LamplighterError(ErrorCodes.SHUTTING_DOWN, `Discovery scope '${this.scope}' on node '${this.node}' is closed`);
    }
    if (group.length === 0 || id.length === 0) {
      throw new LamplighterError(ErrorCodes.BAD_REQUEST, `A group member needs a non-empty group and id, got group '${group}', id '${id}'`);
    }
  }

  #queue(op: WireOp): void {
    if (!this.#heard()) return;
    this.#ops.push(op);
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    // Joins made in one turn of the event loop go out as one message.
    queueMicrotask(() => this.#flush());
  }

  #heard(): boolean {
    return this.#transport?.hasPeers?.() ?? true;
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#ops.length === 0) return;
    const ops = this.#ops;
    this.#ops = [];
    this.#seq += 1;
    this.#transport?.broadcast({ t: 'delta', n: this.node, i: this.#incarnation, s: this.#seq, ops });
  }

  #flushUpdates(): void {
    this.#updateTimer = undefined;
    if (this.#closed) return;
    for (const key of this.#pendingUpdates) {
      const [group, id] = splitUpdateKey(key);
      // The data now, not as it was when the update was asked: later ones are folded in.
      const entry = this.#view.entry(this.node, group, id);
      if (entry) this.#ops.push({ op: 'update', group, id, data: entry.data });
    }
    this.#pendingUpdates.clear();
    this.#flush();
  }

  #heartbeat(): void {
    this.#flush();
    this.#transport?.broadcast({ t: 'hb', n: this.node, i: this.#incarnation, s: this.#seq });
  }

  #dropSilent(checkMs: number): void {
    const now = Date.now();
    const late = now - this.#lastCheck > 2 * checkMs + 50;
    this.#lastCheck = now;
    // After a stall of this process, heartbeats may wait unread in socket buffers: judge next time.
    if (late) return;
    for (const [name, peer] of this.#peers) {
      if (now - peer.lastHeard > this.#timing.downAfterMs) this.#drop(name);
    }
  }

  #drop(name: string): void {
    if (!this.#peers.delete(name)) return;
    this.#view.replace(name, new Map());
    this.#onEvent('node_down');
  }

  #askSync(name: string, peer: Peer, now: number): void {
    if (now - peer.syncAskedAt < this.#timing.heartbeatMs) return;
    peer.syncAskedAt = now;
    this.#transport?.send(name, { t: 'syncreq', n: this.node, i: this.#incarnation });
  }

  #applySync(name: string, peer: Peer, incarnation: string, seq: number, groups: WireGroups): void {
    // An older sync of the same incarnation, overtaken by deltas already applied, would undo them.
    if (peer.synced && peer.incarnation === incarnation && seq < peer.seq) return;
    peer.incarnation = incarnation;
    peer.seq = seq;
    peer.synced = true;
    peer.syncAskedAt = 0;
    const table: NodeTable = new Map();
    for (const [group, entries] of Object.entries(groups)) {
      const ids = new Map<string, MemberEntry>();
      for (const [id, count, data] of entries) ids.set(id, { count, data: Object.freeze(data) });
      if (ids.size > 0) table.set(group, ids);
    }
    this.#view.replace(name, table);
    this.#onEvent('sync');
  }

  #applyOps(name: string, ops: readonly WireOp[]): void {
    for (const op of ops) {
      const entry = this.#view.entry(name, op.group, op.id);
      switch (op.op) {
        case 'join':
          this.#view.apply(name, [{ group: op.group, id: op.id, count: (entry?.count ?? 0) + 1, data: Object.freeze(op.data) }]);
          break;
        case 'leave':
          if (entry) this.#view.apply(name, [{ group: op.group, id: op.id, count: entry.count - 1, data: entry.data }]);
          break;
        case 'update':
          if (entry) this.#view.apply(name, [{ group: op.group, id: op.id, count: entry.count, data: Object.freeze(op.data) }]);
          break;
      }
    }
  }

  #ownGroups(): WireGroups {
    const out: Record<string, Array<readonly [string, number, MemberData]>> = {};
    for (const [group, ids] of this.#view.table(this.node)) {
      out[group] = [...ids].map(([id, entry]) => [id, entry.count, entry.data] as const);
    }
    return out;
  }

  #syncMessage(): WireMessage {
    return { t: 'sync', n: this.node, i: this.#incarnation, s: this.#seq, g: this.#ownGroups() };
  }

  #stopTimers(): void {
    clearInterval(this.#heartbeatTimer);
    clearInterval(this.#checkTimer);
    clearTimeout(this.#updateTimer);
    this.#heartbeatTimer = undefined;
    this.#checkTimer = undefined;
    this.#updateTimer = undefined;
  }
}

function updateKey(group: string, id: string): string {
  return JSON.stringify([group, id]);
}

function splitUpdateKey(key: string): [string, string] {
  return JSON.parse(key) as [string, string];
}
