// What `lamplighter ls` prints: pure functions from what the admin API answered to text.
import type { ClusterFunctionView, ClusterNodeView, ClusterView } from '../cluster/index.js';
import type { BreakerStatus } from '../admission/index.js';
import type { AppStatus } from '../control/index.js';

/** Columns padded to their widest cell, two spaces apart, no trailing blanks. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** Formats the apps: a row per function, then a line per app restored from another revision than its current one. */
export function formatApps(apps: AppStatus[]): string {
  if (apps.length === 0) return 'No apps deployed.';
  const rows = [['APP', 'REV', 'FUNCTION', 'RUNTIME', 'INSTANCES', 'PENDING', 'STATUS', 'ROUTES']];
  const notes: string[] = [];
  for (const app of apps) {
    for (const fn of app.functions) {
      rows.push([app.name, String(app.revision), fn.name, fn.runtime, String(fn.instances), String(fn.pending), fn.status === 'failing' ? `failing: ${fn.lastFailure ?? ''}` : fn.status, fn.routes.join(' ')]);
    }
    if (app.restored) notes.push(`App '${app.name}' ${app.restored.message}`);
    for (const fn of app.functions) if (fn.breakers && fn.breakers.open > 0) notes.push(formatOpenBreakers(fn.name, fn.breakers));
  }
  return [table(rows), ...(notes.length ? ['', ...notes] : [])].join('\n');
}

/**
 * One function's open breakers in a line: "Function 'api' has 2 open breakers (header:x-tenant):
 * "a" open 12s, "b" half-open", with "and N more" when the admin API listed only the first.
 */
export function formatOpenBreakers(fn: string, breakers: BreakerStatus): string {
  const listed = breakers.keys.map((b) => `${JSON.stringify(b.key)} ${b.state === 'open' ? `open ${b.retryAfter}s` : 'half-open'}`);
  const more = breakers.open - breakers.keys.length;
  if (more > 0) listed.push(`and ${more} more`);
  const noun = breakers.open === 1 ? 'breaker' : 'breakers';
  return `Function '${fn}' has ${breakers.open} open ${noun} (${breakers.partition}): ${listed.join(', ')}`;
}

/** How long ago `at` (an ISO time) was, seen at `now` (ms): "0.4s ago", "2m05s ago", "3h07m ago", "2d04h ago". */
export function formatAge(at: string, now: number): string {
  const ms = now - Date.parse(at);
  if (Number.isNaN(ms)) return '-';
  // A heartbeat stamped by a clock a little ahead of ours is "now", not in the future.
  const tenths = Math.max(0, Math.round(ms / 100));
  if (tenths < 600) return `${(tenths / 10).toFixed(1)}s ago`;
  const seconds = Math.floor(tenths / 10);
  const two = (n: number): string => String(n).padStart(2, '0');
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${two(seconds % 60)}s ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h${two(Math.floor(seconds / 60) % 60)}m ago`;
  return `${Math.floor(seconds / 86_400)}d${two(Math.floor(seconds / 3600) % 24)}h ago`;
}

/** A node's state in one word: draining (leaving, takes no forwarded requests), down (missed its heartbeats), or healthy. */
export function nodeState(node: ClusterNodeView): 'healthy' | 'draining' | 'down' {
  if (node.draining) return 'draining';
  return node.healthy ? 'healthy' : 'down';
}

/** The NODES table: name (the answering node marked), address, state, age of the last heartbeat. */
export function formatNodes(nodes: ClusterNodeView[], now: number): string {
  const rows = [['NODE', 'ADDRESS', 'STATE', 'LAST HEARTBEAT']];
  for (const node of [...nodes].sort((a, b) => a.name.localeCompare(b.name))) {
    rows.push([node.self ? `${node.name} (this node)` : node.name, node.address ?? '-', nodeState(node), formatAge(node.lastHeartbeat, now)]);
  }
  return table(rows);
}

/** Where one function's instances run: "3 instances: node-a 2, node-b 1", nodes by name. */
export function formatPlacement(fn: ClusterFunctionView): string {
  const count = fn.instances.length;
  const total = `${count} ${count === 1 ? 'instance' : 'instances'}`;
  if (count === 0) return total;
  const perNode = new Map<string, number>();
  for (const instance of fn.instances) perNode.set(instance.node, (perNode.get(instance.node) ?? 0) + 1);
  const where = [...perNode].sort(([a], [b]) => a.localeCompare(b)).map(([node, n]) => `${node} ${n}`);
  return `${total}: ${where.join(', ')}`;
}

/** The table of every function's cluster-wide `scale.max` and where its instances run. */
export function formatFunctionPlacement(functions: ClusterFunctionView[]): string {
  const rows = [['FUNCTION', 'MAX', 'INSTANCES']];
  for (const fn of [...functions].sort((a, b) => a.name.localeCompare(b.name))) rows.push([fn.name, String(fn.max), formatPlacement(fn)]);
  return table(rows);
}

/**
 * All of `ls`: on an embedded node (or one that gives no cluster view) the apps alone, as a lone
 * node has always printed them; in a cluster the nodes first, then the apps, then where each
 * function's instances run. `now` (ms) is the time heartbeat ages are measured from.
 */
export function formatListing(apps: AppStatus[], cluster: ClusterView | undefined, now: number): string {
  if (!cluster || cluster.mode === 'embedded') return formatApps(apps);
  const sections = [formatNodes(cluster.nodes, now), formatApps(apps)];
  if (cluster.functions.length > 0) sections.push(formatFunctionPlacement(cluster.functions));
  return sections.join('\n\n');
}
