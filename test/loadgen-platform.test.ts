// `lamplighter bench --squeeze --recommend` against a real node: the knee is the sandbox's parallelism.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot, startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';

const run = promisify(execFile);

describe('bench against a node', () => {
  let node: TestNode;
  before(async () => {
    // Two sandbox workers: a busy-waiting handler can run two at a time, no more.
    // Two workers and no extra ones: the knee is the pool's capacity. Extra workers start while every
    // worker is held by a run past 20 ms, and a lone function's runs younger than that do not count
    // against its share, so with them its throughput rises past two workers in bursts.
    node = await startTestNode({ sandboxWorkers: 2, sandboxMaxWorkers: 2 });
    await node.deploy(wagiApp('rec', 'slow', 'slow.wasm', ['/slow'], '[function.scale]\nmax = 4\nidle = "45s"'), { 'slow.wasm': wagiFixture('slow') });
  });
  after(() => node.close());

  test('bench against a node — squeeze finds the two sandbox workers and recommends target = 2', async () => {
    const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
    const { stdout } = await run(
      process.execPath,
      [cli, 'bench', `${node.url}/slow?ms=40`, '--squeeze', '--min', '1', '--max', '5', '-d', '1s', '--recommend', 'slow', '--server', node.adminUrl, '--token', node.platform.token],
      { timeout: 60_000 },
    );
    assert.match(stdout, /\[function\.scale\]/);
    assert.match(stdout, /^max = 4$/m);
    assert.match(stdout, /^idle = "45s"$/m);
    const target = Number(/^target = (\d+)$/m.exec(stdout)?.[1]);
    assert.equal(target, 2, stdout);
  });
});
