// A cluster's shared state: deploy, rollback and remove on one node are served by every node,
// a late node serves everything, and of two racing deploys only one wins.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestCluster, type TestCluster } from '../src/testing/index.js';
import { cliOk } from './cli-helpers.js';
import { get, helloApp, HELLO_WASM, serves, waitFor } from './cluster-helpers.js';

describe('cluster state through JetStream', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startTestCluster({ nodes: 3 });
  });
  after(async () => {
    await cluster?.close();
  });

  test('a deploy to node A is served by B and C within 2 s, and says which node served', async () => {
    const [a, b, c] = cluster.nodes;
    await a!.deploy(helloApp('Hi'), { 'hello.wasm': HELLO_WASM });
    const waited = await waitFor(async () => (await serves(b!, '/hello', 'Hi from Lamplighter!\n')) && (await serves(c!, '/hello', 'Hi from Lamplighter!\n')), 2000, 'B and C to serve the deploy');
    assert.ok(waited <= 2000);
    // Served by C's own instance or forwarded to one with room; the header names the node either way.
    const fromC = await get(`${c!.url}/hello`);
    assert.equal(fromC.text, 'Hi from Lamplighter!\n');
    assert.match(fromC.node ?? '', /^node-[abc]$/);
  });

  test('GET /v1/cluster, `ls`, `ls --json` and /metrics show the nodes and where instances run', async () => {
    const [a, b] = cluster.nodes;
    await get(`${b!.url}/hello`);
    await waitFor(() => a!.platform.clusterView().functions.some((f) => f.name === 'hello' && f.instances.length > 0), 2000, 'A to see an instance of hello');
    const res = await fetch(`${a!.adminUrl}/v1/cluster`, { headers: { authorization: `Bearer ${a!.platform.token}` } });
    const view = (await res.json()) as { mode: string; node: string; nodes: Array<{ name: string; healthy: boolean; self: boolean; address: string }>; functions: Array<{ name: string; instances: Array<{ node: string }> }> };
    assert.equal(view.mode, 'cluster');
    assert.equal(view.node, 'node-a');
    assert.deepEqual(view.nodes.map((n) => [n.name, n.healthy, n.self]), [['node-a', true, true], ['node-b', true, false], ['node-c', true, false]]);
    assert.equal(view.nodes[1]!.address, `127.0.0.1:${b!.platform.port}`);
    assert.ok(view.functions.find((f) => f.name === 'hello')!.instances.length > 0);
    const env = { LAMPLIGHTER_TOKEN: a!.platform.token };
    const ls = await cliOk(['ls', '--server', a!.adminUrl], { env });
    assert.match(ls, /node-a \(this node\)\s+127\.0\.0\.1:\d+\s+healthy/);
    assert.match(ls, /node-c\s+127\.0\.0\.1:\d+\s+healthy/);
    assert.match(ls, /hello\s+\d+\s+\d+ instances?: node-/);
    const json = JSON.parse(await cliOk(['ls', '--json', '--server', a!.adminUrl], { env })) as { cluster: { nodes: unknown[] } };
    assert.equal(json.cluster.nodes.length, 3);
    const metrics = await (await fetch(`${a!.adminUrl}/metrics`)).text();
    assert.match(metrics, /^lamplighter_cluster_nodes 3$/m);
    assert.match(metrics, /^lamplighter_discovery_events_total\{kind="join"\} [1-9]/m);
  });

  test('a rollback on one node is seen everywhere', async () => {
    const [a, b, c] = cluster.nodes;
    await b!.deploy(helloApp('Second'), { 'hello.wasm': HELLO_WASM });
    await waitFor(async () => serves(a!, '/hello', 'Second from Lamplighter!\n'), 2000, 'A to serve revision 2');
    const back = await c!.platform.rollback('hello');
    assert.equal(back.number, 1);
    for (const node of cluster.nodes) await waitFor(async () => serves(node, '/hello', 'Hi from Lamplighter!\n'), 2000, `${node.platform.nodeName} to serve the rollback`);
  });

  test('a node that joins later serves every app at once', async () => {
    const late = await cluster.addNode('node-late');
    assert.equal((await get(`${late.url}/hello`)).text, 'Hi from Lamplighter!\n');
    await late.close();
    cluster.nodes.splice(cluster.nodes.indexOf(late), 1);
  });

  test('two concurrent deploys of one app to different nodes: one wins, the loser is told', async () => {
    const [a, b] = cluster.nodes;
    let conflicts = 0;
    // A race is not certain on any one try (one deploy may finish before the other reads the
    // pointer); a few tries on fresh apps make one near certain, and every try must be consistent.
    for (let i = 0; i < 8 && conflicts === 0; i++) {
      const app = `race-${i}`;
      const results = await Promise.allSettled([a!.deploy(helloApp('FromA', app), { 'hello.wasm': HELLO_WASM }), b!.deploy(helloApp('FromB', app), { 'hello.wasm': HELLO_WASM })]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      for (const r of lost) assert.equal((r.reason as { code?: string }).code, 'LL_DEPLOY_CONFLICT', String(r.reason));
      if (lost.length > 0) {
        conflicts++;
        assert.equal(won.length, 1);
        assert.match(String(lost[0]!.reason), /deploy again/i);
      } else {
        // Both went through one after the other: two revisions, never one number twice.
        assert.deepEqual(won.map((r) => r.value.number).sort(), [1, 2]);
      }
      const winner = await a!.platform.store.current(app);
      const text = `${/FromA/.test(winner!.manifest) ? 'FromA' : 'FromB'} from Lamplighter!\n`;
      for (const node of cluster.nodes) await waitFor(async () => serves(node, `/${app}`, text), 2000, `${node.platform.nodeName} to serve the winner of ${app}`);
    }
    assert.ok(conflicts > 0, 'no two deploys raced in 8 tries');
  });

  test('a remove on one node is served by none', async () => {
    const [a, , c] = cluster.nodes;
    await c!.platform.remove('hello');
    for (const node of cluster.nodes) await waitFor(async () => (await get(`${node.url}/hello`)).status === 404, 2000, `${node.platform.nodeName} to drop the app`);
    assert.equal(a!.platform.list().some((app) => app.name === 'hello'), false);
  });
});
