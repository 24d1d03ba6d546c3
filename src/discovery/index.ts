// Discovery: process groups after Erlang's pg, embedded (in memory) or over NATS.
export type { DiscoveryScope, DiscoveryTiming, GroupEvent, GroupMonitor, JsonValue, Member, MemberData, PeerNode } from './discovery.js';
export { DEFAULT_DOWN_AFTER_MS, DEFAULT_HEARTBEAT_MS, DEFAULT_SCOPE, UPDATE_COALESCE_MS } from './discovery.js';
export type { DiscoveryEventKind } from './discovery.js';
export { MemoryNetwork } from './memory-discovery.js';
export type { MemoryScopeOptions } from './memory-discovery.js';
export { NatsDiscovery, scopeSubject } from './nats-discovery.js';
export type { NatsDiscoveryOptions } from './nats-discovery.js';
