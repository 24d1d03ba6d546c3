// /metrics: names Prometheus reads as meant (promtool check metrics), requests refused before routing counted, and the cluster's series.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Metrics } from '../src/observability/index.js';
import { repoRoot, startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';

const ECHO = path.join(repoRoot, 'test', 'fixtures', 'process', 'echo-server.mjs');
const PROMTOOL = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).error === undefined;
const NO_PROMTOOL = PROMTOOL ? false : 'promtool is not installed (Debian package prometheus); install it to run this check';

/** Asserts that `promtool check metrics` reads `text` without a warning. */
function assertPromtoolClean(text: string): void {
  const out = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  assert.equal(out.error, undefined);
  assert.equal(`${out.stdout}${out.stderr}`.trim(), '', 'promtool printed warnings');
  assert.equal(out.status, 0);
}

const DISCOVERY_KINDS = ['join', 'leave', 'update', 'node_up', 'node_down', 'sync', 'malformed'];

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

  test('metrics — promtool check metrics passes with no warning', { skip: NO_PROMTOOL }, () => {
    assertPromtoolClean(text);
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

  test('metrics — an embedded node counts itself as the one cluster node and has forwarded nothing', () => {
    assert.match(text, /^# TYPE lamplighter_cluster_nodes gauge$/m);
    assert.match(text, /^lamplighter_cluster_nodes 1$/m);
    assert.match(text, /^# TYPE lamplighter_forwarded_requests_total counter$/m);
    assert.doesNotMatch(text, /^lamplighter_forwarded_requests_total\{/m);
    for (const kind of DISCOVERY_KINDS) assert.match(text, new RegExp(`^lamplighter_discovery_events_total\\{kind="${kind}"\\} 0$`, 'm'), kind);
  });
});

describe('cluster metrics', () => {
  test('cluster metrics — nodes from the source, forwarded requests by function and outcome, discovery events by kind', async () => {
    const metrics = new Metrics({ processMetrics: false });
    let healthy = 3;
    metrics.setSource({ functions: () => [], clusterNodes: () => healthy });
    metrics.forwarded('hello', 'served');
    metrics.forwarded('hello', 'served');
    metrics.forwarded('hello', 'unreachable');
    metrics.forwarded('echo', 'failed');
    metrics.forwarded('echo', 'refused');
    metrics.discoveryEvent('join');
    metrics.discoveryEvent('join');
    metrics.discoveryEvent('node_down');
    metrics.discoveryEvent('malformed');
    const text = await metrics.render();
    assert.match(text, /^lamplighter_cluster_nodes 3$/m);
    assert.match(text, /^lamplighter_forwarded_requests_total\{function="hello",outcome="served"\} 2$/m);
    assert.match(text, /^lamplighter_forwarded_requests_total\{function="hello",outcome="unreachable"\} 1$/m);
    assert.match(text, /^lamplighter_forwarded_requests_total\{function="echo",outcome="failed"\} 1$/m);
    assert.match(text, /^lamplighter_forwarded_requests_total\{function="echo",outcome="refused"\} 1$/m);
    assert.match(text, /^lamplighter_discovery_events_total\{kind="join"\} 2$/m);
    assert.match(text, /^lamplighter_discovery_events_total\{kind="node_down"\} 1$/m);
    assert.match(text, /^lamplighter_discovery_events_total\{kind="malformed"\} 1$/m);
    assert.match(text, /^lamplighter_discovery_events_total\{kind="sync"\} 0$/m);
    // Help texts say what is counted, naming every outcome and kind.
    const help = (name: string): string => text.match(new RegExp(`^# HELP ${name} (.+)$`, 'm'))?.[1] ?? '';
    assert.match(help('lamplighter_cluster_nodes'), /healthy/);
    for (const outcome of ['served', 'unreachable', 'failed', 'refused']) assert.match(help('lamplighter_forwarded_requests_total'), new RegExp(outcome));
    for (const kind of DISCOVERY_KINDS) assert.match(help('lamplighter_discovery_events_total'), new RegExp(kind));
    // Read at scrape time: a node dropped shows on the next scrape.
    healthy = 2;
    assert.match(await metrics.render(), /^lamplighter_cluster_nodes 2$/m);
    if (PROMTOOL) assertPromtoolClean(text);
  });
});

describe('scrape', () => {
  test('scrape — the function list and sandbox figures are asked for once per scrape, and read fresh on the next (regression: once per gauge)', async () => {
    const metrics = new Metrics({ processMetrics: false });
    let listed = 0;
    let sandboxed = 0;
    let pending = 4;
    metrics.setSource({
      functions: () => {
        listed++;
        return [{ name: 'hello', instances: 2, pending, inFlight: 3, memoryBytes: 1024 }];
      },
      sandbox: () => {
        sandboxed++;
        return { workers: 2, busy: 1, held: 0, queued: 5, replacedForTimeout: 1, replacedForCrash: 0 };
      },
    });
    const text = await metrics.render();
    assert.equal(listed, 1);
    assert.equal(sandboxed, 1);
    assert.match(text, /^lamplighter_instances\{function="hello"\} 2$/m);
    assert.match(text, /^lamplighter_function_memory_bytes\{function="hello"\} 1024$/m);
    assert.match(text, /^lamplighter_pending_requests\{function="hello"\} 4$/m);
    assert.match(text, /^lamplighter_in_flight_requests\{function="hello"\} 3$/m);
    assert.match(text, /^lamplighter_sandbox_runs_queued 5$/m);
    assert.match(text, /^lamplighter_sandbox_workers_replaced_total\{reason="timeout"\} 1$/m);
    pending = 7;
    assert.match(await metrics.render(), /^lamplighter_pending_requests\{function="hello"\} 7$/m);
    assert.equal(listed, 2);
  });
});
