// The cluster: nodes joined through NATS, requests forwarded between them, the view of it all.
export type { ClusterFunctionView, ClusterInstanceView, ClusterNodeView, ClusterView } from './cluster-view.js';
export { connectCluster, parseClusterUrls, DEFAULT_CONNECT_TIMEOUT_MS } from './nats-connection.js';
export type { ClusterConnectOptions, ClusterConnectionStatus } from './nats-connection.js';
export { HOP_HEADER, NODE_HEADER, forwardedBy } from './forward-headers.js';
export {
  PeerForwarder,
  DEFAULT_MAX_SOCKETS_PER_PEER,
  DEFAULT_PEER_CONNECT_TIMEOUT_MS,
  DEFAULT_PEER_IDLE_TIMEOUT_MS,
} from './forwarder.js';
export type { ForwardOptions, PeerForwarderOptions } from './forwarder.js';
export { isPeerUnreachable, PeerUnreachableError } from './peer-errors.js';
export { forwardChannel } from './forward-diagnostics.js';
export type { ForwardEvent, ForwardOutcome } from './forward-diagnostics.js';
export { ClusterNode, NODES_GROUP } from './cluster-node.js';
export type { ClusterNodeOptions, Forwarder } from './cluster-node.js';
export { ClusterFunctionPeers, functionGroupName } from './function-peers.js';
export type { LocalInstanceFigure } from './function-peers.js';
export { joinCluster } from './join-cluster.js';
export type { ClusterHooks, ClusterSettings, JoinedCluster } from './join-cluster.js';
