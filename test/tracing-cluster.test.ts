// A trace across a hop: a request forwarded between two nodes is one trace, the peer's server
// span a child of the forwarding node's "forward to peer" span.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestCluster, type TestCluster } from '../src/testing/index.js';
import { echoApp, ECHO_SERVER, waitFor } from './cluster-helpers.js';
import { clientTraceparent, startOtlpReceiver, type OtlpReceiver } from './tracing-helpers.js';

let receiver: OtlpReceiver;
let cluster: TestCluster;

before(async () => {
  receiver = await startOtlpReceiver();
  cluster = await startTestCluster({ nodes: 2, platform: { tracing: { url: `${receiver.url}/v1/traces`, scheduledDelayMs: 20 } } });
  await cluster.nodes[0]!.deploy(echoApp('one', '[function.limits]\nconcurrency = 1\n[function.scale]\nmax = 1\nidle = "30s"'), { 'echo-server.mjs': ECHO_SERVER });
  for (const node of cluster.nodes) await waitFor(() => node.platform.group('one') !== undefined, 3000, 'both nodes to have the app');
});
after(async () => {
  await cluster?.close();
  await receiver?.close();
});

test('tracing across nodes — the forwarded request is one trace; the peer continues the hop span', async () => {
  const [a, b] = cluster.nodes as [NonNullable<(typeof cluster.nodes)[0]>, NonNullable<(typeof cluster.nodes)[0]>];
  // B lights the one instance; A, without room of its own (max = 1), forwards to it.
  assert.equal((await fetch(`${b.url}/one/_/headers`)).status, 200);
  await waitFor(() => a.platform.clusterView().functions.find((f) => f.name === 'one')!.instances.length === 1, 3000, 'A to see B\'s instance');
  const client = clientTraceparent();
  const res = await fetch(`${a.url}/one/_/headers`, { headers: { traceparent: client.header } });
  assert.equal(res.headers.get('x-lamplighter-node'), 'node-b');
  const seen = (await res.json()) as Record<string, string>;

  const onA = await receiver.waitFor((s) => s.traceId === client.traceId && s.kind === 2 && s.resource['service.instance.id'] !== 'node-b' && s.parentSpanId === client.spanId, 5000);
  const hop = await receiver.waitFor((s) => s.traceId === client.traceId && s.name === 'forward to peer', 5000);
  assert.equal(hop.parentSpanId, onA.spanId, 'the hop is a child of A\'s server span');
  assert.equal(hop.kind, 3, 'a client span');
  const onB = await receiver.waitFor((s) => s.traceId === client.traceId && s.kind === 2 && s.parentSpanId === hop.spanId, 5000);
  assert.notEqual(onB.spanId, onA.spanId);
  const runOnB = await receiver.waitFor((s) => s.traceId === client.traceId && s.name === 'run in process' && s.parentSpanId === onB.spanId, 5000);
  assert.equal(seen.traceparent, `00-${client.traceId}-${runOnB.spanId}-01`, 'the program on B sees its own call span as parent');
});
