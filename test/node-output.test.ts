// What a node prints in its terminal: `up` shows function output prefixed with the name, `serve` does not; the node log as JSON or pretty.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { CliProcess, killAllChildren, REPO, runCli, startServe, writeApp, cliOk, wagiFixture } from './cli-helpers.js';

const ECHO_SERVER = path.join(REPO, 'test', 'fixtures', 'process', 'echo-server.mjs');
const SERVING = /Serving app 'stock' on (http:\/\/127\.0\.0\.1:\d+)/;

let root: string;
let appDir: string;

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'lamplighter-output-'));
  // min = 1: the process starts with the deploy, so it prints without a request.
  appDir = await writeApp(
    path.join(root, 'stock'),
    'name = "stock"\n[[function]]\nname = "stock"\nruntime = "process"\ncommand = ["node", "echo-server.mjs"]\nready = "/healthz"\nroutes = ["/..."]\n[function.scale]\nmin = 1\n',
    { 'echo-server.mjs': ECHO_SERVER },
  );
});

after(async () => {
  killAllChildren();
  await rm(root, { recursive: true, force: true });
});

async function until(check: () => boolean, what: () => string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('node output — up shows each function\'s output prefixed with its name; the node log is JSON by default', async () => {
  const up = new CliProcess(['up', appDir, '--port', '0', '--admin-port', '0', '--workers', '1'], { env: { LAMPLIGHTER_LOG: 'info', LAMPLIGHTER_LOG_FORMAT: undefined } });
  try {
    await up.waitForOutput(SERVING);
    await up.waitForOutput(/^\[stock\] echo-server: pid \d+ listening on 127\.0\.0\.1:\d+$/m);
    await until(() => /^\[stock\] echo-server: this line goes to stderr$/m.test(up.stderr), () => up.stderr);
    await until(() => /"msg":"deployed"/.test(up.stderr), () => up.stderr);
    const deployed = up.stderr.split('\n').find((l) => l.includes('"msg":"deployed"'))!;
    const record = JSON.parse(deployed) as { level: number; app: string; svc: string };
    assert.deepEqual([record.level, record.app, record.svc], [30, 'stock', 'lamplighter']);
  } finally {
    await up.stop();
  }
});

test('node output — up --no-function-output keeps it out of the terminal; --log-format pretty prints text', async () => {
  const up = new CliProcess(['up', appDir, '--port', '0', '--admin-port', '0', '--workers', '1', '--no-function-output', '--log-format', 'pretty'], { env: { LAMPLIGHTER_LOG: 'info' } });
  try {
    const [, gateway] = await up.waitForOutput(SERVING);
    await until(() => /INFO.*deployed/.test(up.stderr), () => up.stderr);
    assert.doesNotMatch(up.stderr, /"msg":/, 'not JSON');
    assert.match(up.stderr, /app: "stock"/, 'fields shown');
    // The process has printed by the time it is ready; none of it shows here.
    const res = await fetch(`${gateway}/healthz`);
    assert.equal(res.status, 200);
    await res.text();
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.doesNotMatch(up.stdout + up.stderr, /\[stock\]/);
  } finally {
    await up.stop();
  }
});

test('node output — LAMPLIGHTER_LOG_FORMAT=pretty without the flag; a wrong format is named', async () => {
  const up = new CliProcess(['up', appDir, '--port', '0', '--admin-port', '0', '--workers', '1'], { env: { LAMPLIGHTER_LOG: 'info', LAMPLIGHTER_LOG_FORMAT: 'pretty' } });
  try {
    await up.waitForOutput(SERVING);
    await until(() => /INFO.*deployed/.test(up.stderr), () => up.stderr);
  } finally {
    await up.stop();
  }
  const bad = await runCli(['up', appDir, '--port', '0', '--admin-port', '0', '--log-format', 'xml']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /Invalid log_format from --log-format: expected 'json' or 'pretty', got 'xml'/);
  const badEnv = await runCli(['up', appDir, '--port', '0', '--admin-port', '0'], { env: { LAMPLIGHTER_LOG_FORMAT: 'yaml' } });
  assert.match(badEnv.stderr, /Invalid log_format from environment variable LAMPLIGHTER_LOG_FORMAT: expected 'json' or 'pretty', got 'yaml'/);
});

test('node output — serve keeps function output out of its terminal (it is in the logs)', async () => {
  const node = await startServe(path.join(root, 'serve-data'));
  try {
    await cliOk(['deploy', appDir, ...node.clientFlags]);
    const logs = new CliProcess(['logs', 'stock', '-f', ...node.clientFlags]);
    try {
      await logs.waitForOutput(/stock stdout: echo-server: pid \d+ listening/);
    } finally {
      await logs.stop();
    }
    assert.doesNotMatch(node.proc.stdout + node.proc.stderr, /\[stock\]|echo-server: pid/);
  } finally {
    await node.proc.stop();
  }
});

test('node output — --log-max-size and --log-max-files set the rotation of the function log files', async () => {
  const data = path.join(root, 'rotate-data');
  const app = await writeApp(path.join(root, 'cart'), 'name = "cart"\n[[function]]\nname = "cart"\nsource = "echo.wasm"\nroutes = ["/..."]\n', { 'echo.wasm': wagiFixture('echo') });
  const up = new CliProcess(['up', app, '--data', data, '--port', '0', '--admin-port', '0', '--workers', '1', '--log-max-size', '1KiB', '--log-max-files', '2', '--no-function-output']);
  try {
    const [, gateway] = await up.waitForOutput(/Serving app 'cart' on (http:\/\/127\.0\.0\.1:\d+)/);
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`${gateway}/request-${i}`);
      await res.text();
    }
  } finally {
    await up.stop();
  }
  const dir = path.join(data, 'logs', 'cart');
  assert.deepEqual((await readdir(dir)).sort(), ['current.log', 'current.log.1']);
  for (const f of ['current.log', 'current.log.1']) assert.ok((await stat(path.join(dir, f))).size <= 1024, `${f} within 1 KiB`);
  const bad = await runCli(['up', app, '--port', '0', '--admin-port', '0', '--log-max-size', 'lots']);
  assert.match(bad.stderr, /Invalid log_max_size from --log-max-size: expected a size with a unit, like '10MiB', got 'lots'/);
  const badFiles = await runCli(['up', app, '--port', '0', '--admin-port', '0', '--log-max-files', '0']);
  assert.match(badFiles.stderr, /Invalid log_max_files from --log-max-files: expected a whole number from 1 to 1000, like 5, got '0'/);
});
