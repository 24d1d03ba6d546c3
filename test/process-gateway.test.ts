// End-to-end: process functions behind the gateway — cold starts, bursts at zero, streaming, upgrades, faults.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { repoRoot, startTestNode, wagiApp, type TestNode } from '../src/testing/index.js';
import { withTimeout } from './instance-conformance.js';

const ECHO = path.join(repoRoot, 'test', 'fixtures', 'process', 'echo-server.mjs');

function processApp(app: string, fn: string, route: string, extra = '', command = '["node", "echo-server.mjs"]'): string {
  return `name = "${app}"\n[[function]]\nname = "${fn}"\nruntime = "process"\ncommand = ${command}\nroutes = ["${route}"]\n${extra}\n`;
}

async function get(url: string): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(url);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

describe('process functions behind the gateway', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode({ scaleIntervalMs: 50 });
    await node.deploy(wagiApp('hello', 'hello', 'hello.wasm', ['/hello']), { 'hello.wasm': path.join(repoRoot, 'examples', 'hello', 'hello.wasm') });
    await node.deploy(processApp('echo', 'echo', '/...', 'ready = "/healthz"\n[function.scale]\nidle = "30s"'), { 'echo-server.mjs': ECHO });
    await node.deploy(
      processApp('burst', 'burst', '/burst/...', 'ready = "/healthz"\n[function.limits]\nconcurrency = 20\nmax_pending = 2000\ncold_start_timeout = "20s"\n[function.scale]\nmax = 3\ntarget = 20', '["node", "echo-server.mjs"]'),
      { 'echo-server.mjs': ECHO },
    );
    await node.deploy(processApp('missing', 'missing', '/missing', '[function.limits]\ncold_start_timeout = "5s"', '["lamplighter-no-such-command"]'));
    await node.deploy(processApp('dies', 'dies', '/dies', 'startup_timeout = "3s"\n[function.limits]\ncold_start_timeout = "5s"', '["node", "-e", "console.error(\'cannot start: no config\'); process.exit(3)"]'));
    await node.deploy(
      processApp('wrongport', 'wrongport', '/wrongport', 'startup_timeout = "800ms"\n[function.limits]\ncold_start_timeout = "5s"', '["node", "-e", "require(\'http\').createServer((q,s)=>s.end(\'x\')).listen(0, \'127.0.0.1\')"]'),
    );
    await node.deploy(
      processApp('slowstart', 'slowstart', '/slowstart', 'ready = "/healthz"\n[function.env]\nREADY_DELAY_MS = "1500"\n[function.limits]\ncold_start_timeout = "300ms"'),
      { 'echo-server.mjs': ECHO },
    );
    await node.deploy(
      processApp('placeholder', 'placeholder', '/placeholder', 'ready = "/healthz"\n[function.placeholder]\nstatus = 503\nbody = "warming up"\n[function.env]\nREADY_DELAY_MS = "300"'),
      { 'echo-server.mjs': ECHO },
    );
  });
  after(() => node.close());

  test('process gateway — the first request lights the process and is held until it is ready', async () => {
    const first = await fetch(`${node.url}/anything?x=1`, { method: 'POST', body: 'payload', headers: { 'x-test': 'v' } });
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('x-lamplighter-cold-start'), 'true');
    assert.equal(first.headers.get('x-echo-query'), 'x=1');
    assert.equal(first.headers.get('x-echo-header'), 'v');
    assert.equal(await first.text(), 'payload');
    const second = await fetch(`${node.url}/again`);
    assert.equal(second.headers.get('x-lamplighter-cold-start'), 'false');
    await second.text();
  });

  test('process gateway — a HEAD answer keeps the length a GET would get, with no body', async () => {
    const get = await fetch(`${node.url}/_/sized`);
    assert.equal(await get.text(), 'twelve bytes');
    const head = await fetch(`${node.url}/_/sized`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '12');
    assert.equal((await head.arrayBuffer()).byteLength, 0);
  });

  test('process gateway — server-sent events stream through event by event', async () => {
    const res = await fetch(`${node.url}/_/sse?id=gw`);
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    const next = async (): Promise<string> => decoder.decode((await reader.read()).value);
    assert.match(await next(), /event 1/);
    await (await fetch(`${node.url}/_/sse-next?id=gw`)).text();
    assert.match(await next(), /event 2/);
    await (await fetch(`${node.url}/_/sse-next?id=gw&last=1`)).text();
    assert.match(await next(), /event 3/);
    assert.equal((await reader.read()).done, true);
  });

  test('process gateway — a client that leaves aborts the upstream request', async () => {
    const controller = new AbortController();
    const pending = fetch(`${node.url}/_/slow?ms=3000`, { signal: controller.signal }).catch((err: Error) => err);
    await new Promise((r) => setTimeout(r, 300));
    controller.abort();
    assert.ok((await pending) instanceof Error);
    const until = Date.now() + 3000;
    const aborted = (): boolean => node.platform.logs.recent(['echo']).some((l) => /slow request aborted by the client/.test(l.text));
    while (!aborted() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.ok(aborted(), 'the process saw its request aborted');
  });

  test('process gateway — a connection upgrade passes through to the process', async () => {
    const socket = net.connect(node.platform.port, '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    socket.write(`GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: Upgrade\r\nupgrade: lamplighter-echo\r\n\r\n`);
    let received = '';
    socket.on('data', (c: Buffer) => (received += c.toString()));
    const until = Date.now() + 5000;
    while (!received.includes('\r\n\r\n') && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.match(received, /^HTTP\/1.1 101/);
    received = '';
    socket.write('ping over the tunnel');
    while (!received.includes('ping over the tunnel') && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.equal(received, 'ping over the tunnel');
    socket.destroy();
  });

  test('process gateway — a request the server cannot read gets the JSON error with a request id, and the connection closes', async () => {
    const socket = net.connect(node.platform.port, '127.0.0.1');
    let received = '';
    socket.on('data', (c: Buffer) => (received += c.toString()));
    await new Promise((r) => socket.once('connect', r));
    socket.write('POST /echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n');
    await withTimeout(new Promise((r) => socket.once('close', r)), 5000, 'the connection closes after the refusal');
    const [head = '', body = ''] = received.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1.1 400 Bad Request\r\n/);
    assert.match(head, /\r\nconnection: close(\r\n|$)/);
    const id = /\r\nx-request-id: ([0-9a-f-]{36})(\r\n|$)/.exec(head)?.[1];
    assert.ok(id, head);
    const error = (JSON.parse(body) as { error: { code: string; message: string; requestId: string } }).error;
    assert.equal(error.code, 'LL_BAD_REQUEST');
    assert.match(error.message, /both content-length and transfer-encoding/);
    assert.equal(error.requestId, id);
  });

  test('process gateway — an upgrade the process refuses is relayed, ends the connection and is counted with its own status', async () => {
    const counted = async (code: number): Promise<number> => {
      const text = await (await fetch(`${node.adminUrl}/metrics`)).text();
      return Number(new RegExp(`^lamplighter_requests_total\\{function="echo",code="${code}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    };
    const [before400, before101] = [await counted(400), await counted(101)];
    const socket = net.connect(node.platform.port, '127.0.0.1');
    let received = '';
    socket.on('data', (c: Buffer) => (received += c.toString()));
    await new Promise((r) => socket.once('connect', r));
    socket.write(`GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n`);
    await withTimeout(new Promise((r) => socket.once('close', r)), 5000, 'the connection ends with the refusal');
    assert.match(received, /^HTTP\/1.1 400 Bad Request\r\n/);
    assert.equal(await counted(400), before400 + 1);
    assert.equal(await counted(101), before101);
  });

  test('process gateway — a WAGI function refuses an upgrade with a clear error', async () => {
    const socket = net.connect(node.platform.port, '127.0.0.1');
    let received = '';
    socket.on('data', (c: Buffer) => (received += c.toString()));
    await new Promise((r) => socket.once('connect', r));
    socket.write(`GET /hello HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n`);
    await new Promise((r) => socket.once('close', r));
    assert.match(received, /^HTTP\/1.1 400/);
    assert.match(received, /does not take connection upgrades/);
  });

  test('process gateway — 1,000 concurrent requests at zero are all answered and instances stay within max', async () => {
    const group = node.platform.group('burst')!;
    assert.equal(group.instanceCount, 0);
    // scale.max bounds the instances taking requests; one the scaler is putting out (it finishes
    // its requests) is not counted, as a terminating pod is not by a Deployment's replicas.
    const live = (): number => group.inspect().instances.filter((i) => i.state !== 'retiring').length;
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, live())), 2);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1000 });
    const started = Date.now();
    const statuses = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        new Promise<number>((resolve, reject) => {
          http.get(`${node.url}/burst/${i}`, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          }).on('error', reject);
        }),
      ),
    );
    clearInterval(sampler);
    agent.destroy();
    most = Math.max(most, live());
    assert.equal(statuses.length, 1000);
    assert.equal(statuses.filter((s) => s === 200).length, 1000, `statuses: ${[...new Set(statuses)].join(',')}`);
    assert.ok(most >= 1 && most <= 3, `instances peaked at ${most}`);
    assert.ok(Date.now() - started < 30_000);
  });

  test('process gateway — a command that does not exist gives 503 with the reason, in ls and logs too', async () => {
    const res = await get(`${node.url}/missing`);
    assert.equal(res.status, 503);
    const error = JSON.parse(res.text).error;
    assert.equal(error.code, 'LL_FUNCTION_FAILED');
    assert.match(error.message, /lamplighter-no-such-command.*not found/);
    const status = node.platform.functionStatus('missing')!;
    assert.equal(status.status, 'failing');
    assert.match(status.lastFailure ?? '', /not found/);
    assert.ok(node.platform.logs.recent(['missing']).some((l) => /not found/.test(l.text)));
  });

  test('process gateway — a process that exits at once gives 503 quoting its stderr', async () => {
    const res = await get(`${node.url}/dies`);
    assert.equal(res.status, 503);
    assert.match(JSON.parse(res.text).error.message, /cannot start: no config/);
  });

  test('process gateway — a process listening on the wrong port never becomes ready: a clear error', async () => {
    const res = await get(`${node.url}/wrongport`);
    assert.ok(res.status === 503 || res.status === 504, String(res.status));
    assert.match(JSON.parse(res.text).error.message, /did not become ready|did not light/);
  });

  test('process gateway — a cold start past cold_start_timeout is a 504', async () => {
    const res = await get(`${node.url}/slowstart`);
    assert.equal(res.status, 504);
    assert.equal(JSON.parse(res.text).error.code, 'LL_COLD_START_TIMEOUT');
    assert.equal(res.headers.get('x-lamplighter-cold-start'), 'true');
  });

  test('process gateway — a placeholder is served while the function lights', async () => {
    const first = await get(`${node.url}/placeholder`);
    assert.equal(first.status, 503);
    assert.equal(first.text, 'warming up');
    assert.equal(first.headers.get('x-lamplighter-cold-start'), 'true');
    const until = Date.now() + 10_000;
    let res = first;
    while (res.status !== 200 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      res = await get(`${node.url}/placeholder`);
    }
    assert.equal(res.status, 200);
  });

  test('process gateway — failing functions leave every other function serving', async () => {
    assert.equal((await get(`${node.url}/hello`)).status, 200);
    assert.equal((await get(`${node.url}/other`)).status, 200);
  });
});

describe('process scaling', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode({ scaleIntervalMs: 50 });
    await node.deploy(
      processApp('spread', 'spread', '/...', 'ready = "/healthz"\n[function.limits]\nconcurrency = 1\n[function.scale]\nmax = 4\ntarget = 1\nidle = "400ms"\nwindow = "1s"'),
      { 'echo-server.mjs': ECHO },
    );
  });
  after(() => node.close());

  test('process scaling — a node that hosts no WAGI function runs no sandbox threads', () => {
    assert.equal(node.platform.pool.threads, 0);
    assert.equal(node.platform.pool.watching, false);
  });

  test('process scaling — concurrent load lights more instances, never over max, each within its concurrency', async () => {
    const group = node.platform.group('spread')!;
    let most = 0;
    let maxInFlightPerInstance = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, group.instanceCount);
      maxInFlightPerInstance = Math.max(maxInFlightPerInstance, group.inFlightCount - group.readyCount);
    }, 5);
    const results = await Promise.all(Array.from({ length: 12 }, () => get(`${node.url}/_/slow?ms=300`)));
    clearInterval(sampler);
    for (const r of results) assert.equal(r.status, 200);
    assert.equal(most, 4);
    // With concurrency 1, in flight never exceeds the number of ready instances.
    assert.ok(maxInFlightPerInstance <= 0, `in flight exceeded ready instances by ${maxInFlightPerInstance}`);
  });

  test('process scaling — the function goes back to zero after idle, leaving no process behind', async () => {
    const group = node.platform.group('spread')!;
    const until = Date.now() + 10_000;
    while (group.instanceCount > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.equal(group.instanceCount, 0);
  });
});
