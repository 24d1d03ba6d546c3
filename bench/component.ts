// Component runtime benchmark: hello throughput and latency under wrk, and what one fresh instance costs.
//
// Usage: node dist/bench/component.js [-c 16] [-d 10] [--workers N] [--json]
// Builds examples/hello-ts (cached under the OS temp dir by source hash), serves it through a small
// node:http server that routes every request to one component instance with N workers (a fresh
// component instance per request), and loads it with wrk from a separate process. A plain node:http
// hello server is measured the same way in the same run as the baseline. Then it times, on this
// thread: transpile-free instantiation of the component (JS bindings + core modules) and of the
// main core module alone, and reports the memory snapshot size that bounds both.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { median } from '../src/loadgen/index.js';
import { parseManifest } from '../src/manifest/index.js';
import type { InvocationRequest } from '../src/instance/index.js';
import { buildComponent, createComponentFactory, prepareComponent, type PreparedComponent } from '../src/runtime/component/index.js';

const execFileAsync = promisify(execFile);
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const HANDLER = path.join(REPO, 'examples', 'hello-ts', 'handler.ts');
const WRK = '/usr/bin/wrk';

interface Flags {
  connections: number;
  seconds: number;
  workers: number;
  json: boolean;
}

function parseFlags(argv: string[]): Flags {
  const flags: Flags = { connections: 16, seconds: 10, workers: Math.max(1, availableParallelism()), json: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = (): number => Number(argv[++i]);
    if (arg === '-c') flags.connections = next();
    else if (arg === '-d') flags.seconds = next();
    else if (arg === '--workers') flags.workers = next();
    else if (arg === '--json') flags.json = true;
    else throw new Error(`unknown argument ${arg}`);
  }
  return flags;
}

/** Load figures from one wrk run. */
interface WrkFigures {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
}

function toMs(value: string): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(value.trim());
  if (!match) return Number.NaN;
  const n = Number(match[1]);
  return match[2] === 'us' ? n / 1000 : match[2] === 's' ? n * 1000 : n;
}

async function wrk(url: string, flags: Flags): Promise<WrkFigures> {
  const threads = Math.min(2, flags.connections);
  const { stdout } = await execFileAsync(WRK, ['-t', String(threads), '-c', String(flags.connections), '-d', `${flags.seconds}s`, '--latency', '--timeout', '10s', url], {
    timeout: (flags.seconds + 30) * 1000,
  });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? Number.NaN);
  const p50 = toMs(/\s50%\s+(\S+)/.exec(stdout)?.[1] ?? '');
  const p99 = toMs(/\s99%\s+(\S+)/.exec(stdout)?.[1] ?? '');
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
  const errors = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0) + Number(/Socket errors:.*?timeout (\d+)/.exec(stdout)?.[1] ?? 0);
  return { rps, p50Ms: p50, p99Ms: p99, requests, errors };
}

function listen(server: http.Server): Promise<number> {
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

async function cachedBuild(): Promise<Uint8Array> {
  const source = await readFile(HANDLER);
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 24);
  const file = path.join(tmpdir(), 'lamplighter-bench', `hello-ts-${hash}.wasm`);
  try {
    return new Uint8Array(await readFile(file));
  } catch {
    const { component } = await buildComponent(HANDLER);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(`${file}.tmp`, component);
    await rename(`${file}.tmp`, file);
    return component;
  }
}

/** Per-instantiation cost measured on this thread, with imports that are never called. */
async function instantiationCost(prepared: PreparedComponent, rounds: number): Promise<{ componentMs: number; coreMs: number; memoryBytes: number; dataBytes: number }> {
  const modules: Record<string, WebAssembly.Module> = {};
  let main: { name: string; module: WebAssembly.Module } | undefined;
  for (const [name, bytes] of Object.entries(prepared.files)) {
    if (!name.endsWith('.wasm')) continue;
    const module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
    modules[name] = module;
    if (WebAssembly.Module.exports(module).some((e) => e.kind === 'memory')) main = { name, module };
  }
  const never = (): never => {
    throw new Error('not called while instantiating');
  };
  const iface = new Proxy({}, { get: (_t, key) => (typeof key === 'string' && /^[A-Z]/.test(key) ? class {} : never) });
  const imports = new Proxy({}, { get: () => iface });
  // As in the component worker: a cheap WebAssembly.promising stub (see component-worker.ts).
  const wasm = WebAssembly as unknown as { promising?: unknown };
  if (wasm.promising === undefined) {
    const unsupported = new TypeError('no JSPI');
    wasm.promising = (): never => {
      throw unsupported;
    };
  }
  const bindings = Buffer.from(prepared.files[prepared.entry] as Uint8Array).toString('utf8');
  const { instantiate } = (await import(`data:text/javascript;base64,${Buffer.from(bindings).toString('base64')}`)) as {
    instantiate: (get: (p: string) => WebAssembly.Module, imports: unknown) => unknown;
  };
  const time = (fn: () => void): number => {
    const samples: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t = performance.now();
      fn();
      samples.push(performance.now() - t);
    }
    return median(samples);
  };
  const componentMs = time(() => instantiate((p) => modules[p] as WebAssembly.Module, imports));
  let coreMs = Number.NaN;
  let memoryBytes = 0;
  if (main) {
    const coreImports: Record<string, Record<string, unknown>> = {};
    for (const imp of WebAssembly.Module.imports(main.module)) {
      coreImports[imp.module] ??= {};
      (coreImports[imp.module] as Record<string, unknown>)[imp.name] = never;
    }
    coreMs = time(() => new WebAssembly.Instance(main.module, coreImports as WebAssembly.Imports));
    const instance = new WebAssembly.Instance(main.module, coreImports as WebAssembly.Imports);
    const memory = Object.values(instance.exports).find((e) => e instanceof WebAssembly.Memory) as WebAssembly.Memory | undefined;
    memoryBytes = memory?.buffer.byteLength ?? 0;
  }
  const dataBytes = main ? (prepared.files[main.name] as Uint8Array).length : 0;
  return { componentMs, coreMs, memoryBytes, dataBytes };
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const say = (line: string): void => {
    if (!flags.json) process.stdout.write(`${line}\n`);
  };

  let t = performance.now();
  const bytes = await cachedBuild();
  say(`component: ${(bytes.length / 1024 / 1024).toFixed(1)} MiB (built or cached in ${((performance.now() - t) / 1000).toFixed(1)} s)`);
  const spec = parseManifest(await readFile(path.join(REPO, 'examples', 'hello-ts', 'lamplighter.toml'), 'utf8')).functions[0];
  if (!spec) throw new Error('examples/hello-ts has no function');
  spec.limits.concurrency = flags.workers;
  spec.limits.timeoutMs = 30_000;
  t = performance.now();
  const prepared = await prepareComponent(bytes, spec);
  const prepareMs = performance.now() - t;
  say(`prepare (validate + transpile): ${prepareMs.toFixed(0)} ms`);

  const factory = createComponentFactory(prepared, spec, { log: () => undefined });
  const instance = factory.create('bench');
  t = performance.now();
  await instance.ready;
  const readyMs = performance.now() - t;
  say(`instance ready (compile + first worker + first component instance): ${readyMs.toFixed(0)} ms`);

  let nextId = 0;
  const componentServer = http.createServer((req, res) => {
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
  const baselineServer = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`Hello from a Lamplighter component! You asked for ${new URL(req.url ?? '/', 'http://x').pathname}\n`);
  });
  const componentPort = await listen(componentServer);
  const baselinePort = await listen(baselineServer);

  say(`load: wrk -c ${flags.connections} -d ${flags.seconds}s from a separate process; component instance with ${flags.workers} worker(s)`);
  const baseline = await wrk(`http://127.0.0.1:${baselinePort}/hello`, flags);
  say(`  baseline node:http hello   ${baseline.rps.toFixed(0).padStart(7)} req/s  p50 ${baseline.p50Ms.toFixed(2)} ms  p99 ${baseline.p99Ms.toFixed(2)} ms`);
  const component = await wrk(`http://127.0.0.1:${componentPort}/hello`, flags);
  say(`  component hello (fresh)    ${component.rps.toFixed(0).padStart(7)} req/s  p50 ${component.p50Ms.toFixed(2)} ms  p99 ${component.p99Ms.toFixed(2)} ms  errors ${component.errors}`);
  const single = await wrk(`http://127.0.0.1:${componentPort}/hello`, { ...flags, connections: 1 });
  say(`  component, one connection  ${single.rps.toFixed(0).padStart(7)} req/s  p50 ${single.p50Ms.toFixed(2)} ms  p99 ${single.p99Ms.toFixed(2)} ms  errors ${single.errors}`);

  await instance.stop();
  await factory.close();
  componentServer.close();
  baselineServer.close();

  const cost = await instantiationCost(prepared, 30);
  say(`per-request instantiation (median of 30, this thread):`);
  say(`  component (jco bindings + core modules): ${cost.componentMs.toFixed(2)} ms`);
  say(`  main core module alone:                  ${cost.coreMs.toFixed(2)} ms`);
  say(`  snapshot: ${(cost.dataBytes / 1024 / 1024).toFixed(1)} MiB main module, ${(cost.memoryBytes / 1024 / 1024).toFixed(1)} MiB initial linear memory`);

  if (flags.json) {
    process.stdout.write(
      `${JSON.stringify({ componentBytes: bytes.length, prepareMs, readyMs, workers: flags.workers, connections: flags.connections, seconds: flags.seconds, baseline, component, single, instantiation: cost }, null, 2)}\n`,
    );
  }
}

await main();
