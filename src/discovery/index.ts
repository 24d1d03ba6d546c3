// Discovery: process groups after Erlang's pg, embedded (in memory) or over NATS.
export type { DiscoveryScope, DiscoveryTiming, GroupEvent, GroupMonitor, JsonValue, Member, MemberData, PeerNode } from './discovery.js';
