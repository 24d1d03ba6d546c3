// The client commands (deploy, ls, rm, rollback, logs) in-process against a real node: where they
// find the admin API, what they say when it is something else, and how they check their flags.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { CommanderError } from 'commander';
import { registerClientCommands } from '../src/cli/client-commands.js';
import type { ClusterView } from '../src/cluster/index.js';
import { ADMIN_API_HEADER } from '../src/control/index.js';
import { startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';
import { runInProcess } from './cli-helpers.js';

/** Runs one client command in-process; resolves with its output, or the error it failed with. */
const run = (args: string[]): ReturnType<typeof runInProcess> => runInProcess(registerClientCommands, args);

const HELLO = wagiFixture('../../../examples/hello/hello');

describe('client commands', () => {
  let node: TestNode;
  let helloDir: string;
  let htmlServer: http.Server;
  let htmlUrl: string;
  let closedUrl: string;
  before(async () => {
    node = await startTestNode();
    helloDir = await node.writeApp(wagiApp('hello', 'hello', 'hello.wasm', ['/hello']), { 'hello.wasm': HELLO });
    htmlServer = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>not lamplighter</title>');
    });
    await new Promise<void>((resolve) => htmlServer.listen(0, '127.0.0.1', resolve));
    htmlUrl = `http://127.0.0.1:${(htmlServer.address() as AddressInfo).port}`;
    // A port nothing listens on: bound, noted, closed.
    const probe = http.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    closedUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
    await new Promise((resolve) => probe.close(resolve));
    process.env.LAMPLIGHTER_TOKEN = node.platform.token;
  });
  after(async () => {
    delete process.env.LAMPLIGHTER_SERVER;
    delete process.env.LAMPLIGHTER_TOKEN;
    htmlServer.closeAllConnections();
    await new Promise((resolve) => htmlServer.close(resolve));
    await node.close();
  });

  test('client commands — every one honours LAMPLIGHTER_SERVER', async () => {
    process.env.LAMPLIGHTER_SERVER = node.adminUrl;
    try {
      const deploy1 = await run(['deploy', helloDir]);
      assert.equal(deploy1.error, undefined, String(deploy1.error));
      assert.match(deploy1.out, /Deployed app 'hello' revision 1/);
      // The same app again commits nothing; a changed route makes revision 2.
      const same = await run(['deploy', helloDir]);
      assert.equal(same.error, undefined, String(same.error));
      assert.match(same.out, /Unchanged/);
      const changedDir = await node.writeApp(wagiApp('hello', 'hello', 'hello.wasm', ['/hello', '/hi']), { 'hello.wasm': HELLO });
      assert.equal((await run(['deploy', changedDir])).error, undefined);
      assert.equal((await node.platform.store.current('hello'))?.number, 2);

      const ls = await run(['ls']);
      assert.equal(ls.error, undefined, String(ls.error));
      assert.match(ls.out, /^hello\s+2\s+hello\s+wagi/m);

      await (await fetch(`${node.url}/hello`)).text();
      const logs = await run(['logs', 'hello', '-n', '5']);
      assert.equal(logs.error, undefined, String(logs.error));

      const rollback = await run(['rollback', 'hello']);
      assert.equal(rollback.error, undefined, String(rollback.error));
      assert.match(rollback.out, /now serves revision 1/);
      assert.equal(node.platform.list()[0]?.revision, 1);

      const rm = await run(['rm', 'hello']);
      assert.equal(rm.error, undefined, String(rm.error));
      assert.deepEqual(node.platform.list(), []);
    } finally {
      delete process.env.LAMPLIGHTER_SERVER;
    }
  });

  test('client commands — ls on an embedded node prints the apps alone; ls --json adds the cluster view', async () => {
    const dir = await node.writeApp(wagiApp('lone', 'lone', 'hello.wasm', ['/lone']), { 'hello.wasm': HELLO });
    assert.equal((await run(['deploy', dir, '--server', node.adminUrl])).error, undefined);
    try {
      await (await fetch(`${node.url}/lone`)).text();
      const ls = await run(['ls', '--server', node.adminUrl]);
      assert.equal(ls.error, undefined, String(ls.error));
      assert.match(ls.out, /^APP\s+REV\s+FUNCTION\s+RUNTIME\s+INSTANCES\s+PENDING\s+STATUS\s+ROUTES\nlone\s+1\s+lone\s+wagi\s+1\s+0\s+lit\s+\/lone$/);

      const json = await run(['ls', '--json', '--server', node.adminUrl]);
      assert.equal(json.error, undefined, String(json.error));
      const listing = JSON.parse(json.out) as { apps: Array<{ name: string }>; cluster: ClusterView };
      assert.deepEqual(listing.apps.map((a) => a.name), ['lone']);
      assert.equal(listing.cluster.mode, 'embedded');
      assert.equal(listing.cluster.node, node.platform.nodeName);
      assert.deepEqual(listing.cluster.nodes.map((n) => [n.name, n.self, n.healthy]), [[node.platform.nodeName, true, true]]);
      assert.deepEqual(listing.cluster.functions.map((f) => [f.name, f.instances.map((i) => i.node)]), [['lone', [node.platform.nodeName]]]);
    } finally {
      assert.equal((await run(['rm', 'lone', '--server', node.adminUrl])).error, undefined);
    }
  });

  test('client commands — ls against a node from before GET /v1/cluster lists its apps without a cluster', async () => {
    // An admin API that knows /v1/apps only, as nodes did before the cluster.
    const older = http.createServer((req, res) => {
      res.setHeader(ADMIN_API_HEADER, '1');
      res.setHeader('content-type', 'application/json');
      if (req.url === '/v1/apps') {
        res.end(JSON.stringify({ apps: [] }));
        return;
      }
      res.statusCode = 404;
      res.end(JSON.stringify({ error: { code: 'LL_NOT_FOUND', message: `No admin endpoint ${req.method} ${req.url}` } }));
    });
    await new Promise<void>((resolve) => older.listen(0, '127.0.0.1', resolve));
    try {
      const server = `http://127.0.0.1:${(older.address() as AddressInfo).port}`;
      const ls = await run(['ls', '--server', server]);
      assert.equal(ls.error, undefined, String(ls.error));
      assert.equal(ls.out, 'No apps deployed.');
      const json = await run(['ls', '--json', '--server', server]);
      assert.equal(json.error, undefined, String(json.error));
      assert.deepEqual(JSON.parse(json.out), { apps: [] });
    } finally {
      older.closeAllConnections();
      await new Promise((resolve) => older.close(resolve));
    }
  });

  test('client commands — --server wins over LAMPLIGHTER_SERVER', async () => {
    process.env.LAMPLIGHTER_SERVER = closedUrl;
    try {
      const ls = await run(['ls', '--server', node.adminUrl]);
      assert.equal(ls.error, undefined, String(ls.error));
    } finally {
      delete process.env.LAMPLIGHTER_SERVER;
    }
  });

  test('client commands — a server that is not a Lamplighter admin API is named as such', async () => {
    for (const args of [['ls'], ['deploy', helloDir], ['logs', 'hello'], ['rm', 'hello'], ['rollback', 'hello']]) {
      const r = await run([...args, '--server', htmlUrl]);
      assert.ok(r.error, `${args[0]} failed`);
      assert.match(r.error.message, new RegExp(`${htmlUrl} \\(from --server\\) is not a Lamplighter admin API`), args[0]);
      assert.match(r.error.message, /answered 200 with text\/html/);
      assert.doesNotMatch(r.error.message, /JSON|Unexpected token/);
    }
  });

  test("client commands — the node's gateway port is told apart from its admin API", async () => {
    process.env.LAMPLIGHTER_SERVER = node.url;
    try {
      const r = await run(['ls']);
      assert.match(r.error?.message ?? '', /\(from \$LAMPLIGHTER_SERVER\) is not a Lamplighter admin API: it is a Lamplighter gateway, not its admin API/);
    } finally {
      delete process.env.LAMPLIGHTER_SERVER;
    }
  });

  test('client commands — a server that is not a URL is refused as such', async () => {
    const r = await run(['ls', '--server', 'localhost:8081']);
    assert.match(r.error?.message ?? '', /The admin API URL from --server must be an http:\/\/ or https:\/\/ URL like http:\/\/127\.0\.0\.1:8081, got 'localhost:8081'/);
  });

  test('client commands — nothing listening gets the URL and the next step', async () => {
    const r = await run(['ls', '--server', closedUrl]);
    assert.match(r.error?.message ?? '', new RegExp(`Cannot reach the Lamplighter admin API at ${closedUrl} \\(from --server\\): connect ECONNREFUSED`));
    assert.match(r.error?.message ?? '', /lamplighter serve/);
  });

  test('client commands — a missing artifact is named with how to build it', async () => {
    const component = (source: string) => `name = "app"\n[[function]]\nname = "f"\nruntime = "component"\nsource = "${source}"\nroutes = ["/f"]\n`;
    const cases: Array<{ manifest: string; files: Record<string, Uint8Array>; hint: RegExp }> = [
      { manifest: component('handler.wasm'), files: { 'handler.ts': Buffer.from('export default {}') }, hint: /handler\.wasm not found \(looked for .*handler\.wasm\); build it with `lamplighter build handler\.ts -o handler\.wasm`/ },
      { manifest: component('out/app.wasm'), files: {}, hint: /out\/app\.wasm not found .*build it from a JS or TS fetch handler with `lamplighter build handler\.ts -o out\/app\.wasm`/ },
      { manifest: wagiApp('app', 'f', 'hello.wasm', ['/f']), files: { 'hello.c': Buffer.from('int main(void){return 0;}') }, hint: /build it from hello\.c with `clang --target=wasm32-wasi -O2 -o hello\.wasm hello\.c`/ },
      { manifest: wagiApp('app', 'f', 'hello.wasm', ['/f']), files: {}, hint: /hello\.wasm not found .*build a WASI command module there .*or fix `source` in lamplighter\.toml/ },
    ];
    for (const { manifest, files, hint } of cases) {
      const dir = await node.writeApp(manifest, files);
      const viaDeploy = await run(['deploy', dir, '--server', node.adminUrl]);
      assert.match(viaDeploy.error?.message ?? '', hint, 'deploy');
      assert.match(viaDeploy.error?.message ?? '', /^Cannot deploy function 'f': /);
      // `up` deploys through the node itself.
      await assert.rejects(node.platform.deployDir(dir), (err: Error & { code?: string }) => err.code === 'LL_MODULE_INVALID' && hint.test(err.message));
    }
  });

  test('client commands — logs -n must be a number of lines', async () => {
    for (const bad of ['abc', '-5', '1.5', '']) {
      const r = await run(['logs', 'hello', '--server', node.adminUrl, '-n', bad]);
      assert.ok(r.error instanceof CommanderError, `-n '${bad}' refused`);
      assert.match(r.err, new RegExp(`-n must be a number of lines, 0 or more \\(e\\.g\\. -n 50\\), got '${bad.replace('.', '\\.')}'`), r.err);
    }
    const res = await fetch(`${node.adminUrl}/v1/logs/hello?tail=abc`, { headers: { authorization: `Bearer ${node.platform.token}` } });
    assert.equal(res.status, 400);
  });
});
