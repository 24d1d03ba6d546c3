// Breaker benchmarks: the CPU a closed breaker adds per request (admit + done), against an empty
// loop of the same shape measured in the same run; and across the cluster, the time from the first
// failures to the breaker being open on every node (three nodes in this process over a real
// nats-server, the protocol at its default timing).
//
// Rounds alternate baseline and breaker so background noise hits both alike; each figure is the
// median of its rounds, in ns of process CPU (user + system) per request.
import { parseArgs } from 'node:util';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { breakerGroup, ClusterBreakers, DEFAULT_REPORT_INTERVAL_MS } from '../src/breaker-cluster/index.js';
import { NatsDiscovery, type DiscoveryScope } from '../src/discovery/index.js';
import { startNatsServer } from '../src/testing/index.js';
import type { BreakerTicket, CallOutcome } from '../src/admission/breaker-gate.js';
import { createBreakerGate, type PartitionedBreakers } from '../src/admission/breaker/index.js';
import type { LamplighterError } from '../src/errors/index.js';
import type { InvocationRequest } from '../src/instance/index.js';
import { parseManifest } from '../src/manifest/index.js';
import { median } from './wrk.js';

const { values: flags } = parseArgs({
  options: {
    requests: { type: 'string', default: '2000000' },
    rounds: { type: 'string', default: '7' },
    keys: { type: 'string', default: '10' },
    'cluster-runs': { type: 'string', default: '7' },
    'report-ms': { type: 'string', default: String(DEFAULT_REPORT_INTERVAL_MS) },
  },
});
const REQUESTS = Number(flags.requests);
const ROUNDS = Number(flags.rounds);
const KEYS = Number(flags.keys);
const CLUSTER_RUNS = Number(flags['cluster-runs']);
const REPORT_MS = Number(flags['report-ms']);

const OK: CallOutcome = { status: 200, durationMs: 3 };

function gateFor(partition: string, lines = ''): PartitionedBreakers {
  const manifest = `name = "bench"\n[[function]]\nname = "f"\nsource = "f.wasm"\nroutes = ["/..."]\n[function.breaker]\npartition = "${partition}"\n${lines}`;
  return createBreakerGate(parseManifest(manifest).functions[0]!, { sweepIntervalMs: 0 })!;
}

/** Requests as the gateway hands them on, spread over `KEYS` tenants. */
const requests: InvocationRequest[] = Array.from({ length: KEYS }, (_, i) => ({
  id: `r${i}`,
  method: 'GET',
  url: '/orders/7',
  headers: { host: 'localhost', 'x-tenant': `tenant-${i}`, accept: '*/*' },
  body: undefined as unknown as InvocationRequest['body'],
  remoteAddress: '127.0.0.1',
  host: 'localhost',
  serverPort: 8080,
  route: { pattern: '/...', scriptName: '', pathInfo: '/orders/7' },
  signal: undefined as unknown as AbortSignal,
}));

/** The same call shape with nothing behind it: what the loop itself costs. */
class EmptyGate {
  reported = 0;
  readonly #ticket: BreakerTicket = { done: () => void this.reported++ };
  admit(_request: InvocationRequest): BreakerTicket | LamplighterError {
    return this.#ticket;
  }
}

// Two copies of one loop on purpose: each call site sees one class, so neither measurement pays
// for an inline cache the other made polymorphic.
function runBaseline(gate: EmptyGate, n: number): number {
  let refused = 0;
  for (let i = 0; i < n; i++) {
    const t = gate.admit(requests[i % KEYS]!);
    if ('code' in t) refused++;
    else t.done(OK);
  }
  return refused;
}

function runBreaker(gate: PartitionedBreakers, n: number): number {
  let refused = 0;
  for (let i = 0; i < n; i++) {
    const t = gate.admit(requests[i % KEYS]!);
    if ('code' in t) refused++;
    else t.done(OK);
  }
  return refused;
}

/** CPU ns per request of one round. */
function cpuPerRequest(run: () => number): number {
  const start = process.cpuUsage();
  const refused = run();
  const used = process.cpuUsage(start);
  if (refused !== 0) throw new Error(`${refused} requests refused by a breaker that should be closed`);
  return ((used.user + used.system) * 1000) / REQUESTS;
}

const empty = new EmptyGate();
const byHeader = gateFor('header:x-tenant');
const whole = gateFor('none');
const samples = { baseline: [] as number[], header: [] as number[], none: [] as number[] };
// One warm-up round each, so every loop is optimised before it is timed.
runBaseline(empty, REQUESTS);
runBreaker(byHeader, REQUESTS);
runBreaker(whole, REQUESTS);
for (let r = 0; r < ROUNDS; r++) {
  samples.baseline.push(cpuPerRequest(() => runBaseline(empty, REQUESTS)));
  samples.header.push(cpuPerRequest(() => runBreaker(byHeader, REQUESTS)));
  samples.none.push(cpuPerRequest(() => runBreaker(whole, REQUESTS)));
}
const baseline = median(samples.baseline);
const line = (name: string, xs: number[]): string => {
  const added = median(xs) - baseline;
  return `${name.padEnd(34)} ${median(xs).toFixed(1).padStart(7)} ns   +${added.toFixed(1).padStart(6)} ns   ${((added * 40_000) / 1e9 * 100).toFixed(3)}% of a core at 40k req/s`;
};
console.log(`Lamplighter breaker benchmark, ${new Date().toISOString().slice(0, 10)}, node ${process.version}: CPU per request, admit() + done() on a closed breaker`);
console.log(`${REQUESTS} requests a round, ${ROUNDS} alternating rounds, medians; ${KEYS} keys`);
console.log(`${'empty loop (baseline)'.padEnd(34)} ${baseline.toFixed(1).padStart(7)} ns`);
console.log(line('partition = "header:x-tenant"', samples.header));
console.log(line('partition = "none"', samples.none));
byHeader.close();
whole.close();

// Across the cluster: each run fails a new tenant 5 times on each of three nodes (min_requests 10,
// so no node opens it alone) and polls every 2 ms until all three refuse it.
if (CLUSTER_RUNS > 0) {
  const FAIL: CallOutcome = { status: 500, durationMs: 3 };
  const server = await startNatsServer();
  const nodes: { nc: NatsConnection; scope: DiscoveryScope; gate: PartitionedBreakers; cluster: ClusterBreakers }[] = [];
  try {
    for (const name of ['n1', 'n2', 'n3']) {
      const nc = await connect({ servers: server.url, name });
      const scope = await NatsDiscovery.start(nc, { node: name, scope: 'bench' });
      const gate = gateFor('header:x-tenant', 'min_requests = 10\nconsecutive_failures = 0\nwindow = "10s"\nopen_for = "30s"\n');
      const cluster = new ClusterBreakers(nc, scope, { reportIntervalMs: REPORT_MS });
      cluster.attach(gate);
      nodes.push({ nc, scope, gate, cluster });
    }
    const seeAll = (): boolean => nodes.every((n) => new Set(n.scope.members(breakerGroup('f')).map((m) => m.node)).size === 3);
    for (let i = 0; i < 500 && !seeAll(); i++) await new Promise((r) => setTimeout(r, 10));
    if (!seeAll()) throw new Error('the three nodes did not see each other within 5 s');
    const times: number[] = [];
    for (let run = 0; run < CLUSTER_RUNS; run++) {
      const request = { ...requests[0]!, headers: { ...requests[0]!.headers, 'x-tenant': `cluster-run-${run}` } };
      const start = performance.now();
      for (const n of nodes) {
        for (let i = 0; i < 5; i++) {
          const t = n.gate.admit(request);
          if ('code' in t) throw new Error('refused before any node could have opened it');
          t.done(FAIL);
        }
      }
      let open = false;
      for (let poll = 0; poll < 2500 && !open; poll++) {
        await new Promise((r) => setTimeout(r, 2));
        open = nodes.every((n) => 'code' in n.gate.admit(request));
      }
      if (!open) throw new Error(`run ${run}: not open on every node within 5 s`);
      times.push(performance.now() - start);
      // Start the next run at a random point of the report interval, as failures would.
      await new Promise((r) => setTimeout(r, Math.random() * REPORT_MS));
    }
    console.log(`first failures to open on all of 3 nodes (real nats-server, reports every ${REPORT_MS} ms): median ${median(times).toFixed(0)} ms, min ${Math.min(...times).toFixed(0)}, max ${Math.max(...times).toFixed(0)} over ${CLUSTER_RUNS} runs`);
  } finally {
    for (const n of nodes) {
      n.cluster.close();
      n.gate.close();
      await n.scope.close();
      await n.nc.close();
    }
    await server.close();
  }
}
