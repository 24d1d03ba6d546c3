// What a node knows of its cluster, as `GET /v1/cluster` and `lamplighter ls` show it.

/** One node of the cluster as this node sees it. */
export interface ClusterNodeView {
  name: string;
  /** Where peers forward requests to it (`host:port`); undefined when unknown. */
  address: string | undefined;
  /** False once it missed heartbeats past the drop time, or while it drains. */
  healthy: boolean;
  /** ISO time of its last heartbeat. */
  lastHeartbeat: string;
  /** True for the node answering. */
  self: boolean;
  /** True while it leaves gracefully: it takes no forwarded requests. */
  draining: boolean;
}

/** One instance of a function, on whichever node runs it. */
export interface ClusterInstanceView {
  node: string;
  id: string;
  /** Requests it can take now. */
  free: number;
}

/** Where one function's instances run. */
export interface ClusterFunctionView {
  name: string;
  /** `scale.max`, cluster-wide. */
  max: number;
  instances: ClusterInstanceView[];
}

/** A node's view of the cluster; an embedded node is a cluster of one. */
export interface ClusterView {
  mode: 'embedded' | 'cluster';
  /** The answering node's name. */
  node: string;
  nodes: ClusterNodeView[];
  functions: ClusterFunctionView[];
}
