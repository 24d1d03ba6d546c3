// Traces of a component request: the run span, the traceparent the handler sees, and each
// outbound call as a client span whose server continues the trace.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { startTestNode, type TestNode } from '../src/testing/index.js';
import { buildFixtureComponent } from './component-helpers.js';
import { clientTraceparent, startOtlpReceiver, type OtlpReceiver } from './tracing-helpers.js';

let receiver: OtlpReceiver;
let node: TestNode;
let upstream: http.Server;
let upstreamUrl: string;
const seenTraceparents: string[] = [];

before(async () => {
  receiver = await startOtlpReceiver();
  upstream = http.createServer((req, res) => {
    seenTraceparents.push(String(req.headers.traceparent ?? ''));
    res.end('from upstream');
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  node = await startTestNode({ tracing: { url: `${receiver.url}/v1/traces`, scheduledDelayMs: 20 } });
  await node.deploy(
    'name = "comp"\n[[function]]\nname = "comp"\nruntime = "component"\nsource = "echo.wasm"\nroutes = ["/..."]\nallowed_outbound_hosts = ["http://127.0.0.1:*"]\n',
    { 'echo.wasm': await buildFixtureComponent('echo.ts') },
  );
});
after(async () => {
  await node?.close();
  await receiver?.close();
  upstream?.close();
});

test('tracing components — a run span, the handler sees it as its parent, an outbound call continues the trace', async () => {
  const client = clientTraceparent();
  const res = await fetch(`${node.url}/outbound?url=${encodeURIComponent(`${upstreamUrl}/x`)}`, { headers: { traceparent: client.header } });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: true, status: 200, body: 'from upstream' });

  const server = await receiver.waitFor((s) => s.traceId === client.traceId && s.kind === 2 && s.parentSpanId === client.spanId);
  const run = await receiver.waitFor((s) => s.traceId === client.traceId && s.name === 'run in sandbox' && s.parentSpanId === server.spanId);
  assert.equal(run.attributes['lamplighter.runtime'], 'component');
  const call = await receiver.waitFor((s) => s.traceId === client.traceId && s.kind === 3 && s.parentSpanId === run.spanId);
  assert.equal(call.attributes['http.request.method'], 'GET');
  assert.equal(call.attributes['http.response.status_code'], 200);
  assert.equal(call.attributes['server.address'], '127.0.0.1');
  assert.equal(seenTraceparents.at(-1), `00-${client.traceId}-${call.spanId}-01`, 'the upstream is the call span\'s child');

  // The handler sees its run span as the parent, not the client's span.
  const second = clientTraceparent();
  const seen = await (await fetch(`${node.url}/header?name=traceparent`, { headers: { traceparent: second.header } })).text();
  const secondRun = await receiver.waitFor((s) => s.traceId === second.traceId && s.name === 'run in sandbox');
  assert.equal(seen, `00-${second.traceId}-${secondRun.spanId}-01`);
});

test('tracing components — a refused outbound call is a span with error.type connection-refused', async () => {
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const client = clientTraceparent();
  const res = await fetch(`${node.url}/outbound?url=${encodeURIComponent(`http://127.0.0.1:${port}/`)}`, { headers: { traceparent: client.header } });
  assert.equal(((await res.json()) as { ok: boolean }).ok, false);
  const call = await receiver.waitFor((s) => s.traceId === client.traceId && s.kind === 3);
  assert.equal(call.attributes['error.type'], 'connection-refused');
  assert.equal(call.statusCode, 2);
});
