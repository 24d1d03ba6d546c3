// Component runtime benchmark: hello under wrk with isolation "request" and "instance", beside WAGI, with CPU per request by part.
//
// Usage: node dist/bench/component.js [-c 32] [-d 5] [--rounds 3] [--workers N] [--json]
//
// Every target is served the same way: a small node:http server hands each request to one
// Lamplighter Instance (N worker threads, or the WAGI sandbox pool), and wrk loads it from its own
// process, in alternating rounds so that background noise hits all alike; medians are reported.
// Targets: plain node:http (the ceiling), WAGI hello (examples/hello, a fresh sandbox per request),
// the TypeScript hello (examples/hello-ts built with componentize-js; isolation "request": an
// instance restored as new per request), and the stand-in component of the tests
// (test/fixtures/component/reusable.wat) under "request" and "instance" (the JS engine serves one
// request per instance, so it cannot be reused). For each component target it reports CPU per
// request of this process (all threads), split into the worker's parts from the instance's
// counters; the rest is messages between threads and the HTTP harness.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Instance, InstanceFactory, InvocationRequest } from '../src/instance/index.js';
import { parseManifest, type FunctionSpec } from '../src/manifest/index.js';
import { buildComponent, ComponentInstance, createComponentFactory, prepareComponent, type PreparedComponent } from '../src/runtime/component/index.js';
import { compileWagiModule, createWagiFactory, SandboxPool } from '../src/runtime/wasm/index.js';
import { buildReusableComponent } from '../test/component-helpers.js';
import { median, runWrk, type WrkResult } from './wrk.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

const { values: flags } = parseArgs({
  options: {
    c: { type: 'string', default: '32' },
    d: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    workers: { type: 'string', default: String(Math.max(1, availableParallelism())) },
    json: { type: 'boolean', default: false },
  },
});
const CONNECTIONS = Number(flags.c);
const SECONDS = Number(flags.d);
const ROUNDS = Number(flags.rounds);
const WORKERS = Number(flags.workers);

function say(line: string): void {
  if (!flags.json) process.stdout.write(`${line}\n`);
}

async function cachedHelloBuild(): Promise<Uint8Array> {
  const handler = path.join(REPO, 'examples', 'hello-ts', 'handler.ts');
  const hash = createHash('sha256').update(await readFile(handler)).digest('hex').slice(0, 24);
  const file = path.join(tmpdir(), 'lamplighter-bench', `hello-ts-${hash}.wasm`);
  try {
    return new Uint8Array(await readFile(file));
  } catch {
    const { component } = await buildComponent(handler);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(`${file}.tmp`, component);
    await rename(`${file}.tmp`, file);
    return component;
  }
}

function specOf(manifest: string, patch: (spec: FunctionSpec) => void): FunctionSpec {
  const spec = parseManifest(manifest).functions[0];
  if (!spec) throw new Error('no function in the manifest');
  spec.limits.concurrency = WORKERS;
  spec.limits.timeoutMs = 30_000;
  patch(spec);
  return spec;
}

function componentManifest(isolation: 'request' | 'instance'): string {
  return `name = "bench"\n[[function]]\nname = "hello"\nruntime = "component"\nsource = "h.wasm"\nroutes = ["/..."]\nisolation = "${isolation}"\n`;
}

/** Serves every request of a node:http server with one Lamplighter instance. */
function harness(instance: Instance): http.Server {
  let nextId = 0;
  return http.createServer((req, res) => {
    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    const request: InvocationRequest = {
      id: `b${++nextId}`,
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      body: req,
      remoteAddress: req.socket.remoteAddress ?? '',
      host: '127.0.0.1',
      serverPort: 0,
      route: { pattern: '/...', scriptName: '', pathInfo: req.url ?? '/' },
      signal: controller.signal,
    };
    instance.handle(request).then(
      (response) => {
        res.writeHead(response.status, response.headers.flat());
        const body = response.body;
        if (body === null) res.end();
        else if (Buffer.isBuffer(body)) res.end(body);
        else (body as Readable).pipe(res);
      },
      (err: { status?: number; message?: string }) => {
        res.writeHead(err.status ?? 500, { 'content-type': 'text/plain' });
        res.end(`${err.message ?? 'error'}\n`);
      },
    );
  });
}

function listen(server: http.Server): Promise<string> {
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hello`)));
}

/** CPU of one component target, summed over its measured rounds. */
interface CpuTally {
  cpuUs: number;
  requests: number;
  sampled: number;
  handlerCpuNs: number;
  restoreCpuNs: number;
  instantiateCpuNs: number;
  restored: number;
  replaced: number;
  dirtyBlocks: number;
}

function emptyTally(): CpuTally {
  return { cpuUs: 0, requests: 0, sampled: 0, handlerCpuNs: 0, restoreCpuNs: 0, instantiateCpuNs: 0, restored: 0, replaced: 0, dirtyBlocks: 0 };
}

interface Target {
  name: string;
  url: string;
  instance: Instance | undefined;
  runs: WrkResult[];
  cpu: CpuTally;
  close: () => Promise<void>;
}

async function lightComponent(name: string, prepared: PreparedComponent, spec: FunctionSpec): Promise<Target> {
  const factory = createComponentFactory(prepared, spec, { log: () => undefined, maxWorkers: WORKERS });
  const instance = factory.create(name);
  const started = performance.now();
  await instance.ready;
  say(`  ${name}: ready in ${(performance.now() - started).toFixed(0)} ms`);
  const server = harness(instance);
  return {
    name,
    url: await listen(server),
    instance,
    runs: [],
    cpu: emptyTally(),
    close: async () => {
      server.close();
      await instance.stop();
      await factory.close();
    },
  };
}

async function lightWagi(pool: SandboxPool): Promise<Target> {
  const manifest = await readFile(path.join(REPO, 'examples', 'hello', 'lamplighter.toml'), 'utf8');
  const spec = specOf(manifest, () => undefined);
  const compiled = await compileWagiModule(new Uint8Array(await readFile(path.join(REPO, 'examples', 'hello', 'hello.wasm'))), spec.limits.memory);
  const factory: InstanceFactory = createWagiFactory(compiled, spec, { pool, log: () => undefined });
  const instance = factory.create('wagi');
  await instance.ready;
  const server = harness(instance);
  return {
    name: 'WAGI hello (C), fresh sandbox per request',
    url: await listen(server),
    instance: undefined,
    runs: [],
    cpu: emptyTally(),
    close: async () => {
      server.close();
      await instance.stop();
      await factory.close();
    },
  };
}

async function plainTarget(): Promise<Target> {
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`Hello from a Lamplighter component! You asked for ${new URL(req.url ?? '/', 'http://x').pathname}\n`);
  });
  return {
    name: 'node:http hello (ceiling)',
    url: await listen(server),
    instance: undefined,
    runs: [],
    cpu: emptyTally(),
    close: async () => {
      server.close();
    },
  };
}

/** Runs one round against a target, adding the CPU this process spent meanwhile to its tally. */
async function round(target: Target): Promise<void> {
  const component = target.instance instanceof ComponentInstance ? target.instance : undefined;
  const before = component?.stats;
  const cpu = process.cpuUsage();
  target.runs.push(await runWrk(target.url, { connections: CONNECTIONS, seconds: SECONDS }));
  const used = process.cpuUsage(cpu);
  if (!component || !before) return;
  const after = component.stats;
  const tally = target.cpu;
  tally.cpuUs += used.user + used.system;
  tally.requests += after.requests - before.requests;
  tally.sampled += after.sampled - before.sampled;
  tally.handlerCpuNs += after.handlerCpuNs - before.handlerCpuNs;
  tally.restoreCpuNs += after.restoreCpuNs - before.restoreCpuNs;
  tally.instantiateCpuNs += after.instantiateCpuNs - before.instantiateCpuNs;
  tally.restored += after.restored - before.restored;
  tally.replaced += after.replaced - before.replaced;
  tally.dirtyBlocks += after.dirtyBlocks - before.dirtyBlocks;
}

interface CpuSplit {
  totalUs: number;
  handlerUs: number;
  restoreUs: number;
  instantiateUs: number;
  restOfProcessUs: number;
}

function cpuSplit(t: CpuTally): CpuSplit {
  // Handler and restore are sampled (one request in eight); new instances are all counted.
  const perSampled = (ns: number): number => ns / 1000 / Math.max(1, t.sampled);
  const totalUs = t.cpuUs / Math.max(1, t.requests);
  const handler = perSampled(t.handlerCpuNs);
  const restore = perSampled(t.restoreCpuNs);
  const instantiate = t.instantiateCpuNs / 1000 / Math.max(1, t.requests);
  return { totalUs, handlerUs: handler, restoreUs: restore, instantiateUs: instantiate, restOfProcessUs: totalUs - handler - restore - instantiate };
}

async function main(): Promise<void> {
  say(`Component benchmark — wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, ${ROUNDS} alternating rounds, medians; ${WORKERS} worker(s) per instance; ${new Date().toISOString().slice(0, 10)}`);
  const hello = await cachedHelloBuild();
  const helloSpec = specOf(componentManifest('request'), () => undefined);
  const helloPrepared = await prepareComponent(hello, helloSpec);
  const reusable = await buildReusableComponent();
  const reusablePrepared = await prepareComponent(reusable, specOf(componentManifest('request'), () => undefined));
  const pool = new SandboxPool({ size: WORKERS });

  const targets: Target[] = [
    await plainTarget(),
    await lightWagi(pool),
    await lightComponent('component hello (TS), isolation = "request"', helloPrepared, helloSpec),
    await lightComponent('stand-in component (wasm), isolation = "request"', reusablePrepared, specOf(componentManifest('request'), () => undefined)),
    await lightComponent('stand-in component (wasm), isolation = "instance"', reusablePrepared, specOf(componentManifest('instance'), () => undefined)),
  ];
  try {
    for (const target of targets) await runWrk(target.url, { connections: CONNECTIONS, seconds: 1 });
    for (let r = 0; r < ROUNDS; r++) for (const target of targets) await round(target);
  } finally {
    for (const target of targets) await target.close();
    await pool.close();
  }

  const summary = targets.map((t) => ({
    name: t.name,
    rps: median(t.runs.map((r) => r.rps)),
    p50: median(t.runs.map((r) => r.p50)),
    p99: median(t.runs.map((r) => r.p99)),
    errors: t.runs.reduce((a, r) => a + r.errors, 0),
    cpu: t.cpu.requests > 0 ? { ...cpuSplit(t.cpu), restored: t.cpu.restored, replaced: t.cpu.replaced, dirtyBlocksPerRestore: t.cpu.dirtyBlocks / Math.max(1, t.cpu.restored) } : undefined,
  }));
  const wagi = summary[1]!;
  say('');
  say('| target | req/s | p50 ms | p99 ms | errors | vs WAGI |');
  say('|---|---:|---:|---:|---:|---:|');
  for (const s of summary) say(`| ${s.name} | ${s.rps.toFixed(0)} | ${s.p50.toFixed(2)} | ${s.p99.toFixed(2)} | ${s.errors} | ${(s.rps / wagi.rps).toFixed(3)}× |`);
  say('');
  say('CPU per request (µs): total of this process, all threads = worker thread CPU in the handler (bindings + guest + host) + restore + new instances, and the rest (messages, HTTP harness, main thread)');
  say('| target | total | handler | restore | new instances | rest | restores | replacements | dirty 64 KiB blocks per restore |');
  say('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of summary) {
    if (!s.cpu) continue;
    const c = s.cpu;
    say(`| ${s.name} | ${c.totalUs.toFixed(0)} | ${c.handlerUs.toFixed(0)} | ${c.restoreUs.toFixed(0)} | ${c.instantiateUs.toFixed(0)} | ${c.restOfProcessUs.toFixed(0)} | ${c.restored} | ${c.replaced} | ${c.dirtyBlocksPerRestore.toFixed(1)} |`);
  }
  if (flags.json) process.stdout.write(`${JSON.stringify({ connections: CONNECTIONS, seconds: SECONDS, rounds: ROUNDS, workers: WORKERS, summary }, null, 2)}\n`);
}

await main();
