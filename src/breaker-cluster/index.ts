// Breakers across the cluster: each (function, key) judged by an owner node from every node's counts, with a quorum.
export { ClusterBreakers, breakerGroup, breakerSubject, DEFAULT_DECISION_MARGIN_MS, DEFAULT_REFRESH_MS, DEFAULT_REPORT_INTERVAL_MS } from './cluster-breakers.js';
export type { ClusterBreakersOptions } from './cluster-breakers.js';
export type { BreakerClusterEvent, ClusterDecision } from './function-cluster.js';
export type { Epoch } from './decision-epoch.js';
export { ownerOf } from './key-owner.js';
