// End-to-end tests of the `lamplighter` CLI: `up`, `serve` and the client commands as real child processes.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ClusterView } from '../src/cluster/index.js';
import {
  CliProcess,
  cliOk,
  HELLO_DIR,
  httpGet,
  killAllChildren,
  runCli,
  startServe,
  wagiFixture,
  writeApp,
  type CliResult,
  type ServeNode,
} from './cli-helpers.js';

const ROOT = mkdtempSync(path.join(os.tmpdir(), 'lamplighter-cli-test-'));
const HELLO_WASM = path.join(HELLO_DIR, 'hello.wasm');
const HELLO_TEXT = 'Hello from Lamplighter!';

after(() => {
  killAllChildren();
  rmSync(ROOT, { recursive: true, force: true });
});

/** Asserts a CLI run failed with a message on stderr matching every pattern. */
function assertFailed(result: CliResult, ...patterns: RegExp[]): void {
  assert.notEqual(result.code, 0, `expected a non-zero exit\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  assert.equal(result.signal, null, `expected an exit, not a signal\nstderr: ${result.stderr}`);
  for (const pattern of patterns) assert.match(result.stderr, pattern);
}

/** A one-function WAGI app manifest. */
function wagiToml(app: string, fn: string, source: string, routes: string[], extra = ''): string {
  return `name = "${app}"\n\n[[function]]\nname = "${fn}"\nsource = "${source}"\nruntime = "wagi"\nroutes = ${JSON.stringify(routes)}\n${extra}`;
}

/** Writes a copy of examples/hello whose GREETING is `greeting`. */
async function helloWithGreeting(dir: string, greeting: string): Promise<string> {
  const original = await readFile(path.join(HELLO_DIR, 'lamplighter.toml'), 'utf8');
  const toml = original.replace('GREETING = "Hello"', `GREETING = "${greeting}"`);
  assert.notEqual(toml, original, 'examples/hello/lamplighter.toml no longer sets GREETING = "Hello"');
  return writeApp(dir, toml, { 'hello.wasm': HELLO_WASM });
}

async function assertServes(gateway: string, text: string, route = '/'): Promise<void> {
  const res = await httpGet(`${gateway}${route}`);
  assert.equal(res.status, 200, `GET ${route}: ${res.body}`);
  assert.equal(res.body.trim(), text);
}

interface ListedApp {
  name: string;
  revision: number;
  functions: Array<{ name: string; runtime: string; routes: string[] }>;
}

/** What `ls --json` prints: the apps, and the node's view of its cluster. */
interface Listing {
  apps: ListedApp[];
  cluster: ClusterView;
}

async function listApps(flags: string[]): Promise<ListedApp[]> {
  return (JSON.parse(await cliOk(['ls', '--json', ...flags])) as Listing).apps;
}

test('cli — --help works on every command and exits 0', async () => {
  const commands = ['up', 'serve', 'deploy', 'ls', 'rm', 'rollback', 'logs', 'bench'];
  const results = await Promise.all([runCli(['--help']), ...commands.map((c) => runCli([c, '--help']))]);
  assert.equal(results[0]!.code, 0, results[0]!.stderr);
  for (const c of commands) assert.match(results[0]!.stdout, new RegExp(`^\\s+${c}\\b`, 'm'), `top-level help lists ${c}`);
  commands.forEach((c, i) => {
    const r = results[i + 1]!;
    assert.equal(r.code, 0, `${c} --help exited ${r.code}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Usage: lamplighter ${c}\\b`, 'm'), `${c} --help prints its usage`);
    assert.match(r.stdout, /--help/);
  });
});

test('cli — serve --host 0.0.0.0 keeps the admin API on loopback; --admin-host moves it', async () => {
  const serve = (extra: string[]) => new CliProcess(['serve', '--data', path.join(ROOT, `admin-host-${extra.length}`), '--port', '0', '--admin-port', '0', '--workers', '1', '--host', '0.0.0.0', ...extra]);
  const lines = /Lamplighter serving on http:\/\/0\.0\.0\.0:\d+; admin API on (http:\/\/[\d.]+:\d+)/;
  for (const [extra, want] of [[[], '127.0.0.1'], [['--admin-host', '127.0.0.2'], '127.0.0.2']] as const) {
    const node = serve([...extra]);
    try {
      const admin = (await node.waitForOutput(lines))[1]!;
      assert.equal(new URL(admin).hostname, want);
      assert.equal((await httpGet(`${admin}/healthz`)).status, 200);
    } finally {
      await node.stop('SIGTERM').catch(() => node.stop('SIGKILL'));
    }
  }
});

test('cli — up serves examples/hello on the ports it prints; SIGTERM exits 0 at once and removes its temp data', async () => {
  const tmp = path.join(ROOT, 'up-tmp');
  await mkdir(tmp);
  const up = new CliProcess(['up', HELLO_DIR, '--port', '0', '--admin-port', '0', '--workers', '2'], { env: { TMPDIR: tmp } });
  try {
    const m = await up.waitForOutput(/Serving app 'hello' on (http:\/\/127\.0\.0\.1:(\d+)) \(admin and \/metrics on (http:\/\/127\.0\.0\.1:(\d+))\)/);
    const [, gateway, port, admin, adminPort] = m;
    assert.ok(Number(port) > 0 && Number(adminPort) > 0 && port !== adminPort, `real ports printed: ${m[0]}`);
    await up.waitForOutput(/hello \(wagi\): http:\/\/127\.0\.0\.1:\d+\/hello\/\.\.\./);
    await assertServes(gateway!, HELLO_TEXT);
    await assertServes(gateway!, HELLO_TEXT, '/hello/anything?x=1');
    assert.equal((await httpGet(`${admin}/healthz`)).status, 200);
    assert.equal((await readdir(tmp)).filter((n) => n.startsWith('lamplighter-up-')).length, 1, 'up keeps its state in a temp dir');

    const exit = await up.stop('SIGTERM', 5_000);
    assert.deepEqual([exit.code, exit.signal], [0, null], `up exits 0 on SIGTERM\nstderr: ${up.stderr}`);
    assert.ok(exit.ms < 5_000, `exited in ${exit.ms} ms`);
    assert.ok(exit.ms < 2_500, `SIGTERM stops an idle node at once, not at the stop() deadline: ${exit.ms} ms`);
    assert.deepEqual(await readdir(tmp), [], 'up removes its temp data dir on SIGTERM');
  } finally {
    if (!up.exited) await up.stop('SIGKILL').catch(() => undefined);
  }
});

test('cli — up rejects an invalid manifest or a garbage module with a non-zero exit and the reason', async () => {
  const fn = (extra: string): string => wagiToml('bad', 'bad', 'bad.wasm', ['/bad/...'], extra);
  const echo = { 'bad.wasm': wagiFixture('echo') };
  const badSize = await writeApp(path.join(ROOT, 'up-bad-size'), fn('[function.limits]\nmemory = "9xb"\n'), echo);
  const unknownField = await writeApp(path.join(ROOT, 'up-unknown-field'), fn('[function.limits]\nmemroy = "16MiB"\n'), echo);
  const garbage = await writeApp(path.join(ROOT, 'up-garbage'), fn(''), { 'bad.wasm': Buffer.from('this is not WebAssembly\n') });
  const run = (dir: string): Promise<CliResult> => runCli(['up', dir, '--port', '0', '--admin-port', '0', '--workers', '1'], { timeoutMs: 15_000 });
  const [size, unknown, module] = await Promise.all([run(badSize), run(unknownField), run(garbage)]);

  assertFailed(size, /function\[bad\]\.limits\.memory/, /9xb/, /LL_MANIFEST_INVALID/);
  assertFailed(unknown, /function\[bad\]\.limits/, /unknown field 'memroy'/, /LL_MANIFEST_INVALID/);
  assertFailed(module, /function 'bad'/, /Not a WebAssembly module/, /LL_MODULE_INVALID/);
  for (const r of [size, unknown, module]) assert.doesNotMatch(r.stdout, /Serving app/);
});

describe('cli — one serve node: deploy, ls, tokens, rejections, logs, metrics, rm', () => {
  const data = path.join(ROOT, 'serve-data');
  const duoDir = path.join(ROOT, 'duo');
  let node: ServeNode;
  let flags: string[];

  before(async () => {
    await writeApp(
      duoDir,
      `name = "duo"

[[function]]
name = "echo"
source = "echo.wasm"
runtime = "wagi"
routes = ["/echo/..."]

[[function]]
name = "show-env"
source = "env.wasm"
runtime = "wagi"
routes = ["/env/..."]
[function.env]
COLOR = "teal"
`,
      { 'echo.wasm': wagiFixture('echo'), 'env.wasm': wagiFixture('env') },
    );
    node = await startServe(data);
    flags = node.clientFlags;
  });

  after(async () => {
    if (node && !node.proc.exited) await node.proc.stop('SIGTERM').catch(() => node.proc.stop('SIGKILL'));
  });

  test('cli — deploy puts apps behind the gateway; ls and ls --json show every app and function', async () => {
    assert.match(await cliOk(['deploy', HELLO_DIR, ...flags]), /Deployed app 'hello' revision 1/);
    await assertServes(node.gateway, HELLO_TEXT);
    assert.match(await cliOk(['deploy', duoDir, ...flags]), /Deployed app 'duo' revision 1/);

    const echo = await httpGet(`${node.gateway}/echo/abc?q=1`, { headers: { 'x-test': 'yes' } });
    assert.equal(echo.status, 200);
    assert.equal(echo.headers.get('x-echo-method'), 'GET');
    assert.equal(echo.headers.get('x-echo-query'), 'q=1');
    assert.equal(echo.headers.get('x-echo-header'), 'yes');
    const env = await httpGet(`${node.gateway}/env/`);
    assert.equal(env.status, 200);
    assert.match(env.body, /^ENV COLOR=teal$/m);
    await assertServes(node.gateway, HELLO_TEXT, '/hello/x');

    const table = await cliOk(['ls', ...flags]);
    assert.match(table, /^APP\s+REV\s+FUNCTION\s+RUNTIME/m);
    assert.match(table, /^hello\s+1\s+hello\s+wagi\b.*\/hello\/\.\.\./m);
    assert.match(table, /^duo\s+1\s+echo\s+wagi\b.*\/echo\/\.\.\./m);
    assert.match(table, /^duo\s+1\s+show-env\s+wagi\b.*\/env\/\.\.\./m);

    // A lone node lists its apps alone: no table of nodes.
    assert.match(table, /^APP\s+REV\s+FUNCTION/);
    assert.doesNotMatch(table, /NODE|this node/);

    const listing = JSON.parse(await cliOk(['ls', '--json', ...flags])) as Listing;
    assert.equal(listing.cluster.mode, 'embedded');
    assert.deepEqual(listing.cluster.nodes.map((n) => [n.name === listing.cluster.node, n.address, n.healthy, n.self, n.draining]), [[true, node.gateway.replace('http://', ''), true, true, false]]);
    assert.deepEqual(listing.cluster.functions.map((f) => f.name).sort(), ['echo', 'hello', 'show-env']);
    assert.ok(listing.cluster.functions.find((f) => f.name === 'hello')!.instances.length >= 1, 'hello served a request, so an instance is listed');

    const apps = await listApps(flags);
    assert.deepEqual(apps.map((a) => [a.name, a.revision]), [['duo', 1], ['hello', 1]]);
    const duo = apps.find((a) => a.name === 'duo')!;
    assert.deepEqual(duo.functions.map((f) => [f.name, f.runtime, f.routes]).sort(), [
      ['echo', 'wagi', ['/echo/...']],
      ['show-env', 'wagi', ['/env/...']],
    ]);
  });

  test('cli — the admin API needs the bearer token; the CLI finds it via --data, LAMPLIGHTER_TOKEN or --token', async () => {
    const bare = await httpGet(`${node.admin}/v1/apps`);
    assert.equal(bare.status, 401);
    assert.equal((JSON.parse(bare.body) as { error: { code: string } }).error.code, 'LL_UNAUTHORIZED');
    const wrong = await httpGet(`${node.admin}/v1/apps`, { headers: { authorization: 'Bearer not-the-token' } });
    assert.equal(wrong.status, 401);
    assert.equal((await httpGet(`${node.admin}/healthz`)).status, 200);

    const token = (await readFile(path.join(data, 'token'), 'utf8')).trim();
    assert.ok(token.length >= 16, 'serve writes a token into its data dir');
    assert.match(node.proc.stdout, new RegExp(`token in ${path.join(data, 'token').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const server = ['--server', node.admin];
    const noData = ['--data', path.join(ROOT, 'no-such-data-dir')];
    const [viaData, viaEnv, viaFlag, flagBeatsEnv, wrongToken, noToken] = await Promise.all([
      runCli(['ls', ...server, '--data', data]),
      runCli(['ls', ...server, ...noData], { env: { LAMPLIGHTER_TOKEN: token } }),
      runCli(['ls', ...server, ...noData, '--token', token]),
      runCli(['ls', ...server, ...noData, '--token', token], { env: { LAMPLIGHTER_TOKEN: 'stale' } }),
      runCli(['ls', ...server, '--data', data, '--token', 'not-the-token']),
      runCli(['ls', ...server, ...noData]),
    ]);
    for (const [how, r] of Object.entries({ viaData, viaEnv, viaFlag, flagBeatsEnv })) {
      assert.equal(r.code, 0, `${how}: ${r.stderr}`);
      assert.match(r.stdout, /^hello\s+1\s+hello/m, how);
    }
    assertFailed(wrongToken, /Missing or wrong bearer token/, /LL_UNAUTHORIZED/);
    assertFailed(noToken, /Missing or wrong bearer token/, /LL_UNAUTHORIZED/);
    assert.equal(wrongToken.stdout, '');
  });

  test('cli — rejected deploys exit non-zero with the reason and leave hello serving', async () => {
    const cases: Array<{ what: string; dir: string; patterns: RegExp[] }> = [
      {
        what: 'invalid manifest',
        dir: await writeApp(path.join(ROOT, 'rej-manifest'), wagiToml('bad', 'bad', 'echo.wasm', ['/bad/...'], '[function.limits]\nmemory = "9xb"\n'), { 'echo.wasm': wagiFixture('echo') }),
        patterns: [/function\[bad\]\.limits\.memory/, /9xb/, /LL_MANIFEST_INVALID/],
      },
      {
        // A new revision of hello itself: the old one must stay current.
        what: 'garbage module',
        dir: await writeApp(path.join(ROOT, 'rej-garbage'), wagiToml('hello', 'hello', 'hello.wasm', ['/...']), { 'hello.wasm': Buffer.from('\0asm garbage') }),
        patterns: [/function 'hello'/, /Not a WebAssembly module|not a valid|invalid/i, /LL_MODULE_INVALID/],
      },
      {
        what: 'unknown import',
        dir: await writeApp(path.join(ROOT, 'rej-import'), wagiToml('secret', 'secret', 'secret.wasm', ['/secret/...']), { 'secret.wasm': wagiFixture('unknown_import') }),
        patterns: [/function 'secret'/, /env\.host_secret/, /LL_MODULE_INVALID/],
      },
      {
        what: 'memory over the limit',
        dir: await writeApp(path.join(ROOT, 'rej-bigmem'), wagiToml('big', 'big', 'bigmem.wasm', ['/big/...'], '[function.limits]\nmemory = "64MiB"\n'), { 'bigmem.wasm': wagiFixture('bigmem') }),
        patterns: [/function 'big'/, /limits\.memory/, /LL_MODULE_INVALID/],
      },
    ];
    for (const c of cases) {
      const result = await runCli(['deploy', c.dir, ...flags]);
      assertFailed(result, ...c.patterns);
      assert.doesNotMatch(result.stdout, /Deployed/, c.what);
      await assertServes(node.gateway, HELLO_TEXT);
    }
    const apps = await listApps(flags);
    assert.deepEqual(apps.map((a) => [a.name, a.revision]), [['duo', 1], ['hello', 1]], 'no rejected deploy left a trace');
    const revisions = await readdir(path.join(data, 'apps', 'hello', 'revisions'));
    assert.deepEqual(revisions, ['1.json']);
  });

  test("cli — logs prints a function's stderr; logs -f streams lines that arrive after it started", async () => {
    assert.equal((await httpGet(`${node.gateway}/echo/logged-one`)).status, 200);
    const byFunction = await cliOk(['logs', 'echo', ...flags]);
    assert.match(byFunction, /^\S+Z echo stderr: echo: GET \S*logged-one$/m);
    assert.match(await cliOk(['logs', 'duo', '-n', '5', ...flags]), /echo: GET \S*logged-one/);
    assertFailed(await runCli(['logs', 'nope', ...flags]), /No app or function named 'nope'/);
    // Regression: `-n 0` printed every kept line (slice(-0) is the whole array).
    assert.equal(await cliOk(['logs', 'echo', '-n', '0', ...flags]), '');

    const follow = new CliProcess(['logs', 'echo', '-f', ...flags]);
    try {
      // The recent lines come first; once they are out the follower is subscribed.
      await follow.waitForOutput(/logged-one/, 15_000);
      assert.doesNotMatch(follow.stdout, /followed-two/);
      assert.equal((await httpGet(`${node.gateway}/echo/followed-two`)).status, 200);
      await follow.waitForOutput(/echo stderr: echo: GET \S*followed-two/, 10_000);
      assert.equal(follow.exited, false, 'logs -f keeps running');
    } finally {
      await follow.stop('SIGTERM').catch(() => follow.stop('SIGKILL'));
    }
  });

  test('cli — /metrics on the admin port needs no token and reports requests, cold starts, instances, pending', async () => {
    const res = await httpGet(`${node.admin}/metrics`);
    assert.equal(res.status, 200);
    const text = res.body;
    const value = (re: RegExp): number => {
      const m = text.match(re);
      assert.ok(m, `metrics have ${re}`);
      return Number(m[1]);
    };
    // The instances gauge is the group's own count, as the admin API reports it (read twice at most,
    // in case the function is put out between the two reads).
    const token = (await readFile(path.join(data, 'token'), 'utf8')).trim();
    const status = async (): Promise<number> =>
      (JSON.parse((await httpGet(`${node.admin}/v1/functions/hello`, { headers: { authorization: `Bearer ${token}` } })).body) as { instances: number }).instances;
    let gauge = value(/^lamplighter_instances\{function="hello"\} (\d+)$/m);
    let reported = await status();
    if (gauge !== reported) {
      gauge = Number(/^lamplighter_instances\{function="hello"\} (\d+)$/m.exec((await httpGet(`${node.admin}/metrics`)).body)?.[1]);
      reported = await status();
    }
    assert.ok(gauge >= 0);
    assert.equal(gauge, reported, 'the instances gauge matches the admin API');
    assert.ok(value(/^lamplighter_cold_starts_total\{function="hello"\} (\d+)$/m) >= 1);
    assert.ok(value(/^lamplighter_requests_total\{function="hello",code="200"\} (\d+)$/m) >= 6);
    assert.equal(value(/^lamplighter_pending_requests\{function="hello"\} (\d+)$/m), 0);
    assert.match(text, /^lamplighter_request_duration_seconds_bucket\{(?=[^}]*le="\+Inf")(?=[^}]*function="hello")[^}]*\} \d+$/m);
    assert.match(text, /^lamplighter_requests_total\{function="echo",code="200"\} \d+$/m);
  });

  test('cli — rm removes an app so its routes 404 at once; rm of an unknown app fails with a clear message', async () => {
    assert.match(await cliOk(['rm', 'hello', ...flags]), /Removed app 'hello'/);
    assert.equal((await httpGet(`${node.gateway}/`)).status, 404);
    assert.equal((await httpGet(`${node.gateway}/hello/x`)).status, 404);
    assert.equal((await httpGet(`${node.gateway}/echo/still-here`)).status, 200, 'other apps keep serving');
    assert.deepEqual((await listApps(flags)).map((a) => a.name), ['duo']);

    assertFailed(await runCli(['rm', 'hello', ...flags]), /No app named 'hello'/, /LL_NOT_FOUND/);
    assertFailed(await runCli(['rm', 'nope', ...flags]), /No app named 'nope'/, /LL_NOT_FOUND/);

    assert.match(await cliOk(['rm', 'duo', ...flags]), /Removed app 'duo'/);
    assert.equal((await httpGet(`${node.gateway}/echo/x`)).status, 404);
    assert.match(await cliOk(['ls', ...flags]), /No apps deployed\./);
  });
});

describe('cli — revisions across restarts and crashes', () => {
  const data = path.join(ROOT, 'revisions-data');
  const dirs = { one: path.join(ROOT, 'v-one'), two: path.join(ROOT, 'v-two'), four: path.join(ROOT, 'v-four') };
  let node: ServeNode | undefined;

  before(async () => {
    mkdirSync(data);
    await Promise.all([helloWithGreeting(dirs.one, 'One'), helloWithGreeting(dirs.two, 'Two'), helloWithGreeting(dirs.four, 'Four')]);
  });

  after(async () => {
    if (node && !node.proc.exited) await node.proc.stop('SIGTERM').catch(() => node!.proc.stop('SIGKILL'));
  });

  test('cli — revisions survive a restart; rollback moves between them and names a missing one', async () => {
    node = await startServe(data);
    assert.match(await cliOk(['deploy', dirs.one, ...node.clientFlags]), /Deployed app 'hello' revision 1/);
    await assertServes(node.gateway, 'One from Lamplighter!');
    assert.match(await cliOk(['deploy', dirs.two, ...node.clientFlags]), /Deployed app 'hello' revision 2/);
    await assertServes(node.gateway, 'Two from Lamplighter!');

    const stopped = await node.proc.stop('SIGTERM');
    assert.deepEqual([stopped.code, stopped.signal], [0, null], `serve exits 0 on SIGTERM\nstderr: ${node.proc.stderr}`);

    node = await startServe(data);
    const flags = node.clientFlags;
    await node.proc.waitForOutput(/hello \(wagi\): http:\/\/127\.0\.0\.1:\d+\/hello\/\.\.\./, 5_000); // restored routes are listed
    await assertServes(node.gateway, 'Two from Lamplighter!');
    assert.deepEqual((await listApps(flags)).map((a) => [a.name, a.revision]), [['hello', 2]]);

    assert.match(await cliOk(['rollback', 'hello', ...flags]), /App 'hello' now serves revision 1/);
    await assertServes(node.gateway, 'One from Lamplighter!');
    assert.match(await cliOk(['rollback', 'hello', '2', ...flags]), /App 'hello' now serves revision 2/);
    await assertServes(node.gateway, 'Two from Lamplighter!');

    const [missing, notNumber, unknownApp] = await Promise.all([
      runCli(['rollback', 'hello', '7', ...flags]),
      runCli(['rollback', 'hello', 'latest', ...flags]),
      runCli(['rollback', 'nope', ...flags]),
    ]);
    assertFailed(missing, /no revision 7/, /LL_NOT_FOUND/);
    assertFailed(notNumber, /Revision must be a number, got 'latest'/);
    assertFailed(unknownApp, /No app named 'nope'/);
    await assertServes(node.gateway, 'Two from Lamplighter!');
    assert.equal((await readFile(path.join(data, 'apps', 'hello', 'current'), 'utf8')).trim(), '2');
  });

  test('cli — a crash mid-deploy leaves the old revision serving, and the next deploy works', async () => {
    assert.ok(node, 'the previous test left a node running');
    const killed = await node.proc.stop('SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');

    // What a deploy interrupted after writing its revision but before flipping `current` leaves.
    const revisions = path.join(data, 'apps', 'hello', 'revisions');
    const two = JSON.parse(await readFile(path.join(revisions, '2.json'), 'utf8')) as { number: number; manifest: string; createdAt: string };
    const three = { ...two, number: 3, createdAt: new Date().toISOString(), manifest: two.manifest.replace('GREETING = "Two"', 'GREETING = "Three"') };
    assert.notEqual(three.manifest, two.manifest);
    await writeFile(path.join(revisions, '3.json'), JSON.stringify(three, null, 2));
    await writeFile(path.join(revisions, '.tmp-0123456789ab'), JSON.stringify(three).slice(0, 40));
    assert.equal((await readFile(path.join(data, 'apps', 'hello', 'current'), 'utf8')).trim(), '2');

    node = await startServe(data);
    const flags = node.clientFlags;
    await assertServes(node.gateway, 'Two from Lamplighter!');
    assert.match(await cliOk(['ls', ...flags]), /^hello\s+2\s+hello\s+wagi/m);
    assert.deepEqual((await listApps(flags)).map((a) => [a.name, a.revision]), [['hello', 2]]);
    assert.deepEqual((await readdir(revisions)).filter((n) => n.startsWith('.tmp-')), [], 'the temp leftover is cleared at start');

    const deployed = await cliOk(['deploy', dirs.four, ...flags]);
    const m = deployed.match(/Deployed app 'hello' revision (\d+)/);
    assert.ok(m, deployed);
    assert.ok(Number(m[1]) > 3, `a new revision never reuses a number on disk, got ${m[1]}`);
    await assertServes(node.gateway, 'Four from Lamplighter!');
    assert.deepEqual((await listApps(flags)).map((a) => [a.name, a.revision]), [['hello', Number(m[1])]]);

    const stopped = await node.proc.stop('SIGTERM');
    assert.deepEqual([stopped.code, stopped.signal], [0, null]);
  });
});
