// Nodes of a breaker cluster inside one test process: each its own NATS connection, discovery scope, gate and ClusterBreakers.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createBreakerGate, type PartitionedBreakers } from '../src/admission/breaker/index.js';
import { breakerGroup, ClusterBreakers, type ClusterBreakersOptions } from '../src/breaker-cluster/index.js';
import { NatsDiscovery, type DiscoveryScope } from '../src/discovery/index.js';
import { LamplighterError } from '../src/errors/index.js';
import { breakerSpec, FAIL, OK, tenant, ticket } from './breaker-helpers.js';
import { TEST_TIMING } from './discovery-conformance.js';

/** Short timings: reports every 50 ms, decisions repeated every 200 ms, kept 300 ms past their open time. */
export const PROTOCOL_TIMING: ClusterBreakersOptions = { reportIntervalMs: 50, refreshMs: 200, decisionMarginMs: 300 };

/** One node: its connection, scope, the gate of function `f` and its part in the cluster. */
export interface BreakerNode {
  name: string;
  nc: NatsConnection;
  scope: DiscoveryScope;
  gate: PartitionedBreakers;
  cluster: ClusterBreakers;
  detach: () => void;
  stopped: boolean;
}

/** Starts node `name` in discovery scope `scope` with function `f`'s breaker made of `lines`. */
export async function startBreakerNode(url: string, scope: string, name: string, lines: string, options: ClusterBreakersOptions = PROTOCOL_TIMING): Promise<BreakerNode> {
  // Reconnects at once and forever, so a node cut off by a test comes back as soon as it is healed.
  const nc = await connect({ servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 50, reconnectJitter: 0 });
  const discovery = await NatsDiscovery.start(nc, { scope, node: name, timing: TEST_TIMING });
  const gate = createBreakerGate(breakerSpec(`partition = "header:x-tenant"\n${lines}`), { sweepIntervalMs: 50 })!;
  const cluster = new ClusterBreakers(nc, discovery, options);
  const detach = cluster.attach(gate);
  return { name, nc, scope: discovery, gate, cluster, detach, stopped: false };
}

/** Stops a node as a crash would look to the others: its part, its scope and its connection go. */
export async function stopBreakerNode(node: BreakerNode): Promise<void> {
  if (node.stopped) return;
  node.stopped = true;
  node.cluster.close();
  node.gate.close();
  await node.scope.close();
  await node.nc.close();
}

/** The nodes `node` sees serving `f`. */
export function groupNodes(node: BreakerNode): string[] {
  return [...new Set(node.scope.members(breakerGroup('f')).map((m) => m.node))].sort();
}

/** Admits `n` requests of tenant `key` on `node`, each ending in `outcome`. */
export function serve(node: BreakerNode, key: string, n: number, outcome: typeof FAIL | typeof OK): void {
  for (let i = 0; i < n; i++) ticket(node.gate.admit(tenant(key))).done(outcome);
}

/** The local state of tenant `key` on `node`, as its gate holds it ('none' when not held). */
export function stateOf(node: BreakerNode, key: string): string {
  return node.gate.counts(key)?.state ?? 'none';
}

/** True when `node` lets a request of `key` through (and it succeeds); false when refused. */
export function admits(node: BreakerNode, key: string): boolean {
  const answer = node.gate.admit(tenant(key));
  if (answer instanceof LamplighterError) return false;
  answer.done(OK);
  return true;
}
