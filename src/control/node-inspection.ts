// What `lamplighter inspect` shows of a live node: per function, its instances, held requests,
// demand and last scale decision, its breakers; the sandbox workers; the cluster's nodes.
import type { BreakerStatus } from '../admission/index.js';
import type { ClusterNodeView } from '../cluster/index.js';
import type { DispatcherInspection } from '../dispatch/index.js';
import type { SandboxWorkerView } from '../runtime/wasm/index.js';
import { LISTED_OPEN_BREAKERS } from './app-status.js';
import type { DeployedApp } from './deployments.js';

/** Held requests whose ages are listed per function; the count covers them all. */
const LISTED_HELD_REQUESTS = 20;

/** One function of a live node. */
export interface FunctionInspection extends DispatcherInspection {
  name: string;
  app: string;
  revision: number;
  runtime: string;
  /** Its circuit breakers, when the manifest declares them. */
  breakers?: BreakerStatus;
}

/** A live node, as `GET /v1/inspect` answers. */
export interface NodeInspection {
  node: string;
  /** ISO time the figures were read. */
  at: string;
  uptimeSeconds: number;
  memory: { rssBytes: number; heapUsedBytes: number; externalBytes: number };
  functions: FunctionInspection[];
  sandbox: { workers: SandboxWorkerView[] };
  /** The cluster's nodes as this node sees them; absent on an embedded node. */
  cluster?: { nodes: ClusterNodeView[] };
}

/** What the inspection reads of its node. */
export interface InspectedNode {
  name: string;
  apps: ReadonlyMap<string, DeployedApp>;
  sandboxWorkers(): SandboxWorkerView[];
  clusterNodes(): ClusterNodeView[] | undefined;
}

/** Reads `node` now; `only` narrows the functions to one name (every function when undefined). */
export function inspectNode(node: InspectedNode, only?: string): NodeInspection {
  const functions: FunctionInspection[] = [];
  for (const app of node.apps.values()) {
    for (const [name, group] of app.groups) {
      if (only !== undefined && name !== only) continue;
      const breakers = app.targets.get(name)?.breakerStatus(LISTED_OPEN_BREAKERS);
      functions.push({
        name,
        app: app.manifest.name,
        revision: app.revision.number,
        runtime: group.spec.runtime,
        ...group.inspect(LISTED_HELD_REQUESTS),
        ...(breakers ? { breakers } : {}),
      });
    }
  }
  functions.sort((a, b) => a.name.localeCompare(b.name));
  const memory = process.memoryUsage();
  const nodes = node.clusterNodes();
  return {
    node: node.name,
    at: new Date().toISOString(),
    uptimeSeconds: Math.round(process.uptime()),
    memory: { rssBytes: memory.rss, heapUsedBytes: memory.heapUsed, externalBytes: memory.external },
    functions,
    sandbox: { workers: node.sandboxWorkers() },
    ...(nodes ? { cluster: { nodes } } : {}),
  };
}
