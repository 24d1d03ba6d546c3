// Components deployed on a node and served through the gateway; the transpile is cached in the store.
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Platform } from '../src/control/index.js';
import { digestOf } from '../src/store/index.js';
import { startTestNode, type TestNode } from '../src/testing/index.js';
import { DEFAULT_MAX_WORKERS } from '../src/runtime/component/index.js';
import { buildFixtureComponent } from './component-helpers.js';

const manifest = (greeting: string) =>
  `name = "comp"\n[[function]]\nname = "comp"\nruntime = "component"\nsource = "echo.wasm"\nroutes = ["/comp/..."]\n[function.env]\nGREETING = "${greeting}"\n`;

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

  test('component on a node — the transpile is cached by digest and reused after a restart', async () => {
    const cache = await readdir(path.join(node.dataDir, 'cache'));
    assert.ok(cache.includes(`component-v1-${digestOf(wasm)}`), cache.join(', '));
    // A transpile after the restart would write the entry again (a new file by rename).
    const entry = path.join(node.dataDir, 'cache', `component-v1-${digestOf(wasm)}`);
    const written = await stat(entry);
    // A second node on the same data directory restores the app from the store and its cache.
    await node.platform.close();
    const again = await Platform.start({ dataDir: node.dataDir, port: 0, adminPort: null, logLevel: 'silent', processMetrics: false, sandboxWorkers: 1 });
    try {
      const res = await fetch(`http://127.0.0.1:${again.port}/comp/after-restart`, { method: 'POST', body: 'still here' });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'still here');
      const after = await stat(entry);
      assert.equal(after.ino, written.ino, 'the cache entry was read, not written again');
      assert.equal(after.mtimeMs, written.mtimeMs);
    } finally {
      await again.close();
    }
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
