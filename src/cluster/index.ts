// The cluster: nodes joined through NATS, requests forwarded between them, the view of it all.
export type { ClusterFunctionView, ClusterInstanceView, ClusterNodeView, ClusterView } from './cluster-view.js';
export { connectCluster, parseClusterUrls, DEFAULT_CONNECT_TIMEOUT_MS } from './nats-connection.js';
export type { ClusterConnectOptions, ClusterConnectionStatus } from './nats-connection.js';
