// A deploy that changes nothing commits no revision and says so, through the node, the admin API, `deploy` and `up --data`.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { startTestNode, type TestNode } from '../src/testing/index.js';
import { CliProcess, cliOk, killAllChildren, writeApp } from './cli-helpers.js';
import { appWithGreeting as app, HELLO } from './store-helpers.js';

describe('deploy unchanged', () => {
  const dirs: string[] = [];
  const nodes: TestNode[] = [];
  const fresh = async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-unchanged-'));
    dirs.push(dir);
    return dir;
  };
  after(async () => {
    killAllChildren();
    for (const node of nodes) await node.close().catch(() => undefined);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  const revisionFiles = async (data: string) => (await readdir(path.join(data, 'apps', 'app', 'revisions'))).sort();

  test('deploy unchanged — the same manifest and artifacts commit no revision; any change does', async () => {
    const node = await startTestNode({ dataDir: path.join(await fresh(), 'data'), adminPort: null, sandboxWorkers: 1 });
    nodes.push(node);
    const dir = await node.writeApp(app('One'), { 'app.wasm': HELLO });
    const first = await node.platform.deployDir(dir);
    assert.deepEqual([first.revision.number, first.unchanged], [1, false]);
    const again = await node.platform.deployDir(dir);
    assert.deepEqual([again.revision.number, again.unchanged], [1, true]);
    assert.deepEqual(await revisionFiles(node.dataDir), ['1.json']);

    const changed = await node.platform.deployDir(await node.writeApp(app('Two'), { 'app.wasm': HELLO }));
    assert.deepEqual([changed.revision.number, changed.unchanged], [2, false]);
    // Going back to the first manifest is a change from what serves now.
    const back = await node.platform.deployDir(dir);
    assert.deepEqual([back.revision.number, back.unchanged], [3, false]);
    assert.equal(await (await fetch(`${node.url}/app`)).text(), 'One from Lamplighter!\n');
  });

  test('deploy unchanged — the admin API answers 200 unchanged and `deploy` says the revision already serves it', async () => {
    const node = await startTestNode({ dataDir: path.join(await fresh(), 'data'), adminPort: 0, sandboxWorkers: 1 });
    nodes.push(node);
    const dir = await node.writeApp(app('One'), { 'app.wasm': HELLO });
    const flags = ['--server', node.adminUrl, '--token', node.platform.token];
    assert.match(await cliOk(['deploy', dir, ...flags]), /^Deployed app 'app' revision 1$/m);
    assert.match(await cliOk(['deploy', dir, ...flags]), /^Unchanged: app 'app' revision 1 already serves this$/m);
    const res = await fetch(`${node.adminUrl}/v1/apps`, {
      method: 'POST',
      headers: { authorization: `Bearer ${node.platform.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ manifest: app('One'), artifacts: (await node.platform.store.revision('app', 1)).artifacts, appDir: dir }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual({ ...((await res.json()) as object), createdAt: undefined }, { app: 'app', revision: 1, unchanged: true, createdAt: undefined });
    assert.deepEqual(await revisionFiles(node.dataDir), ['1.json']);
  });

  test('deploy unchanged — restarting `up --data DIR` adds no revision', async () => {
    const root = await fresh();
    const data = path.join(root, 'data');
    const dir = await writeApp(path.join(root, 'app'), app('Up'), { 'app.wasm': HELLO });
    for (let run = 1; run <= 3; run++) {
      const up = new CliProcess(['up', dir, '--data', data, '--port', '0', '--admin-port', '0']);
      await up.waitForOutput(/Serving app 'app' on (http:\/\/\S+)/);
      await up.stop('SIGTERM'); // how it exits is the CLI's own test; here only what it left in DIR
      assert.deepEqual(await revisionFiles(data), ['1.json'], `after run ${run}`);
    }
    assert.equal((await readFile(path.join(data, 'apps', 'app', 'current'), 'utf8')).trim(), '1');
  });
});
