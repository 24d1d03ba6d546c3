// The manifest: defaults, units, and errors that name the field and the value.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseDuration, parseSize } from '../src/config/index.js';
import { BreakerDefaults, parseManifest } from '../src/manifest/index.js';

const base = (fn: string, top = '') => `name = "app"\n${top}\n[[function]]\nname = "f"\n${fn}\n`;

function rejects(text: string, ...patterns: RegExp[]): void {
  assert.throws(() => parseManifest(text, 'lamplighter.toml'), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'LL_MANIFEST_INVALID');
    for (const p of patterns) assert.match(err.message, p);
    return true;
  });
}

describe('manifest', () => {
  test('manifest — fills defaults and resolves units', () => {
    const m = parseManifest(base('source = "f.wasm"\nroutes = ["/f"]\n[function.limits]\nmemory = "32MiB"\ntimeout = "1.5s"\n[function.scale]\nidle = "2m"'));
    const f = m.functions[0]!;
    assert.equal(f.runtime, 'wagi');
    assert.deepEqual(f.hosts, ['*']);
    assert.equal(f.limits.memory, 32 * 1024 * 1024);
    assert.equal(f.limits.timeoutMs, 1500);
    assert.equal(f.scale.idleMs, 120_000);
    assert.equal(f.scale.min, 0);
    assert.equal(f.scale.target, f.limits.concurrency);
    assert.deepEqual(f.env, {});
  });

  test('manifest — a bad size names the field and the value', () => {
    rejects(base('source = "f.wasm"\nroutes = ["/f"]\n[function.limits]\nmemory = "9xb"'), /function\[f\]\.limits\.memory/, /'9xb'/);
  });

  test('manifest — a duration without a unit is refused with the field and an example', () => {
    rejects(base('source = "f.wasm"\nroutes = ["/f"]\n[function.limits]\ntimeout = 10'), /function\[f\]\.limits\.timeout/, /limits\.timeout must be a duration with a unit like '10s' or '500ms', got 10$/);
    rejects(base('source = "f.wasm"\nroutes = ["/f"]\n[function.scale]\nidle = "30"'), /function\[f\]\.scale\.idle/, /like '10s'/, /got '30'/);
    rejects(base('runtime = "process"\ncommand = ["x"]\nroutes = ["/f"]\nstartup_timeout = 5'), /function\[f\]\.startup_timeout/, /got 5/);
  });

  test('manifest — a size without a unit is refused with the field and an example', () => {
    rejects(base('source = "f.wasm"\nroutes = ["/f"]\n[function.limits]\nmemory = 67108864'), /function\[f\]\.limits\.memory/, /a size with a unit like '64MiB'/, /got 67108864/);
    rejects(base('source = "f.wasm"\nroutes = ["/f"]\n[function.limits]\nbody_size = "1024"'), /limits\.body_size/, /got '1024'/);
  });

  test('manifest — memory over 4GiB is refused', () => {
    rejects(base('source = "f.wasm"\nroutes = ["/f"]\n[function.limits]\nmemory = "9GiB"'), /limits\.memory/, /at most 4GiB/);
  });

  test('manifest — unknown fields are named', () => {
    rejects(base('source = "f.wasm"\nroutes = ["/f"]\nsorce = "x"'), /function\[f\]: unknown field 'sorce'/);
  });

  test('manifest — an unknown field names the nearest known one', () => {
    rejects(base('source = "f.wasm"\nroutes = ["/f"]\nrouts = ["/g"]'), /function\[f\]: unknown field 'routs' \(did you mean 'routes'\?\)/);
    rejects(base('source = "f.wasm"\nroutes = ["/f"]\n[function.limits]\nmax-pending = 3\ntimout = "1s"'), /'max-pending' \(did you mean 'max_pending'\?\)/, /'timout' \(did you mean 'timeout'\?\)/);
    rejects(base('source = "f.wasm"\nroutes = ["/f"]\n[function.scale]\nidel = "1s"'), /function\[f\]\.scale: unknown field 'idel' \(did you mean 'idle'\?\)/);
  });

  test('manifest — a field in the wrong table names the table it belongs in', () => {
    rejects(base('source = "f.wasm"\nroutes = ["/f"]\nmemory = "64MiB"'), /'memory' \(it belongs in \[function\.limits\]\)/);
    rejects(base('source = "f.wasm"\nroutes = ["/f"]', 'route = "/x"'), /'route' \(did you mean 'routes' in \[\[function\]\]\?\)/);
  });

  test('manifest — an unknown field like no known one lists the known ones', () => {
    rejects(base('source = "f.wasm"\nroutes = ["/f"]\n[function.scale]\nzzzzzz = 1'), /'zzzzzz' \(known here: min, max, idle, target, rate, window\)/);
  });

  test('manifest — a wagi function needs a source and a process function a command', () => {
    rejects(base('routes = ["/f"]'), /function\[f\]\.source/);
    rejects(base('runtime = "process"\nroutes = ["/f"]'), /function\[f\]\.command/);
  });

  test('manifest — routes must be paths', () => {
    rejects(base('source = "f.wasm"\nroutes = ["hello"]'), /function\[f\]\.routes\[0\]/, /a route must start with '\/', got 'hello'/);
  });

  test('manifest — a host with a port is refused (hosts match on any port)', () => {
    rejects(base('source = "f.wasm"\nroutes = ["/f"]\nhosts = ["api.test:8080"]'), /hosts/, /without a port/);
  });

  test('manifest — scale.min above scale.max is refused', () => {
    rejects(base('source = "f.wasm"\nroutes = ["/f"]\n[function.scale]\nmin = 5\nmax = 2'), /scale\.min must not exceed scale\.max/);
  });

  test('manifest — invalid TOML is reported as such', () => {
    rejects('name = "app\n', /not valid TOML/);
  });

  test('manifest — a TOML error gives its line and column', () => {
    rejects('name = "app"\n[[function]]\nname = = "f"\n', /not valid TOML at line 3, column 8: invalid value$/);
    assert.throws(() => parseManifest('name = "app"\n\nroutes = [\n'), (err: Error & { detail?: { line?: number } }) => err.detail?.line === 4);
  });

  test('manifest — duplicate function names are refused', () => {
    rejects(`name = "a"\n[[function]]\nname = "f"\nsource = "x.wasm"\nroutes = ["/a"]\n[[function]]\nname = "f"\nsource = "x.wasm"\nroutes = ["/b"]\n`, /used twice/);
  });

  test('manifest — a missing app name is reported', () => {
    rejects('[[function]]\nname = "f"\nsource = "x.wasm"\nroutes = ["/a"]\n', /name/);
  });
});

describe('manifest breaker', () => {
  const fn = (table: string) => base(`source = "f.wasm"\nroutes = ["/f"]\n${table}`);

  test('manifest breaker — no table, no breaker; an empty table takes every default', () => {
    assert.equal(parseManifest(fn('')).functions[0]!.breaker, undefined);
    assert.deepEqual(parseManifest(fn('[function.breaker]')).functions[0]!.breaker, {
      partition: { kind: 'none' },
      failureRatio: BreakerDefaults.failureRatio,
      windowMs: BreakerDefaults.windowMs,
      minRequests: BreakerDefaults.minRequests,
      consecutiveFailures: BreakerDefaults.consecutiveFailures,
      slowCallMs: undefined,
      openForMs: BreakerDefaults.openForMs,
      halfOpenProbes: BreakerDefaults.halfOpenProbes,
      maxKeys: 10_000,
      quorum: undefined,
    });
  });

  test('manifest breaker — every field is read, units resolved, header names lower-cased', () => {
    const b = parseManifest(fn('[function.breaker]\npartition = "header:X-Tenant"\nfailure_ratio = 0.25\nwindow = "30s"\nmin_requests = 5\nconsecutive_failures = 0\nslow_call = "2s"\nopen_for = "1m"\nhalf_open_probes = 2\nmax_keys = 500\nquorum = 3')).functions[0]!.breaker;
    assert.deepEqual(b, {
      partition: { kind: 'header', name: 'x-tenant' },
      failureRatio: 0.25,
      windowMs: 30_000,
      minRequests: 5,
      consecutiveFailures: 0,
      slowCallMs: 2000,
      openForMs: 60_000,
      halfOpenProbes: 2,
      maxKeys: 500,
      quorum: 3,
    });
    for (const kind of ['none', 'client', 'path'] as const) {
      assert.deepEqual(parseManifest(fn(`[function.breaker]\npartition = "${kind}"`)).functions[0]!.breaker?.partition, { kind });
    }
  });

  test('manifest breaker — a bad partition names the field and the forms it takes', () => {
    rejects(fn('[function.breaker]\npartition = "cookie"'), /function\[f\]\.breaker\.partition/, /"none", "client" \(the peer address\), "path" or "header:NAME"/, /got 'cookie'$/);
    rejects(fn('[function.breaker]\npartition = "header:"'), /breaker\.partition/, /got 'header:'$/);
    rejects(fn('[function.breaker]\npartition = "header:x tenant"'), /breaker\.partition/);
  });

  test('manifest breaker — numbers out of range name the field, the range and the value', () => {
    rejects(fn('[function.breaker]\nfailure_ratio = 2'), /function\[f\]\.breaker\.failure_ratio: breaker\.failure_ratio must be a number above 0 and at most 1/, /got 2$/);
    rejects(fn('[function.breaker]\nfailure_ratio = 0'), /breaker\.failure_ratio/, /got 0$/);
    rejects(fn('[function.breaker]\nmin_requests = 1.5'), /breaker\.min_requests must be a whole number from 1/, /got 1\.5$/);
    rejects(fn('[function.breaker]\nhalf_open_probes = 0'), /breaker\.half_open_probes/, /got 0$/);
    rejects(fn('[function.breaker]\nmax_keys = 0'), /breaker\.max_keys/, /got 0$/);
    rejects(fn('[function.breaker]\nquorum = 0'), /breaker\.quorum must be a whole number of nodes from 1 to 1000/, /got 0$/);
    rejects(fn('[function.breaker]\nconsecutive_failures = -1'), /breaker\.consecutive_failures must be a whole number from 0 \(off\)/);
  });

  test('manifest breaker — durations need a unit, and the window at least 100ms', () => {
    rejects(fn('[function.breaker]\nopen_for = 30'), /function\[f\]\.breaker\.open_for: breaker\.open_for must be a duration with a unit like '10s'/, /got 30$/);
    rejects(fn('[function.breaker]\nslow_call = "2"'), /breaker\.slow_call/, /got '2'$/);
    rejects(fn('[function.breaker]\nwindow = "10ms"'), /breaker\.window must be at least '100ms'/);
  });

  test('manifest breaker — an unknown field names the nearest one, or the table it belongs in', () => {
    rejects(fn('[function.breaker]\nhalf_open_probe = 1'), /function\[f\]\.breaker: unknown field 'half_open_probe' \(did you mean 'half_open_probes'\?\)/);
    rejects(fn('[function.breaker]\nmemory = "1MiB"'), /'memory' \(it belongs in \[function\.limits\]\)/);
    rejects(fn('open_for = "1s"'), /'open_for' \(it belongs in \[function\.breaker\]\)/);
  });
});

describe('units', () => {
  test('units — durations and sizes need a unit; bare numbers are undefined', () => {
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseSize('64MiB'), 64 * 1024 * 1024);
    assert.equal(parseSize('100B'), 100);
    for (const bare of ['10', ' 10 ', '1.5', 10]) {
      assert.equal(parseDuration(bare), undefined, `duration ${JSON.stringify(bare)}`);
      assert.equal(parseSize(bare), undefined, `size ${JSON.stringify(bare)}`);
    }
  });
});
