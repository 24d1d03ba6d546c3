// Cluster benchmark, on one machine against a real nats-server: what a forwarded request adds over
// a local one (p50, p99), how long a deploy on node A takes to be served by B, how long the others
// take to drop a killed node, and how long views take to agree after a partition heals.
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { repoRoot, startCutProxy, startTestCluster, wagiApp, type TestCluster, type TestNode } from '../src/testing/index.js';
import { median, percentile } from './wrk.js';

const { values: flags } = parseArgs({
  options: {
    requests: { type: 'string', default: '3000' },
    rounds: { type: 'string', default: '5' },
    repeats: { type: 'string', default: '5' },
  },
});
const REQUESTS = Number(flags.requests);
const ROUNDS = Number(flags.rounds);
const REPEATS = Number(flags.repeats);
/** Discovery as a user gets it by default: heartbeats every second, a silent node dropped after 3 s. */
const TIMING = { heartbeatMs: 1000, downAfterMs: 3000 };

const ECHO = path.join(repoRoot, 'test', 'fixtures', 'process', 'echo-server.mjs');
const HELLO = path.join(repoRoot, 'examples', 'hello', 'hello.wasm');
// One instance in the cluster, on node B: a request at A is always forwarded to it.
const ONE_INSTANCE = `name = "fwd"\n[[function]]\nname = "fwd"\nruntime = "process"\ncommand = ["node", "echo-server.mjs"]\nroutes = ["/fwd/..."]\nready = "/healthz"\n[function.limits]\nconcurrency = 1000\n[function.scale]\nmax = 1\nidle = "10m"\n`;

async function waitFor(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await check()) return performance.now() - start;
    if (performance.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Latencies (ms) of `n` sequential GETs of `pathname` on one keep-alive connection. */
async function sequential(url: string, pathname: string, n: number): Promise<number[]> {
  const pool = new Pool(url, { connections: 1 });
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      const res = await pool.request({ path: pathname, method: 'GET' });
      await res.body.text();
      if (res.statusCode !== 200) throw new Error(`${url}${pathname} answered ${res.statusCode}`);
      out.push(performance.now() - t);
    }
  } finally {
    await pool.close();
  }
  return out;
}

async function servesText(node: TestNode, pathname: string, text: string): Promise<boolean> {
  try {
    const res = await fetch(node.url + pathname);
    return res.status === 200 && (await res.text()) === text;
  } catch {
    return false;
  }
}

const fmt = (ms: number): string => `${ms.toFixed(3)} ms`;

async function forwardedVsLocal(cluster: TestCluster): Promise<void> {
  const [a, b] = cluster.nodes;
  await a!.deploy(ONE_INSTANCE, { 'echo-server.mjs': ECHO });
  await waitFor(() => b!.platform.group('fwd') !== undefined, 5000, 'B to have the app');
  // The first request at B lights the one instance there; A must see it before it forwards.
  await sequential(b!.url, '/fwd/_/sized', 10);
  await waitFor(() => a!.platform.clusterView().functions.some((f) => f.name === 'fwd' && f.instances.length === 1), 5000, 'A to see B\'s instance');
  const local: number[][] = [];
  const forwarded: number[][] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Interleaved rounds: both see the same machine noise.
    local.push(await sequential(b!.url, '/fwd/_/sized', REQUESTS));
    forwarded.push(await sequential(a!.url, '/fwd/_/sized', REQUESTS));
  }
  const p = (rounds: number[][], q: number): number => median(rounds.map((r) => percentile(r, q)));
  console.log(`forwarded vs local, ${REQUESTS} sequential requests per round, medians of ${ROUNDS} rounds:`);
  console.log(`  local      p50 ${fmt(p(local, 50))}  p99 ${fmt(p(local, 99))}`);
  console.log(`  forwarded  p50 ${fmt(p(forwarded, 50))}  p99 ${fmt(p(forwarded, 99))}`);
  console.log(`  added      p50 ${fmt(p(forwarded, 50) - p(local, 50))}  p99 ${fmt(p(forwarded, 99) - p(local, 99))}  (ratio p50 ${(p(forwarded, 50) / p(local, 50)).toFixed(2)}x)`);
}

async function deployToServed(cluster: TestCluster): Promise<void> {
  const [a, b] = cluster.nodes;
  const times: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const greeting = `Take${i}`;
    await a!.deploy(wagiApp('hello', 'hello', 'hello.wasm', ['/hello'], `[function.env]\nGREETING = "${greeting}"`), { 'hello.wasm': HELLO });
    const committed = performance.now();
    await waitFor(() => servesText(b!, '/hello', `${greeting} from Lamplighter!\n`), 5000, 'B to serve the deploy');
    times.push(performance.now() - committed);
  }
  console.log(`deploy on A until B serves it (after A's deploy returned): median ${fmt(median(times))} of ${REPEATS} (min ${fmt(Math.min(...times))}, max ${fmt(Math.max(...times))})`);
}

async function killToDrop(cluster: TestCluster): Promise<void> {
  const times: number[] = [];
  for (let i = 0; i < Math.min(REPEATS, 3); i++) {
    const child = await cluster.startChildNode(`doomed-${i}`);
    const a = cluster.nodes[0]!;
    await waitFor(() => a.platform.clusterView().nodes.some((n) => n.name === child.name && n.healthy), 10_000, 'A to see the new node');
    const start = performance.now();
    await child.kill();
    await waitFor(() => !a.platform.clusterView().nodes.some((n) => n.name === child.name && n.healthy), 15_000, 'A to drop the killed node');
    times.push(performance.now() - start);
  }
  console.log(`kill -9 of a node until the others drop it (drop after ${TIMING.downAfterMs} ms of silence): median ${fmt(median(times))} of ${times.length}`);
}

async function healToAgree(cluster: TestCluster): Promise<void> {
  const times: number[] = [];
  const proxy = await startCutProxy(Number(new URL(cluster.urls[0]!).port));
  const cut = await cluster.addNode('node-cut', { cluster: { servers: [proxy.url], timing: TIMING } });
  const a = cluster.nodes[0]!;
  const names = (node: TestNode): string => node.platform.clusterView().nodes.filter((n) => n.healthy).map((n) => n.name).sort().join(',');
  try {
    for (let i = 0; i < Math.min(REPEATS, 3); i++) {
      await waitFor(() => names(a) === names(cut), 15_000, 'the views to agree before the cut');
      proxy.cut();
      await waitFor(() => !names(a).includes('node-cut') && names(cut) === 'node-cut', 15_000, 'both sides to drop each other');
      const start = performance.now();
      proxy.heal();
      await waitFor(() => names(a) === names(cut) && names(a).includes('node-cut'), 15_000, 'the views to agree after the heal');
      times.push(performance.now() - start);
    }
  } finally {
    await proxy.close();
  }
  console.log(`partition healed until both sides' views agree: median ${fmt(median(times))} of ${times.length}`);
}

console.log(`Lamplighter cluster benchmark, ${new Date().toISOString().slice(0, 10)}, one machine, loopback, nats-server with JetStream`);
const cluster = await startTestCluster({ nodes: 2, cluster: { timing: TIMING }, platform: { logLevel: 'silent' } });
try {
  await forwardedVsLocal(cluster);
  await deployToServed(cluster);
  await killToDrop(cluster);
  await healToAgree(cluster);
} finally {
  await cluster.close();
}
