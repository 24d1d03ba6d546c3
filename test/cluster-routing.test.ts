// Routing across nodes: a node without room forwards to one with it; scale.max holds cluster-wide;
// the first request on any node lights an instance; upgrades cross nodes too.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startTestCluster, type TestCluster } from '../src/testing/index.js';
import { echoApp, ECHO_SERVER, get, instancesByNode, sum, waitFor } from './cluster-helpers.js';

const ONE = '[function.limits]\nconcurrency = 1\ncold_start_timeout = "10s"\n[function.scale]\nmax = 1\nidle = "30s"';
const TWO = '[function.limits]\nconcurrency = 1\nmax_pending = 500\ncold_start_timeout = "20s"\n[function.scale]\nmax = 2\ntarget = 1\nidle = "30s"';

describe('routing across the cluster', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startTestCluster({ nodes: 3 });
    await cluster.nodes[0]!.deploy(echoApp('one', ONE), { 'echo-server.mjs': ECHO_SERVER });
    await cluster.nodes[0]!.deploy(echoApp('two', TWO), { 'echo-server.mjs': ECHO_SERVER });
    for (const node of cluster.nodes) await waitFor(() => node.platform.group('two') !== undefined, 2000, 'every node to have the apps');
  });
  after(async () => {
    await cluster?.close();
  });

  test('the first request on any node lights one; another node forwards to it while it has room', async () => {
    const [a, b, c] = cluster.nodes;
    const first = await get(`${b!.url}/one/_/headers`);
    assert.equal(first.status, 200);
    assert.equal(first.node, 'node-b');
    assert.deepEqual(instancesByNode(cluster.nodes, 'one'), { 'node-a': 0, 'node-b': 1, 'node-c': 0 });
    // Once A hears of B's instance (and its room), A sends the request there instead of lighting.
    await waitFor(() => a!.platform.clusterView().functions.find((f) => f.name === 'one')!.instances.length === 1, 2000, 'A to see B\'s instance');
    const res = await fetch(`${a!.url}/one/_/headers`);
    const forwarded = { status: res.status, node: res.headers.get('x-lamplighter-node'), id: res.headers.get('x-request-id'), text: await res.text() };
    assert.equal(forwarded.status, 200);
    assert.equal(forwarded.node, 'node-b');
    const seen = JSON.parse(forwarded.text) as Record<string, string>;
    assert.equal(seen['x-lamplighter-hop'], 'node-a');
    // One request id on both nodes: the one A answered with is the one B's function saw.
    assert.equal(seen['x-request-id'], forwarded.id);
    assert.equal(sum(instancesByNode(cluster.nodes, 'one')), 1);
    const metrics = await (await fetch(`${a!.adminUrl}/metrics`)).text();
    assert.match(metrics, /^lamplighter_forwarded_requests_total\{function="one",outcome="served"\} [1-9]/m);
    // At scale.max, with B's one instance busy, C may light none: B holds the request for it.
    await waitFor(() => c!.platform.clusterView().functions.find((f) => f.name === 'one')!.instances.length === 1, 2000, 'C to see B\'s instance');
    const busy = get(`${b!.url}/one/_/slow?ms=400`);
    await new Promise((r) => setTimeout(r, 50));
    const held = await get(`${c!.url}/one/_/slow?ms=10`);
    assert.equal(held.status, 200);
    assert.equal(held.node, 'node-b');
    assert.equal((await busy).status, 200);
    assert.equal(sum(instancesByNode(cluster.nodes, 'one')), 1);
  });

  test('under load spread over three nodes, scale.max is cluster-wide: at most one over per node, then max', async () => {
    const nodes = cluster.nodes;
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, sum(instancesByNode(nodes, 'two')));
    }, 5);
    const requests = [];
    for (let i = 0; i < 45; i++) requests.push(get(`${nodes[i % 3]!.url}/two/_/slow?ms=40`));
    const results = await Promise.all(requests);
    clearInterval(sampler);
    assert.deepEqual(results.filter((r) => r.status !== 200), []);
    assert.ok(peak <= 2 + nodes.length, `peak ${peak} instances`);
    // Within a scaler tick or two of the race, the cluster is back at or under max.
    await waitFor(() => sum(instancesByNode(nodes, 'two')) <= 2, 2000, 'the cluster to come back to scale.max');
    const servedBy = new Set(results.map((r) => r.node));
    assert.ok(servedBy.size >= 1);
  });

  test('a forwarded request is served where it lands, never sent on, even when another node has room', async () => {
    const [a, b] = cluster.nodes;
    await a!.deploy(echoApp('pair', '[function.limits]\nconcurrency = 1\ncold_start_timeout = "10s"\n[function.scale]\nmin = 1\nmax = 3\nidle = "30s"'), { 'echo-server.mjs': ECHO_SERVER });
    await waitFor(() => cluster.nodes.every((n) => (n.platform.group('pair')?.readyCount ?? 0) === 1), 5000, 'one ready instance of pair per node');
    await waitFor(() => b!.platform.clusterView().functions.find((f) => f.name === 'pair')!.instances.length === 3, 2000, 'B to see all three');
    const busy = get(`${b!.url}/pair/_/slow?ms=300`);
    await waitFor(() => b!.platform.group('pair')!.inFlightCount === 1, 2000, 'B\'s instance to be busy');
    // As if node A had forwarded it: B has no room, A and C have, and still B holds it for its own.
    const res = await fetch(`${b!.url}/pair/_/headers`, { headers: { 'x-lamplighter-hop': 'node-a' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-lamplighter-node'), 'node-b');
    await res.text();
    assert.equal((await busy).status, 200);
  });

  test('an upgrade (WebSocket-style) reaching a node without the instance is forwarded', async () => {
    const [a] = cluster.nodes;
    // 'one' runs on node B only; ask A, which forwards to B.
    const [host, port] = [new URL(a!.url).hostname, Number(new URL(a!.url).port)];
    const socket = net.connect(port, host);
    socket.write('GET /one/ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: lamplighter-echo\r\n\r\n');
    let got = '';
    socket.on('data', (chunk) => {
      got += chunk.toString();
      if (got.includes('\r\n\r\n') && !got.includes('ping')) socket.write('ping');
    });
    await waitFor(() => got.includes('ping'), 3000, 'the echo through the forwarded upgrade');
    assert.match(got, /^HTTP\/1\.1 101/);
    socket.destroy();
  });
});
