// Component runtime benchmark: hello under wrk with isolation "request" and "instance", beside WAGI, with CPU per request by part.
//
// Usage: node dist/bench/component.js [-c 32] [-d 5] [--rounds 3] [--warmup 8] [--workers N] [--json]
//
// Every target is served the same way: a small node:http server hands each request to one
// Lamplighter Instance (N worker threads, or the WAGI sandbox pool), and wrk loads it from its own
// process, in alternating rounds so that background noise hits all alike; medians are reported.
// Targets: plain node:http (the ceiling), WAGI hello (examples/hello, a fresh sandbox per request),
// the TypeScript hello (examples/hello-ts built with `lamplighter build`) under isolation "request"
// (an instance restored as new per request) and, built with --isolation instance, under
// "instance" (one instance serves up to max_reuse requests), and the stand-in component of the tests (test/fixtures/component/reusable.wat) under
// both. For each component target it reports CPU per
// request of this process (all threads), split into the worker's parts from the instance's
// counters; the rest is messages between threads and the HTTP harness. Last, the hello lit from
// zero to its first answer, from a parked worker and starting one.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Instance, InstanceFactory, InvocationRequest } from '../src/instance/index.js';
import { parseManifest, type FunctionSpec } from '../src/manifest/index.js';
import { ComponentInstance, createComponentFactory, prepareComponent, WorkerBudget, type PreparedComponent } from '../src/runtime/component/index.js';
import { compileWagiModule, createWagiFactory, SandboxPool } from '../src/runtime/wasm/index.js';
import { buildReusableComponent } from '../test/component-helpers.js';
import { helloComponentFile } from './hello-component.js';
import { median, runWrk, type WrkResult } from './wrk.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

const { values: flags } = parseArgs({
  options: {
    c: { type: 'string', default: '32' },
    d: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    // Seconds of load before the rounds, per target. A component's cost a request falls about
    // threefold over its first 5,000 requests as V8 warms up (see docs/component-runtime.md).
    warmup: { type: 'string', default: '8' },
    workers: { type: 'string', default: String(Math.max(1, availableParallelism())) },
    json: { type: 'boolean', default: false },
  },
});
const CONNECTIONS = Number(flags.c);
const SECONDS = Number(flags.d);
const ROUNDS = Number(flags.rounds);
const WARMUP = Number(flags.warmup);
const WORKERS = Number(flags.workers);

function say(line: string): void {
  if (!flags.json) process.stdout.write(`${line}\n`);
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
      // As the gateway gives it (limits.timeout from arrival): such a request may be sent ahead.
      deadline: performance.now() + 30_000,
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
  restored: number;
  replaced: number;
  dirtyBlocks: number;
}

function emptyTally(): CpuTally {
  return { cpuUs: 0, requests: 0, restored: 0, replaced: 0, dirtyBlocks: 0 };
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
  const factory = createComponentFactory(prepared, spec, { log: () => undefined, maxWorkers: WORKERS, workerBudget: new WorkerBudget(WORKERS) });
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
  tally.restored += after.restored - before.restored;
  tally.replaced += after.replaced - before.replaced;
  tally.dirtyBlocks += after.dirtyBlocks - before.dirtyBlocks;
}

/** Where one request's CPU goes, measured one request at a time (no HTTP, no contention inside the process). */
interface CpuSplit {
  /** CPU of this process per request, all threads. */
  totalUs: number;
  /** Worker: the handler's export, bindings and host calls included (wall time, one request at a time). */
  handlerUs: number;
  /** Worker: restoring the instance afterwards. */
  restoreUs: number;
  /** Worker: new instances, spread over the requests. */
  instantiateUs: number;
  /** The rest: messages between threads on both sides, the caller's side of the instance. */
  restUs: number;
}

function invocation(i: number): InvocationRequest {
  return {
    id: `seq-${i}`,
    method: 'GET',
    url: '/hello',
    headers: { host: '127.0.0.1' },
    body: Readable.from([]),
    remoteAddress: '127.0.0.1',
    host: '127.0.0.1',
    serverPort: 0,
    route: { pattern: '/...', scriptName: '', pathInfo: '/hello' },
    signal: new AbortController().signal,
  };
}

async function drain(body: InvocationResponseBody): Promise<void> {
  if (body && !Buffer.isBuffer(body)) for await (const chunk of body as Readable) void chunk;
}

type InvocationResponseBody = Awaited<ReturnType<Instance['handle']>>['body'];

/** Sends `count` requests one after another straight to the instance and splits their CPU. */
async function cpuSplit(instance: ComponentInstance, count: number): Promise<CpuSplit> {
  for (let i = 0; i < 50; i++) await drain((await instance.handle(invocation(i))).body);
  const before = instance.stats;
  const cpu = process.cpuUsage();
  for (let i = 0; i < count; i++) await drain((await instance.handle(invocation(i))).body);
  const used = process.cpuUsage(cpu);
  const after = instance.stats;
  const requests = Math.max(1, after.requests - before.requests);
  const per = (ns: number): number => ns / 1000 / requests;
  const totalUs = (used.user + used.system) / requests;
  const handlerUs = per(after.handlerNs - before.handlerNs);
  const restoreUs = per(after.restoreNs - before.restoreNs);
  const instantiateUs = per(after.instantiateNs - before.instantiateNs);
  return { totalUs, handlerUs, restoreUs, instantiateUs, restUs: totalUs - handlerUs - restoreUs - instantiateUs };
}

/** Lights an instance from zero and times it to its first answer, `samples` times; the median in ms. */
async function coldStart(prepared: PreparedComponent, spec: FunctionSpec, standby: boolean, samples: number): Promise<number> {
  const factory = createComponentFactory(prepared, spec, { log: () => undefined, maxWorkers: WORKERS, workerBudget: new WorkerBudget(WORKERS), standby });
  await factory.standbyReady();
  const times: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const started = performance.now();
      const instance = factory.create(`cold-${i}`);
      await instance.ready;
      const response = await instance.handle({
        id: `cold-${i}`,
        method: 'GET',
        url: '/hello',
        headers: { host: '127.0.0.1' },
        body: Readable.from([]),
        remoteAddress: '127.0.0.1',
        host: '127.0.0.1',
        serverPort: 0,
        route: { pattern: '/...', scriptName: '', pathInfo: '/hello' },
        signal: new AbortController().signal,
      });
      if (response.body && !Buffer.isBuffer(response.body)) for await (const chunk of response.body as Readable) void chunk;
      times.push(performance.now() - started);
      await instance.stop();
    }
  } finally {
    await factory.close();
  }
  return median(times);
}

async function main(): Promise<void> {
  say(`Component benchmark — wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, ${ROUNDS} alternating rounds after ${WARMUP} s of warm-up each, medians; ${WORKERS} worker(s) per instance; ${new Date().toISOString().slice(0, 10)}`);
  const hello = new Uint8Array(await readFile(await helloComponentFile()));
  const helloSpec = specOf(componentManifest('request'), () => undefined);
  const helloPrepared = await prepareComponent(hello, helloSpec);
  const helloReusableSpec = specOf(componentManifest('instance'), () => undefined);
  const helloReusable = await prepareComponent(new Uint8Array(await readFile(await helloComponentFile('instance'))), helloReusableSpec);
  const reusable = await buildReusableComponent();
  const reusablePrepared = await prepareComponent(reusable, specOf(componentManifest('request'), () => undefined));
  const pool = new SandboxPool({ size: WORKERS });

  const splits = new Map<string, CpuSplit>();
  const targets: Target[] = [
    await plainTarget(),
    await lightWagi(pool),
    await lightComponent('component hello (TS), isolation = "request"', helloPrepared, helloSpec),
    await lightComponent('component hello (TS, built with --isolation instance), isolation = "instance"', helloReusable, helloReusableSpec),
    await lightComponent('stand-in component (wasm), isolation = "request"', reusablePrepared, specOf(componentManifest('request'), () => undefined)),
    await lightComponent('stand-in component (wasm), isolation = "instance"', reusablePrepared, specOf(componentManifest('instance'), () => undefined)),
  ];
  try {
    for (const target of targets) await runWrk(target.url, { connections: CONNECTIONS, seconds: WARMUP });
    for (let r = 0; r < ROUNDS; r++) for (const target of targets) await round(target);
    for (const target of targets) if (target.instance instanceof ComponentInstance) splits.set(target.name, await cpuSplit(target.instance, 1000));
  } finally {
    for (const target of targets) await target.close();
    await pool.close();
  }

  const coldParked = await coldStart(helloPrepared, helloSpec, true, 15);
  const coldUnparked = await coldStart(helloPrepared, helloSpec, false, 7);

  const summary = targets.map((t) => ({
    name: t.name,
    rps: median(t.runs.map((r) => r.rps)),
    p50: median(t.runs.map((r) => r.p50)),
    p99: median(t.runs.map((r) => r.p99)),
    errors: t.runs.reduce((a, r) => a + r.errors, 0),
    cpuUnderLoadUs: t.cpu.requests > 0 ? t.cpu.cpuUs / t.cpu.requests : undefined,
    restored: t.cpu.restored,
    replaced: t.cpu.replaced,
    dirtyBlocksPerRestore: t.cpu.dirtyBlocks / Math.max(1, t.cpu.restored),
    split: splits.get(t.name),
  }));
  const wagi = summary[1]!;
  say('');
  say('| target | req/s | p50 ms | p99 ms | errors | vs WAGI |');
  say('|---|---:|---:|---:|---:|---:|');
  for (const s of summary) say(`| ${s.name} | ${s.rps.toFixed(0)} | ${s.p50.toFixed(2)} | ${s.p99.toFixed(2)} | ${s.errors} | ${(s.rps / wagi.rps).toFixed(3)}× |`);
  say('');
  say('CPU per request (µs). Under load: this process, all threads, during the rounds. Split: 1,000 requests one at a time');
  say('straight to the instance; handler (bindings + guest + host) and restore are the worker\'s, the rest is messages and the caller\'s side.');
  say('| target | under load | one at a time | handler | restore | new instances | rest | restores / replacements under load | dirty 64 KiB blocks per restore |');
  say('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of summary) {
    const c = s.split;
    if (!c || s.cpuUnderLoadUs === undefined) continue;
    say(
      `| ${s.name} | ${s.cpuUnderLoadUs.toFixed(0)} | ${c.totalUs.toFixed(0)} | ${c.handlerUs.toFixed(0)} | ${c.restoreUs.toFixed(0)} | ${c.instantiateUs.toFixed(0)} | ${c.restUs.toFixed(0)} | ${s.restored} / ${s.replaced} | ${s.dirtyBlocksPerRestore.toFixed(1)} |`,
    );
  }
  say('');
  say(`Component hello lit from zero to its first answer (median): ${coldParked.toFixed(1)} ms from a parked worker (15 samples), ${coldUnparked.toFixed(1)} ms starting a worker (7 samples)`);
  if (flags.json) process.stdout.write(`${JSON.stringify({ connections: CONNECTIONS, seconds: SECONDS, rounds: ROUNDS, warmup: WARMUP, workers: WORKERS, summary, coldParked, coldUnparked }, null, 2)}\n`);
}

await main();
