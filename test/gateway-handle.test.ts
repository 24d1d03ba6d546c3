// The gateway's in-process entry: route lookup, admission and dispatch on a real node, no socket.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';

/** A process function that sets the gateway's own headers itself, beside one of its own. */
const OWN_HEADERS_SERVER = `import http from 'node:http';
http.createServer((req, res) => {
  res.setHeader('x-request-id', 'chosen-by-the-function');
  res.setHeader('x-lamplighter-cold-start', 'maybe');
  res.setHeader('x-kept', 'yes');
  res.end('own');
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

describe('gateway handle', () => {
  let node: TestNode;

  before(async () => {
    node = await startTestNode();
    await node.deploy(wagiApp('hello', 'hello', 'hello.wasm', ['/hello'], '[function.env]\nGREETING = "Howdy"'), { 'hello.wasm': wagiFixture('../../../examples/hello/hello') });
    await node.deploy(wagiApp('echo', 'echo', 'echo.wasm', ['/echo']), { 'echo.wasm': wagiFixture('echo') });
    await node.deploy(wagiApp('loop', 'loop', 'loop.wasm', ['/loop'], '[function.limits]\ntimeout = "300ms"'), { 'loop.wasm': wagiFixture('loop') });
    await node.deploy(
      'name = "own"\n[[function]]\nname = "own"\nruntime = "process"\ncommand = ["node", "own-headers.mjs"]\nroutes = ["/own"]\n',
      { 'own-headers.mjs': new TextEncoder().encode(OWN_HEADERS_SERVER) },
    );
    await node.deploy(wagiApp('slow', 'slow', 'slow.wasm', ['/slow'], '[function.limits]\nconcurrency = 1\nmax_pending = 1\n[function.scale]\nmax = 1\nidle = "30s"'), { 'slow.wasm': wagiFixture('slow') });
  });
  after(() => node.close());

  test('gateway handle — a path no route matches is 404 LL_ROUTE_NOT_FOUND with a request id', async () => {
    const res = await node.platform.gateway.handle({ method: 'GET', url: '/nothing-here?x=1', headers: { Host: 'api.example.test' } });
    assert.equal(res.status, 404);
    const error = JSON.parse(res.body.toString()).error;
    assert.equal(error.code, 'LL_ROUTE_NOT_FOUND');
    assert.equal(error.message, 'No function serves api.example.test/nothing-here');
    assert.match(res.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(error.requestId, res.headers.get('x-request-id'));
  });

  test('gateway handle — serves a function as a socket client would read it', async () => {
    const res = await node.platform.gateway.handle({ method: 'GET', url: '/hello' });
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'Howdy from Lamplighter!\n');
    assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
    assert.equal(res.headers.get('content-length'), String(res.body.length));
    assert.match(res.headers.get('x-lamplighter-cold-start') ?? '', /^(true|false)$/);

    const echoed = await node.platform.gateway.handle({ method: 'post', url: '/echo', body: 'sent in-process' });
    assert.equal(echoed.status, 200);
    assert.equal(echoed.body.toString(), 'sent in-process');
  });

  test('gateway handle — a function that does not answer within limits.timeout gets 504 LL_TIMEOUT', async () => {
    const started = performance.now();
    const res = await node.platform.gateway.handle({ method: 'GET', url: '/loop' });
    const took = performance.now() - started;
    assert.equal(res.status, 504);
    const error = JSON.parse(res.body.toString()).error;
    assert.equal(error.code, 'LL_TIMEOUT');
    assert.equal(error.message, "Function 'loop' did not answer within 300 ms (limits.timeout)");
    assert.ok(took >= 290 && took < 5_000, `answered after ${Math.round(took)} ms`);
  });

  test('gateway handle — a forwarded request gets only the time its first node left it; a client cannot lengthen it', async () => {
    // loop never answers and has limits.timeout = 300ms: a forward with 50 ms left ends after ~50 ms.
    const started = performance.now();
    const forwarded = await node.platform.gateway.handle({ method: 'GET', url: '/loop', headers: { 'x-lamplighter-hop': 'node-a', 'x-lamplighter-time-left': '50' } });
    const took = performance.now() - started;
    assert.equal(forwarded.status, 504);
    assert.equal(JSON.parse(forwarded.body.toString()).error.code, 'LL_TIMEOUT');
    assert.ok(took < 250, `the forwarded request took ${took.toFixed(0)} ms, not the 50 left of its deadline`);
    // Nothing left: refused at once, never dispatched.
    const spent = await node.platform.gateway.handle({ method: 'GET', url: '/hello', headers: { 'x-lamplighter-hop': 'node-a', 'x-lamplighter-time-left': '0' } });
    assert.equal(spent.status, 504);
    // More time than limits.timeout, or the header without a hop: the function's own timeout holds.
    const longer = performance.now();
    const asked = await node.platform.gateway.handle({ method: 'GET', url: '/loop', headers: { 'x-lamplighter-hop': 'node-a', 'x-lamplighter-time-left': '60000' } });
    assert.equal(asked.status, 504);
    assert.ok(performance.now() - longer < 5_000, 'a peer cannot lengthen the timeout');
    const direct = await node.platform.gateway.handle({ method: 'GET', url: '/hello', headers: { 'x-lamplighter-time-left': '0' } });
    assert.equal(direct.status, 200, 'only a forwarded request is taken at its word');
  });

  test('gateway handle — requests past limits.max_pending get 503 LL_OVER_CAPACITY with Retry-After', async () => {
    // Lit first, so that what follows is one running, one held and the rest refused, in that order.
    assert.equal((await node.platform.gateway.handle({ method: 'GET', url: '/slow?ms=0' })).status, 200);
    const results = await Promise.all(Array.from({ length: 4 }, () => node.platform.gateway.handle({ method: 'GET', url: '/slow?ms=300' })));
    assert.deepEqual(
      results.map((r) => r.status),
      [200, 200, 503, 503],
    );
    for (const refused of results.slice(2)) {
      assert.equal(refused.headers.get('retry-after'), '1');
      const error = JSON.parse(refused.body.toString()).error;
      assert.equal(error.code, 'LL_OVER_CAPACITY');
      assert.equal(error.message, "Function 'slow' has 1 requests waiting, its limit (limits.max_pending)");
    }
    assert.equal(results[0]!.body.toString(), 'slept=300\n');
  });

  test('gateway handle — passes on the same headers as the socket: the function\'s own, with the gateway\'s replacing any it set (regression: the socket sent both)', async () => {
    const socket = await fetch(`${node.url}/own`);
    assert.equal(await socket.text(), 'own');
    const inProcess = await node.platform.gateway.handle({ method: 'GET', url: '/own' });
    assert.equal(inProcess.body.toString(), 'own');
    for (const headers of [socket.headers, inProcess.headers]) {
      assert.equal(headers.get('x-kept'), 'yes');
      assert.match(headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/, 'the gateway\'s id alone');
      assert.match(headers.get('x-lamplighter-cold-start') ?? '', /^(true|false)$/);
      assert.equal(headers.get('content-length'), '3');
    }
  });
});
