// Process groups after Erlang's pg: what a discovery scope offers, embedded (in memory) or over NATS.
//
// Each node is authoritative for its own members only; there is no global lock. Reads
// (`members`, `localMembers`) are answered from local memory. A node that joins asks the others
// for their members; a node silent past `downAfterMs` is dropped with all its members; after a
// partition heals, each side replaces its view of the other wholesale.

/** A JSON value a member may carry (its address, free capacity). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** What a member carries; replaced wholesale by {@link DiscoveryScope.update}. */
export type MemberData = Readonly<Record<string, JsonValue>>;

/** One member of a group, as every node sees it. */
export interface Member {
  /** The member's id, unique on its node (e.g. an instance id). */
  readonly id: string;
  /** The node that owns the member. */
  readonly node: string;
  readonly data: MemberData;
}

/** A change to one group: members that joined, left, or carry new data. */
export interface GroupEvent {
  readonly kind: 'join' | 'leave' | 'update';
  readonly group: string;
  /** The members concerned; a member joined twice and left once appears once in a leave. */
  readonly members: readonly Member[];
}

/** What `monitor` returns: the members at that moment, and a way to stop the events that follow. */
export interface GroupMonitor {
  readonly members: readonly Member[];
  stop(): void;
}

/** A node of the scope, as this node sees it. */
export interface PeerNode {
  readonly name: string;
  /** `Date.now()` of its last heartbeat (this node's own: now). */
  readonly lastHeartbeat: number;
  /** True for this node. */
  readonly self: boolean;
}

/** Timing of a scope. */
export interface DiscoveryTiming {
  /** How often a node says it is alive, in ms. @default 1000 */
  heartbeatMs?: number;
  /** A node not heard from for this long is dropped with its members, in ms. @default 3000 */
  downAfterMs?: number;
}

/** One scope of process groups, as one node sees it. */
export interface DiscoveryScope {
  readonly scope: string;
  /** This node's name. */
  readonly node: string;
  /** Adds a local member to `group`; a member may join more than once and must leave as often. */
  join(group: string, id: string, data?: MemberData): void;
  /** Removes one join of a local member; false when it had none. */
  leave(group: string, id: string): boolean;
  /** Replaces the data of a local member (every join of it); others see it soon, coalesced. */
  update(group: string, id: string, data: MemberData): void;
  /** Every member of `group` on every node known, from local memory; one entry per join. */
  members(group: string): readonly Member[];
  /** This node's members of `group`; one entry per join. */
  localMembers(group: string): readonly Member[];
  /** Groups with at least one member. */
  groups(): string[];
  /**
   * The members of `group` now and every later change, atomically: no event is lost or doubled
   * between the snapshot and the first event.
   */
  monitor(group: string, listener: (event: GroupEvent) => void): GroupMonitor;
  /** Like {@link monitor}, for every group of the scope; the snapshot is by group. */
  monitorScope(listener: (event: GroupEvent) => void): { readonly groups: ReadonlyMap<string, readonly Member[]>; stop(): void };
  /** The nodes this node knows, itself included. */
  nodes(): readonly PeerNode[];
  /** Leaves every local member (telling the others) and stops. */
  close(): Promise<void>;
}

/** Kinds of discovery events, one per {@link GroupEvent} or node change; counted in a metric. */
export type DiscoveryEventKind = 'join' | 'leave' | 'update' | 'node_up' | 'node_down' | 'sync' | 'malformed';

/** Default {@link DiscoveryTiming.heartbeatMs}. */
export const DEFAULT_HEARTBEAT_MS = 1000;
/** Default {@link DiscoveryTiming.downAfterMs}. */
export const DEFAULT_DOWN_AFTER_MS = 3000;
/** Default scope name. */
export const DEFAULT_SCOPE = 'default';
/** Updates of one member are sent at most this often, in ms: capacity figures change per request. */
export const UPDATE_COALESCE_MS = 50;
