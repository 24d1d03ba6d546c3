// /metrics: names Prometheus reads as meant (promtool check metrics), and requests refused before routing counted.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { repoRoot, startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';

const ECHO = path.join(repoRoot, 'test', 'fixtures', 'process', 'echo-server.mjs');
const PROMTOOL = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).error === undefined;

/** Writes `raw` on a fresh connection and resolves with everything read until the server closes. */
function rawRequest(port: number, raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(raw));
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error('no answer in 10 s')), 10_000);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

describe('metrics', () => {
  let node: TestNode;
  let text: string;
  before(async () => {
    // Node process metrics on, as `serve` runs.
    node = await startTestNode({ processMetrics: true });
    await node.deploy(wagiApp('hello', 'hello', 'hello.wasm', ['/hello']), { 'hello.wasm': wagiFixture('../../../examples/hello/hello') });
    await node.deploy(`name = "echo"\n[[function]]\nname = "echo"\nruntime = "process"\ncommand = ["node", "echo-server.mjs"]\nready = "/healthz"\nroutes = ["/echo/..."]\n`, { 'echo-server.mjs': ECHO });
    for (const url of ['/hello', '/hello', '/echo/x', '/nowhere', '/nowhere/else']) await (await fetch(`${node.url}${url}`)).text();
    // No Host header: refused by the gateway's HTTP server before routing.
    assert.match(await rawRequest(node.platform.port, 'GET /hello HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 400 /);
    text = await (await fetch(`${node.adminUrl}/metrics`)).text();
  });
  after(() => node.close());

  test('metrics — promtool check metrics passes with no warning', { skip: PROMTOOL ? false : 'promtool is not installed (Debian package prometheus); install it to run this check' }, () => {
    const out = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
    assert.equal(out.error, undefined);
    assert.equal(`${out.stdout}${out.stderr}`.trim(), '', 'promtool printed warnings');
    assert.equal(out.status, 0);
  });

  test('metrics — gauges carry no _total, counters do, and no prefix is doubled', () => {
    const types = new Map<string, string>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
    assert.ok(types.size > 10, 'process metrics are exported');
    for (const [name, type] of types) {
      assert.match(name, /^lamplighter_/, name);
      assert.doesNotMatch(name, /^lamplighter_(\w+?_)\1/, `doubled prefix in ${name}`);
      if (type === 'counter') assert.match(name, /_total$/, `counter ${name}`);
      else assert.doesNotMatch(name, /_total$/, `${type} ${name}`);
    }
    assert.equal(types.get('lamplighter_process_cpu_seconds_total'), 'counter');
    assert.equal(types.get('lamplighter_nodejs_active_handles'), 'gauge');
  });

  test('metrics — WAGI and process requests are counted by function, refused ones (404, 400) as unrouted', () => {
    assert.match(text, /^lamplighter_requests_total\{function="hello",code="200"\} 2$/m);
    assert.match(text, /^lamplighter_requests_total\{function="echo",code="200"\} 1$/m);
    assert.match(text, /^lamplighter_unrouted_requests_total\{code="404"\} 2$/m);
    assert.match(text, /^lamplighter_unrouted_requests_total\{code="400"\} 1$/m);
  });
});
