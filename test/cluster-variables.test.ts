// Variables kept by the cluster: set through one node, read by every node's build; names listed, values never.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { registerVariablesCommand } from '../src/cli/variables-command.js';
import { startTestCluster, startTestNode, wagiFixture, type TestCluster, type TestNode } from '../src/testing/index.js';
import { runInProcess } from './cli-helpers.js';
import { waitFor } from './cluster-helpers.js';

const APP = `name = "vars"\n[variables]\ntoken = { required = true, secret = true }\n[[function]]\nname = "vars"\nsource = "env.wasm"\nroutes = ["/vars"]\n[function.env]\nTOKEN = "{{ token }}"\n`;

async function cli(node: TestNode, args: string[]): Promise<string> {
  const result = await runInProcess(registerVariablesCommand, [...args, '--server', node.adminUrl, '--token', node.platform.token]);
  if (result.error) throw result.error;
  return result.out;
}

describe('cluster variables', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startTestCluster({ nodes: 2 });
  });
  after(() => cluster?.close());

  test('cluster variables — set on one node, used by every node; listed by name only', async () => {
    const [a, b] = cluster.nodes as [TestNode, TestNode];
    await assert.rejects(b.deploy(APP, { 'env.wasm': wagiFixture('env') }), /required variable 'token' has no value on this node; set environment variable LAMPLIGHTER_VAR_TOKEN, or `lamplighter variables set token …`/);
    assert.match(await cli(a, ['variables', 'set', 'token', 'kv-secret-42']), /Set variable 'token'/);
    await b.deploy(APP, { 'env.wasm': wagiFixture('env') });
    for (const node of cluster.nodes) {
      await waitFor(() => node.platform.group('vars') !== undefined, 3000, `${node.platform.nodeName} to serve the app`);
      assert.match(await (await fetch(`${node.url}/vars`)).text(), /^ENV TOKEN=kv-secret-42$/m);
    }
    const listed = await cli(b, ['variables', 'ls']);
    assert.equal(listed, 'token');
    const raw = await (await fetch(`${a.adminUrl}/v1/variables`, { headers: { authorization: `Bearer ${a.platform.token}` } })).text();
    assert.ok(!raw.includes('kv-secret-42'), 'values are never listed');
    await assert.rejects(cli(a, ['variables', 'set', 'Bad-Name', 'x']), /'Bad-Name' is not a variable name/);
    assert.match(await cli(a, ['variables', 'rm', 'token']), /Removed variable 'token'/);
    assert.equal(await cli(a, ['variables', 'ls']), 'No variables set in the cluster.');
    await assert.rejects(cli(a, ['variables', 'rm', 'token']), /Variable 'token' has no value in the cluster/);
  });
});

test('cluster variables — a lone node says where its values come from instead', async () => {
  const node = await startTestNode();
  try {
    await assert.rejects(cli(node, ['variables', 'ls']), /Variables are set through the admin API in a cluster only; on a lone node use LAMPLIGHTER_VAR_<NAME> or --variables-file/);
  } finally {
    await node.close();
  }
});
