// Nodes coming and going: a node killed mid-load loses only its own requests in flight; a node
// that leaves with SIGTERM withdraws before it exits. The nodes that leave are real child processes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestCluster, TEST_TIMING, wagiApp, wagiFixture, type TestCluster } from '../src/testing/index.js';
import { get, waitFor } from './cluster-helpers.js';

const WORK = wagiApp('work', 'work', 'slow.wasm', ['/work'], '[function.limits]\nconcurrency = 2\nmax_pending = 500\ncold_start_timeout = "10s"\n[function.scale]\nmin = 1\nmax = 3\ntarget = 2\nidle = "30s"');

/** Names of the nodes node `i` sees as healthy. */
const viewOf = (cluster: TestCluster, i: number): string[] =>
  cluster.nodes[i]!.platform
    .clusterView()
    .nodes.filter((n) => n.healthy)
    .map((n) => n.name)
    .sort();

describe('nodes leaving the cluster', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startTestCluster({ nodes: 2 });
    await cluster.nodes[0]!.deploy(WORK, { 'slow.wasm': wagiFixture('slow') });
  });
  after(async () => {
    await cluster?.close();
  });

  test('a node killed mid-load: only requests in flight on it fail, the rest are served', async () => {
    const x = await cluster.startChildNode('node-x');
    await waitFor(() => viewOf(cluster, 0).includes('node-x') && viewOf(cluster, 1).includes('node-x'), 3000, 'A and B to see node X');
    // X lights its instance (min = 1) and publishes it; A and B then forward to it when they are busy.
    await waitFor(() => cluster.nodes[0]!.platform.clusterView().functions[0]!.instances.some((i) => i.node === 'node-x'), 5000, 'X\'s instance in A\'s view');
    const statuses: number[] = [];
    let killedAt = 0;
    const workers = [];
    const until = Date.now() + 4000;
    for (let w = 0; w < 8; w++) {
      workers.push(
        (async () => {
          for (let i = 0; i < 400 && Date.now() < until; i++) {
            const r = await get(`${cluster.nodes[w % 2]!.url}/work?ms=20`).catch(() => ({ status: 599, node: null }));
            statuses.push(r.status);
            if (r.node === 'node-x' && killedAt === 0 && statuses.length > 40) {
              killedAt = Date.now();
              void x.kill();
            }
          }
        })(),
      );
    }
    await Promise.all(workers);
    assert.ok(killedAt > 0, 'no request was served by node X before the kill');
    const failed = statuses.filter((s) => s !== 200);
    // X held at most its instance's concurrency plus what A and B forwarded at the same moment.
    assert.ok(failed.length <= 4, `${failed.length} failed of ${statuses.length}: ${failed.join(',')}`);
    assert.ok(statuses.length > 100);
    const dropped = await waitFor(() => !viewOf(cluster, 0).includes('node-x') && !viewOf(cluster, 1).includes('node-x'), TEST_TIMING.downAfterMs * 3, 'A and B to drop node X');
    assert.ok(dropped >= 0);
    // Dropped for its silence, it stays listed as down, with its last heartbeat.
    const listed = cluster.nodes[0]!.platform.clusterView().nodes.find((n) => n.name === 'node-x');
    assert.equal(listed?.healthy, false);
    assert.equal((await get(`${cluster.nodes[0]!.url}/work?ms=1`)).status, 200);
  });

  test('a node that leaves with SIGTERM withdraws from every view before it exits', async () => {
    const y = await cluster.startChildNode('node-y');
    await waitFor(() => viewOf(cluster, 0).includes('node-y'), 3000, 'A to see node Y');
    const code = await y.stop();
    assert.equal(code, 0, `node Y's output:\n${y.output.slice(-3000)}`);
    // Gone within moments of its exit, well before a silent node would be dropped: it said it was leaving.
    await waitFor(() => !cluster.nodes[0]!.platform.clusterView().functions[0]!.instances.some((i) => i.node === 'node-y') && !cluster.nodes[0]!.platform.clusterView().nodes.some((n) => n.name === 'node-y'), TEST_TIMING.downAfterMs / 3, 'A to drop Y and its instances');
  });
});
