// `lamplighter inspect` against a real node: held requests, busy sandbox workers, demand and the
// scale decision, breakers, upstream connections; CPU profiles and heap snapshots behind the token.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { registerInspectCommand } from '../src/cli/inspect-command.js';
import { formatInspection } from '../src/cli/inspect-format.js';
import type { NodeInspection } from '../src/control/index.js';
import { repoRoot, startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';
import { runInProcess } from './cli-helpers.js';

/** Runs `inspect …` in-process against `node`; resolves with its output, or the error it failed with. */
function inspect(node: TestNode, args: string[]): ReturnType<typeof runInProcess> {
  return runInProcess(registerInspectCommand, ['inspect', ...args, '--server', node.adminUrl, '--token', node.platform.token]);
}

async function inspection(node: TestNode, query = ''): Promise<NodeInspection> {
  const res = await fetch(`${node.adminUrl}/v1/inspect${query}`, { headers: { authorization: `Bearer ${node.platform.token}` } });
  assert.equal(res.status, 200);
  return (await res.json()) as NodeInspection;
}

async function until(what: string, check: () => Promise<boolean>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('inspect', () => {
  let node: TestNode;
  let work: string;

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'lamplighter-inspect-'));
    node = await startTestNode();
    await node.deploy(wagiApp('slow', 'slow', 'slow.wasm', ['/slow'], '[function.limits]\nconcurrency = 1\nmax_pending = 10\n[function.scale]\nmax = 1\nidle = "30s"'), { 'slow.wasm': wagiFixture('slow') });
    await node.deploy(wagiApp('tenants', 'tenant', 'tenant.wasm', ['/tenant'], '[function.breaker]\npartition = "header:x-tenant"\nconsecutive_failures = 2'), { 'tenant.wasm': wagiFixture('tenant') });
    await node.deploy(
      `name = "echo"\n[[function]]\nname = "echo"\nruntime = "process"\ncommand = ["node", "echo-server.mjs"]\nroutes = ["/echo/..."]\nready = "/healthz"\n`,
      { 'echo-server.mjs': path.join(repoRoot, 'test', 'fixtures', 'process', 'echo-server.mjs') },
    );
  });
  after(async () => {
    await node.close();
    await rm(work, { recursive: true, force: true });
  });

  test('inspect — a busy function: its instance, held requests with their ages, the worker running it, demand', async () => {
    assert.equal((await fetch(`${node.url}/slow?ms=0`)).status, 200, 'lit');
    const calls = Array.from({ length: 3 }, () => fetch(`${node.url}/slow?ms=900`).then((r) => r.text()));
    await until('two requests held', async () => (await inspection(node, '?function=slow')).functions[0]!.held.count === 2);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const seen = await inspection(node, '?function=slow');
    assert.deepEqual(seen.functions.map((f) => f.name), ['slow'], 'narrowed to one function');
    const slow = seen.functions[0]!;
    assert.equal(slow.app, 'slow');
    assert.equal(slow.revision, 1);
    assert.equal(slow.instances.length, 1);
    assert.equal(slow.instances[0]!.state, 'ready');
    assert.equal(slow.instances[0]!.inFlight, 1);
    assert.equal(slow.instances[0]!.served, 2, 'the lighting request and the one running');
    assert.equal(slow.held.oldestAgesMs.length, 2);
    assert.ok(slow.held.oldestAgesMs[0]! >= 100 && slow.held.oldestAgesMs[0]! < 5_000, `held for ${slow.held.oldestAgesMs[0]} ms`);
    assert.ok(slow.held.oldestAgesMs[0]! >= slow.held.oldestAgesMs[1]!, 'oldest first');
    assert.equal(slow.demand.active, 3);
    assert.equal(slow.demand.idleForMs, 0);
    const running = seen.sandbox.workers.filter((w) => w.current?.function === 'slow');
    assert.equal(running.length, 1, JSON.stringify(seen.sandbox.workers));
    assert.ok(running[0]!.current!.forMs >= 100, `running for ${running[0]!.current!.forMs} ms`);
    assert.equal(seen.cluster, undefined, 'an embedded node lists no cluster');

    const text = await inspect(node, ['slow']);
    assert.equal(text.error, undefined, text.err);
    assert.match(text.out, /^Node '.+' at .+: up .+, RSS \d+ MiB, heap \d+ MiB$/m);
    assert.match(text.out, /^slow +slow +1 +wagi +1 +2 \(oldest \d+(ms|\.\d+s)\) +3 active, /m);
    assert.match(text.out, /^slow-1 +ready +\S+ +1 +2 +memoryBytes=\d+$/m, "a WAGI instance holds the memory of its runs in flight");
    assert.match(text.out, /^Held requests of 'slow': 2, waiting /m);
    assert.match(text.out, /^#\d+ +(busy|held(?: \(low priority\))?) +1 +slow for \d+/m);
    assert.deepEqual(await Promise.all(calls), ['slept=900\n', 'slept=900\n', 'slept=900\n']);
  });

  test('inspect — the last scale decision, open breakers and a process instance\'s upstream connections', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await fetch(`${node.url}/tenant`, { headers: { 'x-tenant': 'a' } })).status, 500);
    assert.equal((await fetch(`${node.url}/echo/hi`)).status, 200);
    // The scaler decides once a second; wait for one made after the requests above.
    await until('a scale decision with tenant active', async () => (await inspection(node)).functions.find((f) => f.name === 'tenant')?.lastDecision?.active === true, 5_000);
    const seen = await inspection(node);
    assert.deepEqual(seen.functions.map((f) => f.name), ['echo', 'slow', 'tenant']);
    const tenant = seen.functions.find((f) => f.name === 'tenant')!;
    assert.deepEqual(tenant.breakers && { open: tenant.breakers.open, keys: tenant.breakers.keys.map((k) => k.key) }, { open: 1, keys: ['a'] });
    const decision = tenant.lastDecision!;
    assert.equal(decision.metric, 'concurrency');
    assert.equal(decision.wanted, 1);
    assert.ok(decision.agoMs >= 0 && decision.agoMs < 5_000);
    const echo = seen.functions.find((f) => f.name === 'echo')!;
    assert.equal(echo.runtime, 'process');
    assert.equal(echo.instances[0]!.figures?.upstreamConnections, 1, JSON.stringify(echo.instances));

    const text = await inspect(node, []);
    assert.equal(text.error, undefined, text.err);
    assert.match(text.out, /^tenant +tenants +1 +wagi .* want 1: concurrency \d+\.\d\d \/ target \d+, .+ ago$/m);
    assert.match(text.out, /^Function 'tenant' has 1 open breaker \(header:x-tenant\): "a" open \d+s$/m);
    assert.match(text.out, /^echo-1 +ready .* upstreamConnections=1 upstreamIdle=1 tunnels=0$/m);

    const json = await inspect(node, ['tenant', '--json']);
    assert.equal((JSON.parse(json.out) as NodeInspection).functions[0]!.name, 'tenant');
    assert.match(formatInspection({ ...seen, functions: [] }), /^No functions\.$/m);
  });

  test('inspect — an unknown function, a missing token and a bad profile length are refused with what to do', async () => {
    const unknown = await inspect(node, ['nosuch']);
    assert.match(unknown.error?.message ?? '', /No function named 'nosuch' on node '.+' \(LL_NOT_FOUND\)/);
    assert.equal((await fetch(`${node.adminUrl}/v1/inspect`)).status, 401);
    assert.equal((await fetch(`${node.adminUrl}/v1/inspect/profile?seconds=1`, { method: 'POST' })).status, 401);
    assert.equal((await fetch(`${node.adminUrl}/v1/inspect/heap`, { method: 'POST' })).status, 401);
    const bad = await fetch(`${node.adminUrl}/v1/inspect/profile?seconds=abc`, { method: 'POST', headers: { authorization: `Bearer ${node.platform.token}` } });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, /seconds must be a number above 0 and at most 300, like 10; got 'abc'/);
    const flag = await inspect(node, ['profile', '--seconds', '0']);
    assert.match(flag.error?.message ?? '', /must be a number of seconds above 0/);
  });

  test('inspect — profile writes a .cpuprofile; a second one at once is refused; heap writes a snapshot', async () => {
    const file = path.join(work, 'node.cpuprofile');
    const first = inspect(node, ['profile', '--seconds', '0.6', '-o', file]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    const second = await fetch(`${node.adminUrl}/v1/inspect/profile?seconds=1`, { method: 'POST', headers: { authorization: `Bearer ${node.platform.token}` } });
    assert.equal(second.status, 503);
    assert.match(((await second.json()) as { error: { message: string } }).error.message, /already taking a CPU profile/);
    const done = await first;
    assert.equal(done.error, undefined, done.err);
    assert.match(done.out, /Wrote .*node\.cpuprofile/);
    const profile = JSON.parse(await readFile(file, 'utf8')) as { nodes: unknown[]; startTime: number; endTime: number; samples: number[] };
    assert.ok(profile.nodes.length > 0 && profile.samples.length > 0);
    assert.ok(profile.endTime - profile.startTime >= 500_000, 'sampled for about the time asked (µs)');

    const heap = path.join(work, 'node.heapsnapshot');
    const snapshot = await inspect(node, ['heap', '-o', heap]);
    assert.equal(snapshot.error, undefined, snapshot.err);
    assert.ok((await stat(heap)).size > 1_000_000);
    const head = (await readFile(heap)).subarray(0, 64).toString();
    assert.match(head, /^\{"snapshot":\{"meta":/);
    // The node serves on after both.
    assert.equal((await fetch(`${node.url}/tenant`, { headers: { 'x-tenant': 'b' } })).status, 200);
  });
});
