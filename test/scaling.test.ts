// The scaler: time-weighted demand, the scale policy, and scale-to-zero / cold start on a real node.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseManifest } from '../src/manifest/index.js';
import type { WagiFactory } from '../src/runtime/wasm/index.js';
import { decideScale, DemandTracker } from '../src/scaler/index.js';
import { startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';

function scaleOf(extra: string) {
  return parseManifest(wagiApp('a', 'f', 'f.wasm', ['/f'], extra)).functions[0]!.scale;
}

describe('demand tracker', () => {
  test('demand tracker — concurrency is weighted by time, not sampled', () => {
    const d = new DemandTracker(0, { windowMs: 10_000, bucketMs: 1000 });
    // Two requests for the whole first second, none for the next eight: the mean is 2/9.
    d.begin(0);
    d.begin(0);
    d.end(1000);
    d.end(1000);
    assert.ok(Math.abs(d.concurrency(9000) - 2 / 9) < 1e-9, String(d.concurrency(9000)));
    // Once the first second leaves the window, nothing is left.
    assert.equal(d.concurrency(10_000), 0);
  });

  test('demand tracker — a burst between two ticks still counts', () => {
    const d = new DemandTracker(0, { windowMs: 2000, bucketMs: 1000 });
    for (let i = 0; i < 10; i++) d.begin(100);
    for (let i = 0; i < 10; i++) d.end(600);
    // 10 requests × 0.5 s inside a 1.9 s span.
    assert.ok(Math.abs(d.concurrency(1900) - 5 / 1.9) < 1e-9);
    assert.ok(Math.abs(d.rate(1900) - 10 / 1.9) < 1e-9);
    assert.equal(d.active, 0);
  });

  test('demand tracker — old buckets fall out of the window', () => {
    const d = new DemandTracker(0, { windowMs: 3000, bucketMs: 1000 });
    d.begin(0);
    d.end(1000);
    assert.ok(d.concurrency(2000) > 0);
    assert.equal(d.concurrency(60_000), 0);
    assert.equal(d.rate(60_000), 0);
  });
});

describe('scale policy', () => {
  test('scale policy — desired count follows concurrency over target, within min and max', () => {
    const scale = scaleOf('[function.scale]\ntarget = 4\nmax = 3\nmin = 0\nwindow = "2s"');
    const d = new DemandTracker(0, { windowMs: 2000 });
    for (let i = 0; i < 10; i++) d.begin(0);
    assert.equal(decideScale(scale, d, 1000).desired, 3);
    for (let i = 0; i < 4; i++) d.end(1000);
    const mid = decideScale(scale, d, 3500);
    assert.equal(mid.desired, 2, JSON.stringify(mid));
  });

  test('scale policy — scales to zero only after idle, and a trickle keeps one lit', () => {
    const scale = scaleOf('[function.scale]\nidle = "30s"\nwindow = "10s"');
    const d = new DemandTracker(0);
    // One short request every 20 s for two minutes: never idle for 30 s.
    for (let t = 0; t <= 120_000; t += 20_000) {
      d.begin(t);
      d.end(t + 5);
      assert.equal(decideScale(scale, d, t + 19_000).desired, 1, `at ${t}`);
    }
    assert.equal(decideScale(scale, d, 120_005 + 29_000).desired, 1);
    const idle = decideScale(scale, d, 120_005 + 30_001);
    assert.equal(idle.desired, 0);
    assert.equal(idle.active, false);
  });

  test('scale policy — idle shorter than the window puts the function out once idle has passed', () => {
    const scale = scaleOf('[function.scale]\nidle = "2s"\nwindow = "10s"');
    const d = new DemandTracker(0, { windowMs: scale.windowMs });
    // A busy second: the 10 s window remembers it long after `idle` has passed.
    for (let i = 0; i < 4; i++) d.begin(0);
    for (let i = 0; i < 4; i++) d.end(1000);
    assert.equal(decideScale(scale, d, 2999).desired, 1);
    assert.ok(d.concurrency(3001) > 0, 'the window still holds the burst');
    const out = decideScale(scale, d, 3001);
    assert.equal(out.active, false);
    assert.equal(out.desired, 0, JSON.stringify(out));
    // A request still in flight keeps it lit however long it runs.
    d.begin(4000);
    assert.equal(decideScale(scale, d, 60_000).desired, 1);
    d.end(60_000);
    assert.equal(decideScale(scale, d, 62_001).desired, 0);
  });

  test('scale policy — a function idle under rate scaling goes out too', () => {
    const scale = scaleOf('[function.scale]\nrate = 1\nidle = "1s"\nwindow = "10s"');
    const d = new DemandTracker(0, { windowMs: scale.windowMs });
    for (let i = 0; i < 30; i++) {
      d.begin(i * 10);
      d.end(i * 10 + 5);
    }
    assert.ok(decideScale(scale, d, 1000).desired >= 1);
    assert.equal(decideScale(scale, d, 1296).desired, 0);
  });

  test('scale policy — min keeps instances lit while idle', () => {
    const scale = scaleOf('[function.scale]\nmin = 2\nidle = "1s"');
    assert.equal(decideScale(scale, new DemandTracker(0), 100_000).desired, 2);
  });

  test('scale policy — rate mode divides requests per second by scale.rate', () => {
    const scale = scaleOf('[function.scale]\nrate = 10\nwindow = "1s"\nmax = 100');
    const d = new DemandTracker(0, { windowMs: 1000 });
    for (let i = 0; i < 45; i++) {
      d.begin(i * 20);
      d.end(i * 20 + 1);
    }
    const decision = decideScale(scale, d, 999);
    assert.equal(decision.metric, 'rate');
    assert.equal(decision.desired, 5);
  });
});

describe('scale to zero on a node', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode({ scaleIntervalMs: 25 });
    await node.deploy(wagiApp('hello', 'hello', 'hello.wasm', ['/hello'], '[function.scale]\nidle = "300ms"\nwindow = "1s"'), { 'hello.wasm': wagiFixture('../../../examples/hello/hello') });
    await node.deploy(
      wagiApp('slow', 'slow', 'slow.wasm', ['/slow'], '[function.limits]\nconcurrency = 1\nmax_pending = 3\n[function.scale]\nmax = 1\nidle = "5s"'),
      { 'slow.wasm': wagiFixture('slow') },
    );
  });
  after(() => node.close());

  async function waitFor(check: () => boolean, ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (!check()) {
      if (Date.now() > until) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  test('scale to zero — a function starts at zero, lights on the first request, goes out when idle', async () => {
    const group = node.platform.group('hello')!;
    assert.equal(group.instanceCount, 0);
    const first = await fetch(`${node.url}/hello`);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('x-lamplighter-cold-start'), 'true');
    await first.text();
    const warm = await fetch(`${node.url}/hello`);
    assert.equal(warm.headers.get('x-lamplighter-cold-start'), 'false');
    await warm.text();
    assert.equal(group.instanceCount, 1);
    await waitFor(() => group.instanceCount === 0, 5000);
    // At zero nothing of the function stays in sandbox memory.
    const metrics = await (await fetch(`${node.adminUrl}/metrics`)).text();
    assert.match(metrics, /^lamplighter_instances\{function="hello"\} 0$/m);
    assert.match(metrics, /^lamplighter_cold_starts_total\{function="hello"\} 1$/m);
    assert.equal(node.platform.pool.holders((group.factory as WagiFactory).moduleKey), 0);
    const again = await fetch(`${node.url}/hello`);
    assert.equal(again.status, 200);
    assert.equal(again.headers.get('x-lamplighter-cold-start'), 'true');
    assert.equal(await again.text(), 'Hello from Lamplighter!\n');
    assert.match(await (await fetch(`${node.adminUrl}/metrics`)).text(), /^lamplighter_cold_starts_total\{function="hello"\} 2$/m);
  });

  test('scale to zero — idle shorter than the window puts the function out within about a second of idle', async () => {
    // The node's own scaler interval (1 s), as `serve` runs it.
    const own = await startTestNode();
    try {
      await own.deploy(wagiApp('short', 'short', 'hello.wasm', ['/short'], '[function.scale]\nidle = "2s"\nwindow = "10s"'), { 'hello.wasm': wagiFixture('../../../examples/hello/hello') });
      const group = own.platform.group('short')!;
      for (let i = 0; i < 5; i++) await (await fetch(`${own.url}/short`)).text();
      const last = Date.now();
      assert.equal(group.instanceCount, 1);
      await waitFor(() => group.instanceCount === 0, 8000);
      const took = Date.now() - last;
      // idle (2 s) + one scaler tick (1 s); the 10 s window would have kept it past 10 s.
      assert.ok(took >= 1900 && took <= 3500, `out after ${took} ms`);
    } finally {
      await own.close();
    }
  });

  test('scale to zero — a steady trickle keeps the function lit', async () => {
    const group = node.platform.group('hello')!;
    for (let i = 0; i < 8; i++) {
      await (await fetch(`${node.url}/hello`)).text();
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(group.instanceCount, 1, `after request ${i}`);
    }
  });

  test('pending cap — requests past limits.max_pending get 503 with Retry-After, none hang', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, () => fetch(`${node.url}/slow?ms=150`).then(async (r) => ({ status: r.status, retry: r.headers.get('retry-after'), text: await r.text() }))));
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 503);
    assert.equal(ok.length + refused.length, 10);
    assert.ok(ok.length >= 4 && ok.length <= 5, `one in flight + three held (+1 racing), got ${ok.length}`);
    for (const r of refused) {
      assert.equal(r.retry, '1');
      assert.equal(JSON.parse(r.text).error.code, 'LL_OVER_CAPACITY');
    }
    assert.equal(node.platform.group('slow')!.instanceCount <= 1, true);
  });
});

describe('rollback checks', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
  });
  after(() => node.close());

  test('rollback — an older revision whose routes another app has taken since is refused, and the node keeps working (regression)', async () => {
    const hello = wagiFixture('../../../examples/hello/hello');
    await node.deploy(wagiApp('a', 'fa', 'h.wasm', ['/x']), { 'h.wasm': hello });
    await node.deploy(wagiApp('a', 'fa', 'h.wasm', ['/y']), { 'h.wasm': hello });
    await node.deploy(wagiApp('b', 'fb', 'h.wasm', ['/x']), { 'h.wasm': hello });
    await assert.rejects(node.platform.rollback('a'), (err: Error & { code?: string }) => err.code === 'LL_DEPLOY_CONFLICT' && /\/x/.test(err.message));
    assert.deepEqual(node.platform.list().map((app) => `${app.name}@${app.revision}`), ['a@2', 'b@1']);
    assert.equal((await fetch(`${node.url}/y`)).status, 200);
    assert.equal((await fetch(`${node.url}/x`)).status, 200);
    // Other deploys still go through, and the stored state still restores.
    await node.deploy(wagiApp('c', 'fc', 'h.wasm', ['/z']), { 'h.wasm': hello });
    assert.equal((await node.platform.store.current('a'))?.number, 2);
  });
});
