// WAGI benchmark: fresh-sandbox hello vs plain node:http (ceiling) vs workerd (peer), and cold vs warm latency.
//
// Every figure comes from this run on this machine: wrk on loopback drives each server in turn,
// alternating rounds so background noise hits all of them alike; medians are reported.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { helloComponentFile } from './hello-component.js';
import { startTestNode, wagiApp, repoRoot, type TestNode } from '../src/testing/index.js';
import { median, percentile, runWrk, waitForHttp, type WrkResult } from './wrk.js';

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '3' },
    // Seconds of load before the rounds, per target: the component's cost a request falls about
    // threefold over its first 5,000 requests as V8 warms up (see docs/component-runtime.md).
    warmup: { type: 'string', default: '8' },
    cold: { type: 'string', default: '40' },
    // The component rows need a 10-20 s build the first time; --skip-component leaves them out.
    'skip-component': { type: 'boolean', default: false },
  },
});
const DURATION = Number(flags.duration);
const CONNECTIONS = Number(flags.connections);
const ROUNDS = Number(flags.rounds);

/** The workerd peer, installed on first use: its lock entries name platform packages the registry
 * mirror here lacks, so it stays out of package.json and `npm ci` stays clean. It goes to a
 * directory of its own under the OS temp dir, so that the repository's node_modules (which may be
 * shared between checkouts) is left alone. */
const WORKERD_VERSION = '1.20261117.1';
const WORKERD_DIR = path.join(tmpdir(), 'lamplighter-bench', `workerd-${WORKERD_VERSION}`);

function workerdBinary(): string {
  const bin = path.join(WORKERD_DIR, 'node_modules', '.bin', 'workerd');
  if (!existsSync(bin)) {
    console.error(`Installing workerd@${WORKERD_VERSION} into ${WORKERD_DIR} for the comparison (not saved to package.json)...`);
    mkdirSync(WORKERD_DIR, { recursive: true });
    const result = spawnSync('npm', ['install', '--prefix', WORKERD_DIR, '--no-save', '--no-audit', '--no-fund', `workerd@${WORKERD_VERSION}`], { cwd: WORKERD_DIR, stdio: 'inherit' });
    if (result.status !== 0 || !existsSync(bin)) throw new Error(`Could not install workerd@${WORKERD_VERSION} from the npm registry into ${WORKERD_DIR}`);
  }
  return bin;
}

function startChild(command: string, args: string[]): ChildProcess {
  return spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** One GET over a kept-alive connection; resolves with the latency in ms. */
function timedGet(agent: http.Agent, url: string): Promise<{ ms: number; cold: string | undefined }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    http
      .get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ ms: performance.now() - start, cold: res.headers['x-lamplighter-cold-start'] as string | undefined }));
      })
      .on('error', reject);
  });
}

/**
 * Times requests to a function that goes to zero between them (idle 30 ms): each lights it. A pair
 * whose first request did not light the function, or whose second found it gone already (a busy
 * machine can stall the client past the idle time), is dropped and tried again, up to three times
 * the samples.
 */
async function coldAndWarm(node: TestNode, fn: string, samples: number): Promise<{ cold: number[]; warm: number[]; dropped: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const cold: number[] = [];
  const warm: number[] = [];
  let dropped = 0;
  const group = node.platform.group(fn)!;
  const route = group.spec.routes[0]!;
  for (let attempt = 0; cold.length < samples && attempt < samples * 3; attempt++) {
    const until = Date.now() + 5000;
    while (group.instanceCount > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    const first = await timedGet(agent, `${node.url}${route}`);
    const second = await timedGet(agent, `${node.url}${route}`);
    if (first.cold !== 'true' || second.cold !== 'false') {
      dropped++;
      continue;
    }
    cold.push(first.ms);
    warm.push(second.ms);
  }
  agent.destroy();
  if (cold.length === 0) throw new Error(`no cold and warm pair of ${fn} in ${samples * 3} attempts`);
  return { cold, warm, dropped };
}

async function main(): Promise<void> {
  const nodePort = 18_181;
  const workerdPort = 18_182;
  const node = await startTestNode({ scaleIntervalMs: 10, sandboxWorkers: 2 });
  await node.deploy(wagiApp('hello', 'hello', 'hello.wasm', ['/...'], '[function.scale]\nidle = "60s"\nmax = 10'), { 'hello.wasm': path.join(repoRoot, 'examples', 'hello', 'hello.wasm') });
  await node.deploy(wagiApp('cold', 'cold', 'hello.wasm', ['/cold'], '[function.scale]\nidle = "30ms"\nwindow = "100ms"'), { 'hello.wasm': path.join(repoRoot, 'examples', 'hello', 'hello.wasm') });
  if (!flags['skip-component']) {
    const component = await helloComponentFile();
    const reusable = await helloComponentFile('instance');
    const componentApp = (name: string, route: string, scale: string, extra = ''): string =>
      `name = "${name}"\n[[function]]\nname = "${name}"\nruntime = "component"\nsource = "handler.wasm"\nroutes = ["${route}"]\n${extra}[function.scale]\n${scale}\n`;
    // The manifest's defaults (concurrency 16, up to 10 instances), as a user deploys it: the
    // node's component worker budget (one a core) keeps the scaler from lighting more
    // workers than the cores can run.
    await node.deploy(componentApp('comp', '/comp', 'idle = "60s"\nmax = 10'), { 'handler.wasm': component });
    await node.deploy(componentApp('comp-cold', '/comp-cold', 'idle = "30ms"\nwindow = "100ms"'), { 'handler.wasm': component });
    // The same hello built with --isolation instance: one instance answers up to max_reuse (128)
    // requests in turn.
    await node.deploy(componentApp('comp-reuse', '/comp-reuse', 'idle = "60s"\nmax = 10', 'isolation = "instance"\n'), { 'handler.wasm': reusable });
  }

  const plain = startChild(process.execPath, [
    '-e',
    `require('http').createServer((q,s)=>{s.writeHead(200,{'content-type':'text/plain; charset=utf-8'});s.end('Hello from Lamplighter!\\n')}).listen(${nodePort},'127.0.0.1')`,
  ]);
  const workerdBin = workerdBinary();
  const workerd = startChild(workerdBin, ['serve', path.join(repoRoot, 'bench', 'workerd', 'config.capnp'), '--socket-addr', `http=127.0.0.1:${workerdPort}`]);
  try {
    await waitForHttp(`http://127.0.0.1:${nodePort}/`, 10_000);
    await waitForHttp(`http://127.0.0.1:${workerdPort}/`, 10_000);
    await waitForHttp(`${node.url}/`, 10_000);

    const targets: Array<[string, string]> = [
      ['node:http hello (ceiling)', `http://127.0.0.1:${nodePort}/`],
      ['workerd JS hello (peer)', `http://127.0.0.1:${workerdPort}/`],
      ['Lamplighter WAGI hello, fresh sandbox per request', `${node.url}/`],
    ];
    if (!flags['skip-component']) {
      targets.push(['Lamplighter component (TS, componentize-js) hello, instance restored per request (manifest defaults; node budget of a worker a core)', `${node.url}/comp`]);
      targets.push(['Lamplighter component (TS, built with --isolation instance) hello, isolation = "instance"', `${node.url}/comp-reuse`]);
    }
    const results = new Map<string, WrkResult[]>(targets.map(([name]) => [name, []]));
    // Warm-up, then alternating rounds.
    for (const [, url] of targets) await runWrk(url, { connections: CONNECTIONS, seconds: Number(flags.warmup) });
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, url] of targets) results.get(name)!.push(await runWrk(url, { connections: CONNECTIONS, seconds: DURATION }));
    }

    const summary = targets.map(([name]) => {
      const rs = results.get(name)!;
      return { name, rps: median(rs.map((r) => r.rps)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)), errors: rs.reduce((a, r) => a + r.errors, 0) };
    });
    const [ceiling, peer, ours, component, reused] = summary as [typeof summary[0], typeof summary[0], typeof summary[0], typeof summary[0] | undefined, typeof summary[0] | undefined];

    // Throughput first: it is printed even if the latency part below fails.
    const throughput = [
      `Lamplighter WebAssembly benchmark — wrk -t1 -c${CONNECTIONS} -d${DURATION}s, ${ROUNDS} alternating rounds after ${flags.warmup} s of warm-up each, medians; ${new Date().toISOString().slice(0, 10)}`,
      '',
      '| target | req/s | p50 ms | p99 ms | errors |',
      '|---|---:|---:|---:|---:|',
      ...summary.map((s) => `| ${s.name} | ${s.rps.toFixed(0)} | ${s.p50.toFixed(2)} | ${s.p99.toFixed(2)} | ${s.errors} |`),
      '',
      `Lamplighter / workerd throughput: ${(ours.rps / peer.rps).toFixed(2)}×   (goal ≥ 1.00×, later 2×)`,
      `Lamplighter / node:http throughput: ${(ours.rps / ceiling.rps).toFixed(2)}×`,
    ];
    if (component) throughput.push(`Component / workerd throughput: ${(component.rps / peer.rps).toFixed(3)}×; component / WAGI: ${(component.rps / ours.rps).toFixed(3)}×`);
    if (reused) throughput.push(`Component under isolation = "instance" / workerd: ${(reused.rps / peer.rps).toFixed(3)}×; / WAGI: ${(reused.rps / ours.rps).toFixed(3)}×; / the same hello restored per request: ${component ? (reused.rps / component.rps).toFixed(2) : '-'}×`);
    console.log(throughput.join('\n'));

    const { cold, warm, dropped } = await coldAndWarm(node, 'cold', Number(flags.cold));
    const componentLatency = !flags['skip-component'] ? await coldAndWarm(node, 'comp-cold', Math.min(10, Number(flags.cold))) : undefined;
    const lines = [
      '',
      `Cold start (function at zero → first response, ${cold.length} samples, ${dropped} pairs dropped): p50 ${median(cold).toFixed(3)} ms, p99 ${percentile(cold, 99).toFixed(3)} ms`,
      `Warm request (same connection, right after): p50 ${median(warm).toFixed(3)} ms, p99 ${percentile(warm, 99).toFixed(3)} ms`,
      `Cold p50 / warm p50: ${(median(cold) / median(warm)).toFixed(2)}×   (goal ≤ 3×)`,
    ];
    if (componentLatency) {
      lines.push(
        `Component cold start p50 ${median(componentLatency.cold).toFixed(1)} ms (${componentLatency.cold.length} samples, ${componentLatency.dropped} pairs dropped); warm p50 ${median(componentLatency.warm).toFixed(1)} ms; ` +
          `cold / warm ${(median(componentLatency.cold) / median(componentLatency.warm)).toFixed(2)}×`,
      );
    }
    console.log(lines.join('\n'));
  } finally {
    plain.kill('SIGKILL');
    workerd.kill('SIGKILL');
    await node.close();
  }
}


await main();
