// The cluster: nodes joined through NATS, requests forwarded between them, the view of it all.
export type { ClusterFunctionView, ClusterInstanceView, ClusterNodeView, ClusterView } from './cluster-view.js';
