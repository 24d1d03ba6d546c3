// What `lamplighter inspect` prints: pure functions from what GET /v1/inspect answered to text.
import type { FunctionInspection, NodeInspection } from '../control/index.js';
import { formatOpenBreakers, table } from './ls-format.js';

/** A duration in ms, short: "850ms", "12.3s", "4m05s", "2h03m". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const whole = Math.floor(seconds);
  const two = (n: number): string => String(n).padStart(2, '0');
  if (whole < 3600) return `${Math.floor(whole / 60)}m${two(whole % 60)}s`;
  return `${Math.floor(whole / 3600)}h${two(Math.floor(whole / 60) % 60)}m`;
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(0)} MiB`;
}

/** One function's demand in a cell: "2 active, 1.50 conc, 12.0 req/s" or "idle 4.2s". */
function demandCell(fn: FunctionInspection): string {
  const d = fn.demand;
  const figures = `${d.concurrency.toFixed(2)} conc, ${d.ratePerSecond.toFixed(1)} req/s`;
  if (d.active > 0) return `${d.active} active, ${figures}`;
  return d.idleForMs === null ? `never used` : `idle ${formatDuration(d.idleForMs)}, ${figures}`;
}

/** The last scale decision in a cell: "want 2 (concurrency 1.60 / target 1) 0.4s ago". */
function decisionCell(fn: FunctionInspection): string {
  const d = fn.lastDecision;
  if (!d) return '-';
  const wanted = d.wanted === d.desired ? `want ${d.wanted}` : `want ${d.wanted} (policy ${d.desired}, scale.max across the cluster)`;
  return `${wanted}: ${d.metric} ${d.value.toFixed(2)} / target ${d.target}, ${formatDuration(d.agoMs)} ago`;
}

function instancesCell(fn: FunctionInspection): string {
  const ready = fn.instances.filter((i) => i.state === 'ready').length;
  return fn.instances.length === ready ? String(ready) : `${fn.instances.length} (${ready} ready)`;
}

function heldCell(fn: FunctionInspection): string {
  if (fn.held.count === 0) return '0';
  return `${fn.held.count} (oldest ${formatDuration(fn.held.oldestAgesMs[0] ?? 0)})`;
}

/** The details of one function: its instances, held requests and breakers. */
function formatFunctionDetails(fn: FunctionInspection): string[] {
  const lines: string[] = [];
  if (fn.instances.length > 0) {
    const rows = [['INSTANCE', 'STATE', 'AGE', 'IN FLIGHT', 'SERVED', 'HOLDS']];
    for (const i of fn.instances) {
      const holds = i.figures ? Object.entries(i.figures).map(([k, v]) => `${k}=${v}`).join(' ') : '-';
      rows.push([i.id, i.state, formatDuration(i.ageMs), String(i.inFlight), String(i.served), holds]);
    }
    lines.push('', table(rows));
  }
  if (fn.held.count > 0) {
    const ages = fn.held.oldestAgesMs.map(formatDuration).join(', ');
    const more = fn.held.count - fn.held.oldestAgesMs.length;
    lines.push('', `Held requests of '${fn.name}': ${fn.held.count}, waiting ${ages}${more > 0 ? `, and ${more} more` : ''}`);
  }
  if (fn.breakers && fn.breakers.open > 0) lines.push('', formatOpenBreakers(fn.name, fn.breakers));
  return lines;
}

/** All of `inspect`: the node, a row per function, each function's details, the sandbox workers, the cluster. */
export function formatInspection(inspection: NodeInspection): string {
  const m = inspection.memory;
  const out = [`Node '${inspection.node}' at ${inspection.at}: up ${formatDuration(inspection.uptimeSeconds * 1000)}, RSS ${mib(m.rssBytes)}, heap ${mib(m.heapUsedBytes)}`];
  if (inspection.functions.length === 0) {
    out.push('', 'No functions.');
  } else {
    const rows = [['FUNCTION', 'APP', 'REV', 'RUNTIME', 'INSTANCES', 'HELD', 'DEMAND', 'LAST SCALE DECISION']];
    for (const fn of inspection.functions) rows.push([fn.name, fn.app, String(fn.revision), fn.runtime, instancesCell(fn), heldCell(fn), demandCell(fn), decisionCell(fn)]);
    out.push('', table(rows));
    for (const fn of inspection.functions) out.push(...formatFunctionDetails(fn));
  }
  const workers = inspection.sandbox.workers;
  if (workers.length > 0) {
    const rows = [['SANDBOX WORKER', 'STATE', 'RUNS', 'CURRENT RUN']];
    for (const w of workers) {
      const state = !w.ready ? 'starting' : w.held ? (w.lowered ? 'held (low priority)' : 'held') : w.runs > 0 ? 'busy' : 'idle';
      rows.push([`#${w.index}${w.extra ? ' (extra)' : ''}`, state, String(w.runs), w.current ? `${w.current.function} for ${formatDuration(w.current.forMs)}` : '-']);
    }
    out.push('', table(rows));
  }
  if (inspection.cluster) {
    const rows = [['NODE', 'ADDRESS', 'STATE']];
    for (const n of inspection.cluster.nodes) rows.push([n.self ? `${n.name} (this node)` : n.name, n.address ?? '-', n.draining ? 'draining' : n.healthy ? 'healthy' : 'down']);
    out.push('', table(rows));
  }
  return out.join('\n');
}
