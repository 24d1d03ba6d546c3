// `lamplighter logs` end to end: a WAGI and a process function's output read back after the node restarts, --since, -f, removal and damage.
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { registerClientCommands } from '../src/cli/client-commands.js';
import { repoRoot, startTestNode, wagiFixture, type TestNode } from '../src/testing/index.js';
import { CliProcess, killAllChildren, runInProcess } from './cli-helpers.js';

/** Runs one client command in-process; resolves with its output, or the error it failed with. */
const run = (args: string[]): ReturnType<typeof runInProcess> => runInProcess(registerClientCommands, args);

const ECHO_SERVER = path.join(repoRoot, 'test', 'fixtures', 'process', 'echo-server.mjs');
const MANIFEST = `name = "shop"

[[function]]
name = "cart"
source = "echo.wasm"
routes = ["/cart/..."]

[[function]]
name = "stock"
runtime = "process"
command = ["node", "echo-server.mjs"]
ready = "/healthz"
routes = ["/stock/..."]
`;

async function get(url: string): Promise<void> {
  const res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
  assert.equal(res.status, 200, `${url} answered ${res.status}`);
  await res.text();
}

/** Waits until `check` holds, polling; bounded by `ms`. */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('logs across a restart', () => {
  let root: string;
  let dataDir: string;
  let node: TestNode | undefined;
  let flags: string[];

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'lamplighter-logs-e2e-'));
    dataDir = path.join(root, 'data');
    const first = await startTestNode({ dataDir });
    await first.deploy(MANIFEST, { 'echo.wasm': wagiFixture('echo'), 'echo-server.mjs': ECHO_SERVER });
    await get(`${first.url}/cart/before-restart`);
    await get(`${first.url}/stock/before-restart`);
    await until(() => first.platform.logs.recent(['stock']).some((l) => /this line goes to stderr/.test(l.text)), 'the process function to print');
    // The node stops; a new one starts on the same data directory.
    await first.close();
    node = await startTestNode({ dataDir });
    flags = ['--server', node.adminUrl, '--data', dataDir];
  });

  after(async () => {
    killAllChildren();
    await node?.close();
    await rm(root, { recursive: true, force: true });
  });

  test('logs — a new node on the same data directory shows what the functions printed before it', async () => {
    const cart = await run(['logs', 'cart', ...flags]);
    assert.equal(cart.error, undefined, String(cart.error));
    assert.match(cart.out, /^\S+Z cart stderr: echo: GET \/before-restart$/m);

    const app = await run(['logs', 'shop', ...flags]);
    assert.equal(app.error, undefined, String(app.error));
    assert.match(app.out, /cart stderr: echo: GET \/before-restart/);
    assert.match(app.out, /stock stdout: echo-server: pid \d+ listening/);
    assert.match(app.out, /stock stderr: echo-server: this line goes to stderr/);
  });

  test('logs — --since keeps the lines from then on, as a duration or a time', async () => {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const cut = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await get(`${node!.url}/cart/after-the-cut`);

    const sinceTime = await run(['logs', 'cart', '--since', cut, ...flags]);
    assert.equal(sinceTime.error, undefined, String(sinceTime.error));
    assert.match(sinceTime.out, /echo: GET \/after-the-cut/);
    assert.doesNotMatch(sinceTime.out, /before-restart/);

    const sinceDuration = await run(['logs', 'cart', '--since', '1h', ...flags]);
    assert.match(sinceDuration.out, /before-restart[\s\S]*after-the-cut/);

    const tail = await run(['logs', 'cart', '-n', '1', ...flags]);
    assert.equal(tail.out.split('\n').length, 1, tail.out);
    assert.match(tail.out, /after-the-cut/);

    const bad = await run(['logs', 'cart', '--since', 'yesterday', ...flags]);
    assert.match(bad.err, /--since must be a duration back from now like 10m or 1h30m, or a time like 2026-12-03T02:00:00Z, got 'yesterday'/);
    const badApi = await fetch(`${node!.adminUrl}/v1/logs/cart?since=yesterday`, { headers: { authorization: `Bearer ${node!.platform.token}` } });
    assert.equal(badApi.status, 400);
    assert.match(await badApi.text(), /since must be a time in milliseconds since the epoch, got 'yesterday'/);
  });

  test('logs — -f prints what the history had, then a new line as it comes', async () => {
    const follow = new CliProcess(['logs', 'cart', '-f', '-n', '5', ...flags]);
    try {
      await follow.waitForOutput(/before-restart|after-the-cut/);
      await get(`${node!.url}/cart/while-following`);
      await follow.waitForOutput(/cart stderr: echo: GET \/while-following/, 10_000);
      assert.equal(follow.stdout.match(/while-following/g)?.length, 1, 'printed once, not from both the files and the live feed');
    } finally {
      await follow.stop();
    }
  });

  test('logs — a damaged line in the files is skipped, said, and counted in /metrics', async () => {
    await node!.platform.logs.read(['cart']);
    await appendFile(path.join(dataDir, 'logs', 'cart', 'current.log'), '{"time":1,"stream":"std\n');
    const r = await run(['logs', 'cart', ...flags]);
    assert.equal(r.error, undefined, String(r.error));
    assert.match(r.out, /after-the-cut/);
    assert.match(r.err, /skipped 1 damaged line in the log files/);
    const metrics = await (await fetch(`${node!.adminUrl}/metrics`)).text();
    assert.match(metrics, /^lamplighter_log_lines_damaged_total\{function="cart"\} [1-9]/m);
  });

  test('logs — a follower that stops reading gets lines dropped past a bound, not the node\'s memory', async () => {
    const { port } = new URL(node!.adminUrl);
    const socket = net.connect(Number(port), '127.0.0.1');
    try {
      socket.write(`GET /v1/logs/cart?follow=1&tail=0 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${node!.platform.token}\r\n\r\n`);
      // Headers come once the follow is live; then the client stops reading.
      await new Promise<void>((resolve, reject) => {
        let head = '';
        const onData = (chunk: Buffer): void => {
          head += chunk.toString('latin1');
          if (head.includes('\r\n\r\n')) {
            socket.off('data', onData);
            socket.pause();
            resolve();
          }
        };
        socket.on('data', onData);
        socket.once('error', reject);
      });
      const line = 'q'.repeat(100 * 1024);
      for (let i = 0; i < 200; i++) node!.platform.logs.write('cart', 'stdout', line);
      const metrics = await (await fetch(`${node!.adminUrl}/metrics`)).text();
      const dropped = Number(/^lamplighter_log_lines_dropped_total\{function="cart",sink="follow"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
      assert.ok(dropped > 100 && dropped < 200, `20 MB to a stalled follower: ${dropped} of 200 lines dropped`);
    } finally {
      socket.destroy();
    }
  });

  test('logs — a removed function\'s lines stay readable by its name', async () => {
    assert.equal((await run(['rm', 'shop', ...flags])).error, undefined);
    const cart = await run(['logs', 'cart', ...flags]);
    assert.equal(cart.error, undefined, String(cart.error));
    assert.match(cart.out, /before-restart/);
    const none = await run(['logs', 'nothing-here', ...flags]);
    assert.match(none.error?.message ?? '', /No app or function named 'nothing-here', and no logs kept of one/);
  });
});
