// Per-function resource metrics on a real node: thread time of WAGI and component runs, memory
// held, and instance-lighting time apart from cold-start waits.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';
import { buildFixtureComponent } from './component-helpers.js';

let node: TestNode;

before(async () => {
  node = await startTestNode();
  await node.deploy(wagiApp('hello', 'hello', 'hello.wasm', ['/hello']), { 'hello.wasm': wagiFixture('../../../examples/hello/hello') });
  await node.deploy(wagiApp('slow', 'slow', 'slow.wasm', ['/slow']), { 'slow.wasm': wagiFixture('slow') });
  await node.deploy('name = "comp"\n[[function]]\nname = "comp"\nruntime = "component"\nsource = "echo.wasm"\nroutes = ["/comp/..."]\n', { 'echo.wasm': await buildFixtureComponent('echo.ts') });
});
after(() => node?.close());

async function metric(pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${node.adminUrl}/metrics`)).text();
  const m = pattern.exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

test('function metrics — run time by function and runtime, and instance lighting as its own histogram', async () => {
  for (let i = 0; i < 20; i++) assert.equal((await fetch(`${node.url}/hello`)).status, 200);
  for (let i = 0; i < 5; i++) assert.equal((await fetch(`${node.url}/comp/x`, { method: 'POST', body: 'b' })).status, 200);
  const wagi = await metric(/^lamplighter_function_cpu_seconds_total\{function="hello",runtime="wagi"\} ([\d.e-]+)$/m);
  assert.ok(wagi > 0 && wagi < 5, `hello ran for ${wagi} s of thread time`);
  const component = await metric(/^lamplighter_function_cpu_seconds_total\{function="comp",runtime="component"\} ([\d.e-]+)$/m);
  assert.ok(component > 0 && component < 30, `comp ran for ${component} s of thread time`);
  assert.equal(await metric(/^lamplighter_instance_start_seconds_count\{function="hello"\} (\d+)$/m), 1, 'one instance lit');
  assert.equal(await metric(/^lamplighter_instance_start_seconds_count\{function="comp"\} (\d+)$/m), 1);
  // The first request waited for the lighting: the wait is its own histogram.
  assert.equal(await metric(/^lamplighter_cold_start_wait_seconds_count\{function="hello"\} (\d+)$/m), 1);
});

test('function metrics — memory held: a component\'s instance, a WAGI function\'s runs in flight', async () => {
  const component = await metric(/^lamplighter_function_memory_bytes\{function="comp"\} (\d+)$/m);
  assert.ok(component > 1024 * 1024, `comp holds ${component} bytes`);
  assert.equal((await fetch(`${node.url}/slow?ms=0`)).status, 200);
  assert.equal(await metric(/^lamplighter_function_memory_bytes\{function="slow"\} (\d+)$/m), 0, 'no run in flight, no memory');
  const running = fetch(`${node.url}/slow?ms=600`).then((r) => r.text());
  await new Promise((resolve) => setTimeout(resolve, 200));
  const during = await metric(/^lamplighter_function_memory_bytes\{function="slow"\} (\d+)$/m);
  assert.ok(during >= 65_536, `slow holds ${during} bytes while a run is in flight`);
  await running;
});
