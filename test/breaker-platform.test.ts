// Breakers on a real node: a function failing for one tenant is refused for that tenant alone,
// over a socket and in-process, and `ls`, the admin API and /metrics say so.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { formatApps } from '../src/cli/ls-format.js';
import type { AppStatus } from '../src/control/index.js';
import { repoRoot, startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';

const BREAKER = ['[function.breaker]', 'partition = "header:x-tenant"', 'min_requests = 4', 'failure_ratio = 0.5', 'window = "10s"', 'open_for = "800ms"', 'half_open_probes = 1', 'consecutive_failures = 0'].join('\n');

async function tenantCall(node: TestNode, tenant: string, query = ''): Promise<{ status: number; body: string; retryAfter: string | null }> {
  const res = await fetch(`${node.url}/tenant${query}`, { headers: { 'x-tenant': tenant } });
  return { status: res.status, body: await res.text(), retryAfter: res.headers.get('retry-after') };
}

async function tenantFunction(node: TestNode): Promise<AppStatus['functions'][number]> {
  const res = await fetch(`${node.adminUrl}/v1/apps`, { headers: { authorization: `Bearer ${node.platform.token}` } });
  assert.equal(res.status, 200);
  const apps = (await res.json()) as { apps: AppStatus[] };
  const fn = apps.apps.find((a) => a.name === 'tenants')?.functions[0];
  assert.ok(fn, 'the admin API lists the function');
  return fn;
}

describe('breakers on a node', () => {
  let node: TestNode;

  before(async () => {
    node = await startTestNode();
    await node.deploy(wagiApp('tenants', 'tenant', 'tenant.wasm', ['/tenant'], BREAKER), { 'tenant.wasm': wagiFixture('tenant') });
    // A process function: a client leaving aborts the proxied call, which ends in an error.
    await node.deploy(
      `name = "slow"\n[[function]]\nname = "slow"\nruntime = "process"\ncommand = ["node", "echo-server.mjs"]\nroutes = ["/_/slow"]\n[function.breaker]\nconsecutive_failures = 2\n`,
      { 'echo-server.mjs': path.join(repoRoot, 'test', 'fixtures', 'process', 'echo-server.mjs') },
    );
  });
  after(() => node.close());

  test('breakers on a node — failures for one tenant open its breaker only; 4xx never count', async () => {
    // 404s are the caller's fault: as many as the volume, and the breaker stays closed.
    for (let i = 0; i < 6; i++) assert.equal((await tenantCall(node, 'missing')).status, 404);
    assert.equal((await tenantFunction(node)).breakers?.open, 0);

    for (let i = 0; i < 4; i++) assert.equal((await tenantCall(node, 'a')).status, 500);
    const refused = await tenantCall(node, 'a');
    assert.equal(refused.status, 503);
    const error = JSON.parse(refused.body).error;
    assert.equal(error.code, 'LL_BREAKER_OPEN');
    assert.match(error.message, /Function 'tenant' is refusing requests with header:x-tenant "a"/);
    assert.deepEqual([error.function, error.partition, error.key], ['tenant', 'header:x-tenant', 'a'], 'the body names the function and partition');
    assert.equal(refused.retryAfter, '1', 'Retry-After is the time left, rounded up');

    const b = await tenantCall(node, 'b');
    assert.deepEqual([b.status, b.body], [200, 'served b\n'], 'another tenant is served');

    const fn = await tenantFunction(node);
    assert.equal(fn.breakers?.partition, 'header:x-tenant');
    assert.equal(fn.breakers?.open, 1);
    assert.deepEqual(
      fn.breakers?.keys.map((k) => [k.key, k.state]),
      [['a', 'open']],
    );
    assert.match(formatApps((await listApps(node)).filter((a) => a.name === 'tenants')), /Function 'tenant' has 1 open breaker \(header:x-tenant\): "a" open 1s/);

    const metrics = await (await fetch(`${node.adminUrl}/metrics`)).text();
    assert.match(metrics, /lamplighter_breaker_open_keys\{function="tenant"\} 1/);
    assert.match(metrics, /lamplighter_breaker_transitions_total\{function="tenant",to="open"\} 1/);
  });

  test('breakers on a node — after open_for one probe passes; its failure reopens, its success closes', async () => {
    await new Promise((resolve) => setTimeout(resolve, 850));
    // Half-open: the probe reaches the function, fails, and the breaker opens again.
    assert.equal((await tenantCall(node, 'a')).status, 500);
    assert.equal((await tenantCall(node, 'a')).status, 503);
    await new Promise((resolve) => setTimeout(resolve, 850));
    // The in-process entry is judged by the same breakers: the probe succeeds and closes it.
    const probe = await node.platform.gateway.handle({ method: 'GET', url: '/tenant?healed', headers: { 'x-tenant': 'a' } });
    assert.equal(probe.status, 200);
    assert.equal((await tenantFunction(node)).breakers?.open, 0);
    // Closed with its counts cleared: one failure is below min_requests and is answered by the function.
    assert.equal((await tenantCall(node, 'a')).status, 500);
    assert.equal((await tenantCall(node, 'a', '?healed')).status, 200);
    const metrics = await (await fetch(`${node.adminUrl}/metrics`)).text();
    assert.match(metrics, /lamplighter_breaker_open_keys\{function="tenant"\} 0/);
    assert.match(metrics, /lamplighter_breaker_transitions_total\{function="tenant",to="closed"\} 1/);
  });

  test('breakers on a node — clients that leave before the answer never open a breaker', async () => {
    assert.equal((await fetch(`${node.url}/_/slow?ms=0`)).status, 200, 'lit');
    for (let i = 0; i < 4; i++) {
      await assert.rejects(fetch(`${node.url}/_/slow?ms=400`, { signal: AbortSignal.timeout(60) }), { name: 'TimeoutError' });
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    const res = await fetch(`${node.url}/_/slow?ms=0`);
    assert.equal(res.status, 200, await res.text());
  });
});

async function listApps(node: TestNode): Promise<AppStatus[]> {
  const res = await fetch(`${node.adminUrl}/v1/apps`, { headers: { authorization: `Bearer ${node.platform.token}` } });
  return ((await res.json()) as { apps: AppStatus[] }).apps;
}
