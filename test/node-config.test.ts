// A node's settings: one schema, four sources (flags, LAMPLIGHTER_* variables, the config file,
// defaults), `config show`, and a reload under load that drops no request.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { describeConfig, resolveNodeConfig, settingValue } from '../src/config/index.js';
import { CliProcess, HELLO_DIR, killAllChildren, runCli } from './cli-helpers.js';

after(killAllChildren);

async function scratch(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'lamplighter-config-'));
}

/** `up` of `appDir` on free ports with its data in `dir`; its gateway, admin API and token header once it serves `app`. */
async function upNode(appDir: string, dir: string, app: string): Promise<{ up: CliProcess; gateway: string; admin: string; headers: Record<string, string> }> {
  const up = new CliProcess(['up', appDir, '--port', '0', '--admin-port', '0', '--data', dir, '--no-function-output']);
  try {
    const [, gateway, admin] = await up.waitForOutput(new RegExp(`Serving app '${app}' on (http://127\\.0\\.0\\.1:\\d+) \\(admin and /metrics on (http://127\\.0\\.0\\.1:\\d+)\\)`));
    const headers = { authorization: `Bearer ${(await readFile(path.join(dir, 'token'), 'utf8')).trim()}` };
    return { up, gateway: gateway!, admin: admin!, headers };
  } catch (err) {
    await up.stop('SIGTERM', 5_000).catch(() => undefined);
    throw err;
  }
}

describe('node config', () => {
  test('node config — a flag beats the environment, which beats the file, which beats the default', async () => {
    const dir = await scratch();
    try {
      await writeFile(path.join(dir, 'lamplighter.node.toml'), 'port = 9000\nadmin_port = 9001\nworkers = 3\nlog_level = "debug"\n');
      const config = await resolveNodeConfig({ command: 'serve', flags: { data: dir, port: '7000' }, env: { LAMPLIGHTER_ADMIN_PORT: '7001' } });
      assert.equal(settingValue(config, 'port'), 7000);
      assert.equal(settingValue(config, 'admin_port'), 7001);
      assert.equal(settingValue(config, 'workers'), 3);
      assert.equal(settingValue(config, 'host'), '127.0.0.1');
      const shown = Object.fromEntries(describeConfig(config).settings.map((s) => [s.key, `${s.source}:${s.from}`]));
      assert.equal(shown.port, 'flag:--port');
      assert.equal(shown.admin_port, 'environment:LAMPLIGHTER_ADMIN_PORT');
      assert.equal(shown.workers, `file:${path.join(dir, 'lamplighter.node.toml')} (workers)`);
      assert.equal(shown.host, 'default:null');
      assert.equal(config.file, path.join(dir, 'lamplighter.node.toml'));
      // The older variable LAMPLIGHTER_LOG still sets the level, after LAMPLIGHTER_LOG_LEVEL.
      const old = await resolveNodeConfig({ command: 'serve', flags: {}, env: { LAMPLIGHTER_LOG: 'warn' } });
      assert.equal(settingValue(old, 'log_level'), 'warn');
      const secret = await resolveNodeConfig({ command: 'serve', flags: { nats_token: 's3cret', cluster: 'nats://127.0.0.1:4222' }, env: {} });
      assert.equal(describeConfig(secret).settings.find((s) => s.key === 'nats_token')!.value, '(set)', 'a secret is never shown');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('node config — an invalid value is refused with its source, key and the expected form', async () => {
    const dir = await scratch();
    try {
      const file = path.join(dir, 'node.toml');
      const refuse = async (contents: string, inputs: Partial<Parameters<typeof resolveNodeConfig>[0]>, why: RegExp): Promise<void> => {
        await writeFile(file, contents);
        await assert.rejects(resolveNodeConfig({ command: 'serve', flags: {}, env: {}, configFile: file, ...inputs }), why);
      };
      await refuse('port = 70000\n', {}, /Invalid port from .*node\.toml \(port\): expected a port number from 0 to 65535 \(0 picks a free one\), got 70000/);
      await refuse('', { env: { LAMPLIGHTER_DOWN_AFTER: '10ms' } }, /Invalid down_after from environment variable LAMPLIGHTER_DOWN_AFTER: expected a duration of at least 300ms, like '3s', got '10ms'/);
      await refuse('', { flags: { log_level: 'loud' } }, /Invalid log_level from --log-level: expected 'fatal', 'error', 'warn', 'info', 'debug', 'trace' or 'silent', got 'loud'/);
      await refuse('prot = 1\n', {}, /has an unknown key 'prot' \(did you mean 'port'\?\)/);
      await refuse('watch = true\n', {}, /unknown key 'watch' \(it applies to `lamplighter up` only\)/);
      await refuse('port = [\n', {}, /is not valid TOML \(line \d+\): Invalid TOML document/);
      await assert.rejects(resolveNodeConfig({ command: 'serve', flags: {}, env: {}, configFile: path.join(dir, 'missing.toml') }), /Cannot read the config file .*missing\.toml: ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('node config — config show prints each setting with where it came from', async () => {
    const dir = await scratch();
    try {
      await writeFile(path.join(dir, 'lamplighter.node.toml'), 'log_level = "debug"\n');
      const result = await runCli(['config', 'show', '--data', dir, '--workers', '3', '--json'], { env: { LAMPLIGHTER_PORT: '8123' } });
      assert.equal(result.code, 0, result.stderr);
      const shown = JSON.parse(result.stdout) as ReturnType<typeof describeConfig>;
      const by = Object.fromEntries(shown.settings.map((s) => [s.key, s]));
      assert.deepEqual([by.workers!.value, by.workers!.source], [3, 'flag']);
      assert.deepEqual([by.port!.value, by.port!.source, by.port!.from], [8123, 'environment', 'LAMPLIGHTER_PORT']);
      assert.deepEqual([by.log_level!.value, by.log_level!.source, by.log_level!.live], ['debug', 'file', true]);
      const text = await runCli(['config', 'show', '--data', dir]);
      assert.match(text.stdout, /^log_level \(live\) +debug +file: .*lamplighter\.node\.toml \(log_level\)$/m);
      const bad = await runCli(['config', 'show', '--data', dir, '--port', 'x']);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /Invalid port from --port: expected a port number/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('node config — a reload under load applies the log level, reports what needs a restart, and drops no request', async () => {
    const dir = await scratch();
    const config = path.join(dir, 'lamplighter.node.toml');
    await writeFile(config, 'log_level = "warn"\nworkers = 2\n');
    const { up, gateway, admin, headers } = await upNode(HELLO_DIR, dir, 'hello');
    try {
      // Load: eight clients in a loop until told to stop, bounded by count and time.
      let stop = false;
      let failed = 0;
      let served = 0;
      const started = Date.now();
      const client = async (): Promise<void> => {
        for (let i = 0; i < 5000 && !stop && Date.now() - started < 20_000; i++) {
          try {
            const res = await fetch(`${gateway}/hello`);
            await res.text();
            if (res.status === 200) served++;
            else failed++;
          } catch {
            failed++;
          }
        }
      };
      const load = Promise.all(Array.from({ length: 8 }, client));
      await new Promise((r) => setTimeout(r, 300));
      await writeFile(config, 'log_level = "info"\nworkers = 4\n');
      // The file is checked once a second: the level changes without a signal.
      const deadline = Date.now() + 5000;
      let shown: ReturnType<typeof describeConfig> | undefined;
      while (Date.now() < deadline) {
        shown = (await (await fetch(`${admin}/v1/config`, { headers })).json()) as ReturnType<typeof describeConfig>;
        if (shown.settings.find((s) => s.key === 'log_level')?.value === 'info') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(shown!.settings.find((s) => s.key === 'log_level')?.value, 'info', 'the file change applied the level');
      assert.equal(shown!.settings.find((s) => s.key === 'workers')?.value, 2, 'workers keeps the value in force');
      up.child.kill('SIGHUP');
      const report = (await (await fetch(`${admin}/v1/config/reload`, { method: 'POST', headers })).json()) as { applied: string[]; restartNeeded: string[] };
      assert.deepEqual(report, { applied: [], restartNeeded: ['workers'] });
      await writeFile(config, 'log_level = "loud"\n');
      const refused = await fetch(`${admin}/v1/config/reload`, { method: 'POST', headers });
      assert.equal(refused.status, 400);
      assert.match(((await refused.json()) as { error: { message: string } }).error.message, /Invalid log_level from .*lamplighter\.node\.toml \(log_level\)/);
      await new Promise((r) => setTimeout(r, 300));
      stop = true;
      await load;
      assert.equal(failed, 0, `${failed} requests failed during the reloads (${served} served)`);
      assert.ok(served > 50, `${served} requests served`);
      assert.match(up.stderr, /"msg":"configuration reloaded"/, 'the level now lets info lines through');
      assert.equal(up.exited, false, 'SIGHUP reloads; it does not stop the node');
    } finally {
      await up.stop('SIGTERM', 5_000).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

test('node config — a reload turns tracing on and off without a restart', async () => {
  const { startOtlpReceiver } = await import('./tracing-helpers.js');
  const receiver = await startOtlpReceiver();
  const dir = await scratch();
  const config = path.join(dir, 'lamplighter.node.toml');
  await writeFile(config, 'log_level = "warn"\n');
  const { up, gateway, admin, headers } = await upNode(HELLO_DIR, dir, 'hello');
  try {
    const reload = async (): Promise<{ applied: string[]; restartNeeded: string[] }> => (await (await fetch(`${admin}/v1/config/reload`, { method: 'POST', headers })).json()) as { applied: string[]; restartNeeded: string[] };
    const traced = async (id: string): Promise<void> => {
      const res = await fetch(`${gateway}/hello`, { headers: { traceparent: `00-${id}-00f067aa0ba902b7-01` } });
      assert.equal(res.status, 200);
      await res.text();
    };
    await traced('4bf92f3577b34da6a3ce929d0e0e4736');
    await writeFile(config, `log_level = "warn"\notlp_endpoint = "${receiver.url}"\n`);
    assert.deepEqual(await reload(), { applied: ['otlp_endpoint'], restartNeeded: [] });
    await traced('5bf92f3577b34da6a3ce929d0e0e4736');
    await receiver.waitFor((s) => s.traceId === '5bf92f3577b34da6a3ce929d0e0e4736', 5000);
    assert.ok(!receiver.spans.some((s) => s.traceId === '4bf92f3577b34da6a3ce929d0e0e4736'), 'nothing traced before the reload');
    await writeFile(config, 'log_level = "warn"\n');
    assert.deepEqual(await reload(), { applied: ['otlp_endpoint'], restartNeeded: [] });
    await traced('6bf92f3577b34da6a3ce929d0e0e4736');
    // Longer than the exporter's schedule (TracingDefaults.scheduledDelayMs, 1 s): a tracer left on would have sent it.
    await new Promise((r) => setTimeout(r, 1_500));
    assert.ok(!receiver.spans.some((s) => s.traceId === '6bf92f3577b34da6a3ce929d0e0e4736'), 'nothing traced after tracing was turned off');
  } finally {
    await up.stop('SIGTERM', 5_000).catch(() => undefined);
    await receiver.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('node config — limit defaults apply to functions that set none, and a reload changes them live', async () => {
  const dir = await scratch();
  const app = path.join(dir, 'app');
  const config = path.join(dir, 'lamplighter.node.toml');
  await mkdir(app);
  await copyFile(path.join(HELLO_DIR, 'hello.wasm'), path.join(app, 'hello.wasm'));
  // Two functions from one module: one leaves limits.body_size to the node, one sets it.
  await writeFile(
    path.join(app, 'lamplighter.toml'),
    'name = "limits"\n' +
      '[[function]]\nname = "open"\nsource = "hello.wasm"\nruntime = "wagi"\nroutes = ["/open"]\n' +
      '[[function]]\nname = "fixed"\nsource = "hello.wasm"\nruntime = "wagi"\nroutes = ["/fixed"]\n[function.limits]\nbody_size = "1KiB"\n',
  );
  await writeFile(config, 'limits_body_size = "1KiB"\n');
  const { up, gateway, admin, headers } = await upNode(app, dir, 'limits');
  try {
    const post = async (route: string): Promise<number> => {
      const res = await fetch(`${gateway}${route}`, { method: 'POST', body: 'x'.repeat(2048) });
      await res.text();
      return res.status;
    };
    assert.equal(await post('/open'), 413, "the node's default (1KiB) applies to a function that sets none");
    assert.equal(await post('/fixed'), 413);
    const shown = (await (await fetch(`${admin}/v1/config`, { headers })).json()) as ReturnType<typeof describeConfig>;
    assert.deepEqual(shown.settings.find((s) => s.key === 'limits_body_size'), { key: 'limits_body_size', value: 1024, source: 'file', from: `${config} (limits_body_size)`, live: true });

    await writeFile(config, 'limits_body_size = "1MiB"\nlimits_timeout = "2s"\n');
    const report = (await (await fetch(`${admin}/v1/config/reload`, { method: 'POST', headers })).json()) as { applied: string[]; restartNeeded: string[] };
    assert.deepEqual({ applied: [...report.applied].sort(), restartNeeded: report.restartNeeded }, { applied: ['limits_body_size', 'limits_timeout'], restartNeeded: [] });
    assert.equal(await post('/open'), 200, 'the new default applies without a restart or a redeploy');
    assert.equal(await post('/fixed'), 413, "a limit the manifest sets is the function's own");
    // What the node serves with is what it reports.
    const listing = (await (await fetch(`${admin}/v1/apps`, { headers })).json()) as { apps: Array<{ functions: Array<{ name: string; limits: { timeoutMs: number; bodyBytes: number } }> }> };
    const limits = Object.fromEntries(listing.apps[0]!.functions.map((f) => [f.name, f.limits]));
    assert.deepEqual([limits.open?.timeoutMs, limits.open?.bodyBytes, limits.fixed?.timeoutMs, limits.fixed?.bodyBytes], [2000, 1024 * 1024, 2000, 1024]);
  } finally {
    await up.stop('SIGTERM', 5_000).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
});
