// Breakers across a cluster of three real nodes in one process: a tenant failing on every node is
// refused on all three, one failing on a single node only there; function output forwarded to NATS.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { startTestCluster, wagiApp, wagiFixture, type TestCluster, type TestNode } from '../src/testing/index.js';
import { waitFor } from './cluster-helpers.js';

// Each node keeps an instance of its own, so that every request is served where it arrives (a node
// with no room of its own would forward it to a peer's instance, and that peer's breaker judge it).
const SCALE = '[function.scale]\nmin = 1';
const BREAKER = ['[function.breaker]', 'partition = "header:x-tenant"', 'min_requests = 4', 'failure_ratio = 0.5', 'window = "10s"', 'open_for = "3s"', 'half_open_probes = 1', 'consecutive_failures = 0'].join('\n');

async function call(node: TestNode, tenant: string, query = ''): Promise<number> {
  const res = await fetch(`${node.url}/tenant${query}`, { headers: { 'x-tenant': tenant } });
  await res.text();
  return res.status;
}

describe('breakers across the cluster', () => {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startTestCluster({ nodes: 3, platform: { forwardLogs: true } });
    await cluster.nodes[0]!.deploy(wagiApp('tenants', 'tenant', 'tenant.wasm', ['/tenant'], `${SCALE}\n${BREAKER}`), { 'tenant.wasm': wagiFixture('tenant') });
    await cluster.nodes[0]!.deploy(wagiApp('trap', 'trap', 'trap.wasm', ['/trap']), { 'trap.wasm': wagiFixture('trap') });
    for (const node of cluster.nodes) {
      await waitFor(() => node.platform.group('tenant')?.readyCount === 1 && node.platform.group('trap') !== undefined, 5000, 'every node to serve the apps, with an instance of its own');
    }
  });
  after(() => cluster?.close());

  test('breakers across the cluster — a tenant failing on every node is refused on all three within 2 s; another is served', async () => {
    // Two failures per node: below min_requests on each, over it (and the quorum) across them. The
    // cluster may decide before the last ones are sent: then they are refused already.
    for (const node of cluster.nodes) for (let i = 0; i < 2; i++) assert.ok([500, 503].includes(await call(node, 'a')));
    const started = performance.now();
    // Watched without calls: a call while closed would be one more failure for the node's own breaker.
    const lists = (node: TestNode, key: string): boolean => node.platform.functionStatus('tenant')?.breakers?.keys.some((k) => k.key === key) ?? false;
    for (const node of cluster.nodes) await waitFor(() => lists(node, 'a'), 2000, `${node.platform.nodeName} to open tenant a`);
    const took = performance.now() - started;
    assert.ok(took < 2000, `open on every node after ${Math.round(took)} ms`);
    for (const node of cluster.nodes) assert.equal(await call(node, 'a'), 503, `${node.platform.nodeName} refuses tenant a`);
    for (const node of cluster.nodes) assert.equal(await call(node, 'b'), 200, 'tenant b keeps being served');
    // The owner decided and the others applied its decision (which node owns "a" is the hash's choice).
    const applied = await Promise.all(
      cluster.nodes.map(async (node) => Number(/^lamplighter_breaker_cluster_messages_total\{kind="decision_applied"\} (\d+)/m.exec(await (await fetch(`${node.adminUrl}/metrics`)).text())?.[1] ?? 0)),
    );
    assert.ok(applied.filter((n) => n > 0).length >= 2, `decisions applied per node: ${applied.join(', ')}`);
    const listed = cluster.nodes[2]!.platform.functionStatus('tenant')?.breakers;
    assert.deepEqual(listed?.keys.map((k) => k.key), ['a']);
  });

  test('breakers across the cluster — failures seen by one node alone open its breaker only', async () => {
    const [a, b, c] = cluster.nodes as [TestNode, TestNode, TestNode];
    for (let i = 0; i < 4; i++) assert.equal(await call(a, 'fail-solo'), 500);
    assert.equal(await call(a, 'fail-solo'), 503, 'open on the node that saw the failures');
    // Give the cluster several report rounds: still no quorum, so the others still ask the function.
    await new Promise((resolve) => setTimeout(resolve, 800));
    assert.equal(await call(b, 'fail-solo'), 500);
    assert.equal(await call(c, 'fail-solo'), 500);
  });

  test('breakers across the cluster — a successful probe closes the breaker everywhere', async () => {
    const [a, b, c] = cluster.nodes as [TestNode, TestNode, TestNode];
    for (const node of cluster.nodes) for (let i = 0; i < 2; i++) await call(node, 'fail-probe');
    for (const node of cluster.nodes) await waitFor(() => (node.platform.functionStatus('tenant')?.breakers?.keys ?? []).some((k) => k.key === 'fail-probe'), 2000, `${node.platform.nodeName} to open fail-probe`);
    // After open_for the breaker is half-open: one probe passes on node-a, succeeds, and the owner
    // closes it on every node. B and C are asked nothing: their breakers close by the decision alone
    // (left to themselves they would stay half-open for another open_for).
    await waitFor(async () => (await call(a, 'fail-probe', '?healed')) === 200, 5000, 'a probe to pass on node-a');
    const listed = (node: TestNode): string[] => node.platform.functionStatus('tenant')?.breakers?.keys.map((k) => k.key) ?? [];
    await waitFor(() => !listed(b).includes('fail-probe') && !listed(c).includes('fail-probe'), 2000, 'B and C to close fail-probe');
    assert.equal(await call(b, 'fail-probe', '?healed'), 200);
    assert.equal(await call(c, 'fail-probe', '?healed'), 200);
  });

  test('breakers across the cluster — with --forward-logs a function\'s output reaches NATS', async () => {
    const nc = await connect({ servers: cluster.urls });
    try {
      const sub = nc.subscribe('lamplighter.logs.trap', { max: 1 });
      await nc.flush();
      assert.equal((await fetch(`${cluster.nodes[1]!.url}/trap`)).status, 500);
      const timeout = setTimeout(() => sub.unsubscribe(), 3000);
      let line: { text?: string; node?: string; function?: string } | undefined;
      for await (const msg of sub) line = msg.json();
      clearTimeout(timeout);
      assert.equal(line?.function, 'trap');
      assert.equal(line?.node, 'node-b');
      assert.match(line?.text ?? '', /about to trap/);
    } finally {
      await nc.close();
    }
  });
});
