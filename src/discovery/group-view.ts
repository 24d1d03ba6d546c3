// One node's table of every group's members, by owning node, with its monitors and their events.
import type { DiscoveryEventKind, GroupEvent, GroupMonitor, JsonValue, Member, MemberData } from './discovery.js';

/** A member's joins on its node: how many, and the data every one of them carries. */
export interface MemberEntry {
  readonly count: number;
  readonly data: MemberData;
}

/** One node's members: group → member id → entry. */
export type NodeTable = Map<string, Map<string, MemberEntry>>;

/** A wanted state of one member of one node; count 0 removes it. */
export interface MemberChange {
  readonly group: string;
  readonly id: string;
  readonly count: number;
  readonly data: MemberData;
}

interface StoredEntry {
  count: number;
  member: Member;
}

type Listener = (event: GroupEvent) => void;

interface Subscription {
  readonly listener: Listener;
  active: boolean;
}

/** Every group's members, as one node sees them; every change becomes events for its monitors. */
export class GroupView {
  /** node → group → id → entry */
  readonly #tables = new Map<string, Map<string, Map<string, StoredEntry>>>();
  /** group → nodes with members in it; what `members` walks. */
  readonly #groupNodes = new Map<string, Set<string>>();
  readonly #membersCache = new Map<string, readonly Member[]>();
  readonly #groupSubs = new Map<string, Set<Subscription>>();
  readonly #scopeSubs = new Set<Subscription>();
  /** Events wait here so that a listener that changes the view does not reorder what others see. */
  readonly #queue: Array<{ event: GroupEvent; subs: Subscription[] }> = [];
  #delivering = false;
  readonly #count: (kind: DiscoveryEventKind) => void;

  constructor(count: (kind: DiscoveryEventKind) => void) {
    this.#count = count;
  }

  /** One entry per join, every node. */
  members(group: string): readonly Member[] {
    const cached = this.#membersCache.get(group);
    if (cached) return cached;
    const nodes = this.#groupNodes.get(group);
    const list: Member[] = [];
    if (nodes) for (const node of nodes) this.#expand(node, group, list);
    const frozen = Object.freeze(list);
    this.#membersCache.set(group, frozen);
    return frozen;
  }

  /** One entry per join, of `node` only. */
  nodeMembers(node: string, group: string): readonly Member[] {
    const list: Member[] = [];
    this.#expand(node, group, list);
    return Object.freeze(list);
  }

  groups(): string[] {
    return [...this.#groupNodes.keys()];
  }

  /** The entry of one member of one node, if it has joined. */
  entry(node: string, group: string, id: string): MemberEntry | undefined {
    const stored = this.#tables.get(node)?.get(group)?.get(id);
    return stored ? { count: stored.count, data: stored.member.data } : undefined;
  }

  /** A copy of one node's table, as a sync carries it. */
  table(node: string): NodeTable {
    const out: NodeTable = new Map();
    for (const [group, ids] of this.#tables.get(node) ?? []) {
      const copy = new Map<string, MemberEntry>();
      for (const [id, stored] of ids) copy.set(id, { count: stored.count, data: stored.member.data });
      out.set(group, copy);
    }
    return out;
  }

  /** Sets members of `node` to the given states, then tells monitors what changed. */
  apply(node: string, changes: Iterable<MemberChange>): void {
    const events = new Map<string, { join: Member[]; leave: Member[]; update: Member[] }>();
    for (const change of changes) this.#applyOne(node, change, events);
    this.#emit(events);
  }

  /** Replaces everything known of `node` by `table` (empty: the node is gone), emitting the difference. */
  replace(node: string, table: NodeTable): void {
    const changes: MemberChange[] = [];
    const old = this.#tables.get(node);
    if (old) {
      for (const [group, ids] of old) {
        const fresh = table.get(group);
        for (const [id, stored] of ids) {
          if (!fresh?.has(id)) changes.push({ group, id, count: 0, data: stored.member.data });
        }
      }
    }
    for (const [group, ids] of table) {
      for (const [id, entry] of ids) changes.push({ group, id, count: entry.count, data: entry.data });
    }
    this.apply(node, changes);
    if (table.size === 0) this.#tables.delete(node);
  }

  monitor(group: string, listener: Listener): GroupMonitor {
    const sub: Subscription = { listener, active: true };
    let subs = this.#groupSubs.get(group);
    if (!subs) this.#groupSubs.set(group, (subs = new Set()));
    subs.add(sub);
    return {
      members: this.members(group),
      stop: () => {
        sub.active = false;
        const current = this.#groupSubs.get(group);
        current?.delete(sub);
        if (current?.size === 0) this.#groupSubs.delete(group);
      },
    };
  }

  monitorScope(listener: Listener): { readonly groups: ReadonlyMap<string, readonly Member[]>; stop(): void } {
    const sub: Subscription = { listener, active: true };
    this.#scopeSubs.add(sub);
    const groups = new Map<string, readonly Member[]>();
    for (const group of this.#groupNodes.keys()) groups.set(group, this.members(group));
    return {
      groups,
      stop: () => {
        sub.active = false;
        this.#scopeSubs.delete(sub);
      },
    };
  }

  #expand(node: string, group: string, into: Member[]): void {
    const ids = this.#tables.get(node)?.get(group);
    if (!ids) return;
    for (const stored of ids.values()) for (let i = 0; i < stored.count; i++) into.push(stored.member);
  }

  #applyOne(
    node: string,
    change: MemberChange,
    events: Map<string, { join: Member[]; leave: Member[]; update: Member[] }>,
  ): void {
    const { group, id } = change;
    let groups = this.#tables.get(node);
    const ids = groups?.get(group);
    const stored = ids?.get(id);
    const oldCount = stored?.count ?? 0;
    const newCount = Math.max(0, Math.floor(change.count));
    const dataChanged = stored !== undefined && newCount > 0 && !sameData(stored.member.data, change.data);
    if (oldCount === newCount && !dataChanged) return;
    let bucket = events.get(group);
    if (!bucket) events.set(group, (bucket = { join: [], leave: [], update: [] }));
    this.#membersCache.delete(group);
    if (newCount === 0) {
      for (let i = 0; i < oldCount; i++) bucket.leave.push(stored!.member);
      ids!.delete(id);
      if (ids!.size === 0) {
        groups!.delete(group);
        const nodes = this.#groupNodes.get(group);
        nodes?.delete(node);
        if (nodes?.size === 0) this.#groupNodes.delete(group);
      }
      return;
    }
    const member: Member = dataChanged || !stored ? Object.freeze({ id, node, data: change.data }) : stored.member;
    if (dataChanged) for (let i = 0; i < Math.min(oldCount, newCount); i++) bucket.update.push(member);
    for (let i = newCount; i < oldCount; i++) bucket.leave.push(stored!.member);
    for (let i = oldCount; i < newCount; i++) bucket.join.push(member);
    if (stored) {
      stored.count = newCount;
      stored.member = member;
      return;
    }
    if (!groups) this.#tables.set(node, (groups = new Map()));
    let target = ids;
    if (!target) groups.set(group, (target = new Map()));
    target.set(id, { count: newCount, member });
    let nodes = this.#groupNodes.get(group);
    if (!nodes) this.#groupNodes.set(group, (nodes = new Set()));
    nodes.add(node);
  }

  #emit(events: Map<string, { join: Member[]; leave: Member[]; update: Member[] }>): void {
    for (const [group, bucket] of events) {
      for (const kind of ['update', 'join', 'leave'] as const) {
        const members = bucket[kind];
        if (members.length === 0) continue;
        this.#count(kind);
        // Listeners are taken now, when the view changed: a monitor started later already has this in its snapshot.
        const subs = [...(this.#groupSubs.get(group) ?? []), ...this.#scopeSubs];
        if (subs.length > 0) this.#queue.push({ event: Object.freeze({ kind, group, members: Object.freeze(members) }), subs });
      }
    }
    this.#drain();
  }

  #drain(): void {
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      for (let next = this.#queue.shift(); next; next = this.#queue.shift()) {
        for (const sub of next.subs) {
          if (!sub.active) continue;
          try {
            sub.listener(next.event);
          } catch (err) {
            // One listener's fault must not cost the others their events nor the view its consistency.
            process.emitWarning(`a discovery monitor threw: ${(err as Error)?.message ?? String(err)}`, 'LamplighterWarning');
          }
        }
      }
    } finally {
      this.#delivering = false;
    }
  }
}

/** Deep equality of member data (JSON values). */
export function sameData(a: MemberData, b: MemberData): boolean {
  return a === b || sameJson(a, b);
}

function sameJson(a: JsonValue | MemberData, b: JsonValue | MemberData): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as JsonValue[];
    return a.length === other.length && a.every((value, i) => sameJson(value, other[i] as JsonValue));
  }
  const left = a as Record<string, JsonValue>;
  const right = b as Record<string, JsonValue>;
  const keys = Object.keys(left);
  if (keys.length !== Object.keys(right).length) return false;
  return keys.every((key) => Object.hasOwn(right, key) && sameJson(left[key] as JsonValue, right[key] as JsonValue));
}
