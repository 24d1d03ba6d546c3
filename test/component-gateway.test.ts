// Components deployed on a node and served through the gateway; the transpile is cached in the store.
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { DeployStepEvent } from '../src/observability/index.js';
import { ComponentCache, componentCacheDir, DEFAULT_MAX_WORKERS } from '../src/runtime/component/index.js';
import { digestOf } from '../src/store/index.js';
import { startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';
import { buildFixtureComponent } from './component-helpers.js';

const manifest = (greeting: string) =>
  `name = "comp"\n[[function]]\nname = "comp"\nruntime = "component"\nsource = "echo.wasm"\nroutes = ["/..."]\n[function.env]\nGREETING = "${greeting}"\n`;

// Every deploy in this file uses a per-user cache of its own, under a temp dir.
const cacheHomes: string[] = [];
async function freshCacheHome(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-xdg-'));
  cacheHomes.push(dir);
  return dir;
}
process.env.XDG_CACHE_HOME = await freshCacheHome();
after(() => Promise.all(cacheHomes.map((dir) => rm(dir, { recursive: true, force: true }))));

/** Deploy steps published while this file runs. */
const steps: DeployStepEvent[] = [];
diagnostics.subscribe('lamplighter:deploy:step', (message) => steps.push(message as DeployStepEvent));

/** The cache file of a component, in the cache the environment names now. */
function cacheEntry(wasm: Uint8Array): string {
  return new ComponentCache(componentCacheDir()).fileFor(digestOf(wasm));
}

// One GET after another over a kept-alive connection, until told to stop (at most 200 s or 100,000).
const CLIENT = `
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const latencies = [];
const errors = [];
let stopping = false;
parentPort.once('message', () => (stopping = true));
const get = () => new Promise((resolve) => {
  const req = http.get(workerData.url, { agent }, (res) => {
    res.resume();
    res.once('end', () => resolve(res.statusCode === 200 ? undefined : String(res.statusCode)));
    res.once('error', (err) => resolve(err.message));
  });
  req.once('error', (err) => resolve(err.message));
  req.setTimeout(10000, () => req.destroy(new Error('no answer within 10 s')));
});
(async () => {
  const started = performance.now();
  while (!stopping && performance.now() - started < 200000 && latencies.length < 100000) {
    const t0 = performance.now();
    const err = await get();
    latencies.push(performance.now() - t0);
    if (err) errors.push(err);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  agent.destroy();
  parentPort.postMessage({ latencies, errors });
})();
`;

/** Starts the request loop above against `url`; `stop()` ends it and returns what it measured. */
function startClient(url: string): { stop(): Promise<{ latencies: number[]; errors: string[] }> } {
  const worker = new Worker(CLIENT, { eval: true, workerData: { url } });
  const result = new Promise<{ latencies: number[]; errors: string[] }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return {
    stop: async () => {
      worker.postMessage('stop');
      try {
        return await result;
      } finally {
        await worker.terminate();
      }
    },
  };
}

describe('component on a node', () => {
  let node: TestNode;
  let wasm: Uint8Array;
  before(async () => {
    wasm = await buildFixtureComponent('echo.ts');
    node = await startTestNode();
    await node.deploy(manifest('one'), { 'echo.wasm': wasm });
  });
  after(() => node.close());

  test('component on a node — serves the echo contract through the gateway, fresh per request', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${node.url}/comp/x?q=${i}`, { method: 'POST', body: `body ${i}`, headers: { 'x-test': 'hdr' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-echo-method'), 'POST');
      assert.equal(res.headers.get('x-echo-query'), `q=${i}`);
      assert.equal(res.headers.get('x-echo-header'), 'hdr');
      assert.equal(await res.text(), `body ${i}`);
    }
  });

  test('component on a node — a handler that returns no response gets the JSON error body like every other error', async () => {
    const res = await fetch(`${node.url}/no-response`);
    assert.equal(res.status, 502);
    assert.equal(res.headers.get('content-type'), 'application/json');
    const { error } = (await res.json()) as { error: { code: string; message: string; requestId: string } };
    assert.equal(error.code, 'LL_BAD_HANDLER_RESPONSE');
    assert.match(error.message, /^Function 'comp' returned no response: fetch\(\) gave undefined, not a Response$/);
    assert.equal(error.requestId, res.headers.get('x-request-id'));
  });

  test('component on a node — the transpile is cached per user by digest and jco version, and read, not redone, by the next node', { timeout: 180_000 }, async () => {
    const entry = cacheEntry(wasm);
    const written = await stat(entry);
    assert.deepEqual(steps.filter((e) => e.function === 'comp' && e.phase === 'end').map((e) => e.outcome), ['transpiled']);
    // A second node on a fresh data directory (as a second `lamplighter up` has) finds it.
    const again = await startTestNode();
    try {
      await again.deploy(manifest('two'), { 'echo.wasm': wasm });
      const res = await fetch(`${again.url}/comp/second`, { method: 'POST', body: 'still here' });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'still here');
      const after = await stat(entry);
      assert.equal(after.ino, written.ino, 'the cache entry was read, not written again');
      assert.equal(after.mtimeMs, written.mtimeMs);
      assert.deepEqual(steps.filter((e) => e.function === 'comp' && e.phase === 'end').map((e) => e.outcome), ['transpiled', 'from the cache']);
    } finally {
      await again.close();
    }
  });

  test('component on a node — a damaged cache entry is detected and rebuilt, not trusted', { timeout: 180_000 }, async () => {
    const entry = cacheEntry(wasm);
    const good = await readFile(entry);
    // One byte of a core module's base64 changed: still JSON, still the right shape.
    const damaged = Buffer.from(good);
    const at = damaged.indexOf('"component.core.wasm":"') + 40_000;
    damaged[at] = damaged[at] === 0x41 ? 0x42 : 0x41;
    await writeFile(entry, damaged);
    const again = await startTestNode();
    try {
      steps.length = 0;
      await again.deploy(manifest('three'), { 'echo.wasm': wasm });
      assert.deepEqual(steps.filter((e) => e.function === 'comp' && e.phase === 'end').map((e) => e.outcome), ['transpiled']);
      assert.equal((await new ComponentCache(componentCacheDir()).read(digestOf(wasm))).kind, 'hit', 'the entry was written again, whole');
      const res = await fetch(`${again.url}/comp/rebuilt`, { method: 'POST', body: 'rebuilt' });
      assert.equal(await res.text(), 'rebuilt');
      assert.match(again.platform.logs.recent(['comp']).map((l) => l.text).join(''), /cache entry .* is damaged \(its checksum does not match its content\)/);
    } finally {
      await again.close();
    }
  });
});

describe('component on a node — deploys off the event loop', () => {
  let node: TestNode;
  let wasm: Uint8Array;
  before(async () => {
    wasm = await buildFixtureComponent('echo.ts');
    node = await startTestNode();
    await node.deploy(wagiApp('wagi', 'wagi', 'echo.wasm', ['/wagi/...']), { 'echo.wasm': wagiFixture('echo') });
  });
  after(() => node.close());

  test('component on a node — while a component is transpiled and compiled, another function keeps a p99 under 50 ms', { timeout: 240_000 }, async (t) => {
    // A cache of its own: this deploy transpiles.
    const saved = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = await freshCacheHome();
    let measured: { latencies: number[]; errors: string[] };
    try {
      assert.equal((await fetch(`${node.url}/wagi/warm`)).status, 200);
      // The client runs on a thread of its own, so a blocked gateway loop shows in its latencies.
      const client = startClient(`${node.url}/wagi/ping`);
      await node.deploy(manifest('p99'), { 'echo.wasm': wasm });
      measured = await client.stop();
    } finally {
      process.env.XDG_CACHE_HOME = saved;
    }
    const { latencies, errors } = measured;
    assert.ok(steps.some((e) => e.function === 'comp' && e.outcome === 'transpiled'));
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? Infinity;
    const worst = latencies.at(-1) ?? Infinity;
    t.diagnostic(`p99 ${p99.toFixed(1)} ms, worst ${worst.toFixed(0)} ms over ${latencies.length} requests`);
    assert.ok(latencies.length >= 100, `only ${latencies.length} requests during the deploy`);
    assert.deepEqual(errors, []);
    assert.ok(p99 < 50, `p99 ${p99.toFixed(1)} ms over ${latencies.length} requests (worst ${worst.toFixed(0)} ms)`);
    assert.equal((await fetch(`${node.url}/comp/after`, { method: 'POST', body: 'deployed' }).then((r) => r.text())), 'deployed');
  });
});

describe('component on a node — runaways', () => {
  // As many runaways as one instance runs worker threads; its concurrency says it takes more.
  const runaways = DEFAULT_MAX_WORKERS;
  let node: TestNode;
  before(async () => {
    const wasm = await buildFixtureComponent('echo.ts');
    node = await startTestNode();
    await node.deploy(
      `name = "spin"\n[[function]]\nname = "spin"\nruntime = "component"\nsource = "echo.wasm"\nroutes = ["/..."]\n` +
        `[function.limits]\ntimeout = "10s"\nconcurrency = ${4 * runaways}\n[function.scale]\nmax = 3\n`,
      { 'echo.wasm': wasm },
    );
  });
  after(() => node.close());

  test('component on a node — runaways count as demand: another instance is lit and healthy requests are answered', { timeout: 120_000 }, async () => {
    const group = node.platform.group('spin');
    assert.ok(group);
    assert.equal((await fetch(`${node.url}/warm`)).status, 200);
    const spinning = Array.from({ length: runaways }, () => fetch(`${node.url}/spin`).then((r) => r.status));
    const started = Date.now();
    while (group.inFlightCount < runaways) {
      assert.ok(Date.now() - started < 20_000, `only ${group.inFlightCount} of ${runaways} runaways started`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    let most = group.instanceCount;
    const watch = setInterval(() => (most = Math.max(most, group.instanceCount)), 20);
    try {
      const healthy = await Promise.all(
        Array.from({ length: 4 }, async (_, i) => {
          const res = await fetch(`${node.url}/echo?i=${i}`, { method: 'POST', body: `healthy ${i}` });
          return `${res.status} ${await res.text()}`;
        }),
      );
      assert.deepEqual(healthy, [0, 1, 2, 3].map((i) => `200 healthy ${i}`));
    } finally {
      clearInterval(watch);
    }
    assert.ok(most > 1, `the function stayed on ${most} instance(s)`);
    assert.deepEqual(await Promise.all(spinning), Array(runaways).fill(504));
  });
});
