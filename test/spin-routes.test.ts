// Spin's route forms on a real node: named parameters reach WAGI modules as X_PARAM_* and
// processes as spin-path-match-* headers; strip_prefix; conflicts refused before any upload.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseManifest } from '../src/manifest/index.js';
import { repoRoot, startTestNode, wagiFixture, type TestNode } from '../src/testing/index.js';
import { cliEnv, CLI } from './cli-helpers.js';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';

const ECHO = path.join(repoRoot, 'test', 'fixtures', 'process', 'echo-server.mjs');

describe('spin routes on a node', () => {
  let node: TestNode;

  before(async () => {
    node = await startTestNode();
    await node.deploy(
      [
        'name = "people"',
        '[[function]]',
        'name = "user"',
        'source = "env.wasm"',
        'routes = ["/users/:id", "/users/:id/files/..."]',
        '[[function]]',
        'name = "me"',
        'source = "env.wasm"',
        'routes = ["/users/me"]',
      ].join('\n'),
      { 'env.wasm': wagiFixture('env') },
    );
    await node.deploy(
      ['name = "tenants"', '[[function]]', 'name = "tenant-api"', 'runtime = "process"', 'command = ["node", "echo-server.mjs"]', 'routes = ["/api/:tenant/..."]', 'strip_prefix = true', 'ready = "/healthz"'].join('\n'),
      { 'echo-server.mjs': ECHO },
    );
  });
  after(() => node.close());

  test('spin routes — a WAGI module gets its parameters as X_PARAM_* and the exact route wins over them', async () => {
    const text = await (await fetch(`${node.url}/users/J%C3%BCrgen`)).text();
    assert.match(text, /^ENV X_PARAM_ID=Jürgen$/m);
    assert.match(text, /^ENV X_MATCHED_ROUTE=\/users\/:id$/m);
    assert.match(text, /^ENV HTTP_SPIN_PATH_MATCH_ID=Jürgen$/m);
    const deep = await (await fetch(`${node.url}/users/7/files/a/b.txt`)).text();
    assert.match(deep, /^ENV X_PARAM_ID=7$/m);
    assert.match(deep, /^ENV SCRIPT_NAME=\/users\/7\/files$/m);
    assert.match(deep, /^ENV PATH_INFO=\/a\/b\.txt$/m);
    const me = await (await fetch(`${node.url}/users/me`)).text();
    assert.match(me, /^ENV X_MATCHED_ROUTE=\/users\/me$/m);
    assert.doesNotMatch(me, /X_PARAM_/);
  });

  test('spin routes — a client cannot forge a parameter header', async () => {
    const text = await (await fetch(`${node.url}/users/7`, { headers: { 'spin-path-match-id': 'forged' } })).text();
    assert.match(text, /^ENV HTTP_SPIN_PATH_MATCH_ID=7$/m);
    assert.match(text, /^ENV X_PARAM_ID=7$/m);
  });

  test('spin routes — a process gets spin-path-match-* headers, and the path without the prefix with strip_prefix', async () => {
    const res = await fetch(`${node.url}/api/acme/_/headers?x=1`);
    assert.equal(res.status, 200, 'the process saw /_/headers: the prefix /api/acme was stripped');
    const headers = (await res.json()) as Record<string, string>;
    assert.equal(headers['spin-path-match-tenant'], 'acme');
    const echoed = await fetch(`${node.url}/api/acme/anything?q=2`, { method: 'POST', body: 'hi' });
    assert.equal(echoed.headers.get('x-echo-query'), 'q=2', 'the query survives the strip');
    assert.equal(await echoed.text(), 'hi');
    const injected = await fetch(`${node.url}/api/a%0d%0aX-Evil:%201/_/headers`);
    assert.equal(injected.status, 200);
    const seen = (await injected.json()) as Record<string, string>;
    assert.equal(seen['spin-path-match-tenant'], 'a%0d%0aX-Evil:%201', 'escapes of control characters stay escaped');
    assert.equal(seen['x-evil'], undefined);
  });

  test('spin routes — an upgrade gets the parameters and the stripped path too', async () => {
    const socket = net.connect(Number(new URL(node.url).port), '127.0.0.1');
    socket.on('error', () => undefined);
    try {
      socket.write('GET /api/acme/ws?x=1 HTTP/1.1\r\nhost: localhost\r\nconnection: upgrade\r\nupgrade: lamplighter-echo\r\n\r\n');
      let head = '';
      const deadline = Date.now() + 5000;
      while (!head.includes('\r\n\r\n') && Date.now() < deadline) {
        const [chunk] = (await Promise.race([once(socket, 'data'), new Promise((r) => setTimeout(() => r([Buffer.alloc(0)]), 200))])) as [Buffer];
        head += chunk.toString();
      }
      assert.match(head, /^HTTP\/1\.1 101 /);
      assert.match(head, /\r\nx-seen-path: \/ws\?x=1\r\n/);
      assert.match(head, /\r\nx-seen-tenant: acme\r\n/);
    } finally {
      socket.destroy();
    }
  });

  test('spin routes — a route another app already serves in the same shape is refused at deploy', async () => {
    await assert.rejects(
      node.deploy(['name = "clash"', '[[function]]', 'name = "clash"', 'source = "env.wasm"', 'routes = ["/users/:name"]'].join('\n'), { 'env.wasm': wagiFixture('env') }),
      /Cannot deploy app 'clash': Route '\/users\/:name' on host '\*' of .* is already taken by .*\('\/users\/:id' matches the same paths\)/,
    );
  });
});

describe('spin routes in the manifest', () => {
  test('spin routes — malformed routes are refused with what to write', () => {
    const refuse = (route: string, why: RegExp): void => {
      assert.throws(() => parseManifest(`name = "a"\n[[function]]\nname = "a"\nsource = "a.wasm"\nroutes = ["${route}"]\n`), why);
    };
    refuse('/a/.../b', /in route '\/a\/\.\.\.\/b' a wildcard may only end the route, as '\/files\/\.\.\.'/);
    refuse('/a/:', /route '\/a\/:' has parameter ':': name it with letters, digits, '_' or '-', like ':id'/);
    refuse('/a/:id/:id', /names parameter ':id' twice/);
    refuse('/a//b', /has an empty segment/);
  });

  test('spin routes — two routes of one app matching the same paths are refused before any upload', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-routes-'));
    try {
      await writeFile(
        path.join(dir, 'lamplighter.toml'),
        ['name = "twice"', '[[function]]', 'name = "a"', 'source = "a.wasm"', 'routes = ["/u/:id"]', '[[function]]', 'name = "b"', 'source = "a.wasm"', 'routes = ["/u/:name"]'].join('\n'),
      );
      // No node listens at the server given: the refusal comes from reading the manifest, first.
      const result = spawnSync(process.execPath, [CLI, 'deploy', dir, '--server', 'http://127.0.0.1:9', '--token', 'x'], { env: cliEnv(), encoding: 'utf8', timeout: 20_000 });
      assert.equal(result.status, 1);
      assert.match(result.stderr, /function\[b\]\.routes\[0\]: route '\/u\/:name' matches the same paths as route '\/u\/:id' of function 'a'; give one of them another path or host/);
      assert.doesNotMatch(result.stderr, /Cannot reach/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
