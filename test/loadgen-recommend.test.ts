// Tests of the scale recommendation (pure) and of reading a function's config from the admin API.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import { LamplighterError } from '../src/errors/index.js';
import {
  fetchFunctionConfig,
  formatDuration,
  formatScaleToml,
  recommendScale,
  type FunctionConfig,
  type SqueezeSummary,
} from '../src/loadgen/index.js';
import { startAdminServer, type TestServer } from './loadgen-servers.js';

const hello: FunctionConfig = {
  name: 'hello',
  app: 'demo',
  runtime: 'wagi',
  scale: { min: 0, max: 50, idleMs: 30_000, target: 10, rate: null, windowMs: 10_000 },
  limits: { concurrency: 8 },
};

const squeezed: SqueezeSummary = {
  url: 'http://127.0.0.1:8080/hello',
  best: { concurrency: 4, rps: 197 },
  peak: { concurrency: 6, rps: 201 },
};

describe('recommend', () => {
  test('recommendScale — target becomes the knee; min, max, idle and window are kept', () => {
    const rec = recommendScale(hello, squeezed);
    assert.equal(rec.function, 'hello');
    assert.deepEqual(rec.scale, { min: 0, max: 50, idle: '30s', target: 4, window: '10s' });
    assert.ok(rec.notes.some((n) => n.includes('target was 10')));
  });

  test('recommendScale — drops a rate and says so', () => {
    const rec = recommendScale({ ...hello, scale: { ...hello.scale, target: null, rate: 100, idleMs: 90_000 } }, squeezed);
    assert.equal(rec.scale.target, 4);
    assert.equal(rec.scale.idle, '1m30s');
    assert.ok(rec.notes.some((n) => n.includes('replaces rate = 100')));
  });

  test('recommendScale — warns when limits.concurrency is below the target', () => {
    const rec = recommendScale({ ...hello, limits: { concurrency: 1 } }, squeezed);
    assert.ok(rec.notes.some((n) => n.includes('limits.concurrency = 1')));
    const roomy = recommendScale(hello, squeezed);
    assert.ok(!roomy.notes.some((n) => n.includes('limits.concurrency')));
  });

  test('formatScaleToml — prints a [function.scale] table that parses back to the same values', () => {
    const toml = formatScaleToml(recommendScale(hello, squeezed));
    assert.match(toml, /^\[function\.scale\]$/m);
    assert.match(toml, /^idle = "30s"$/m);
    const parsed = parseToml(toml) as { function: { scale: Record<string, unknown> } };
    assert.deepEqual({ ...parsed.function.scale }, { min: 0, max: 50, idle: '30s', target: 4, window: '10s' });
  });

  test('formatDuration — writes durations as manifests do', () => {
    assert.equal(formatDuration(30_000), '30s');
    assert.equal(formatDuration(90_000), '1m30s');
    assert.equal(formatDuration(3_600_000), '1h');
    assert.equal(formatDuration(250), '250ms');
    assert.equal(formatDuration(1500), '1s500ms');
    assert.equal(formatDuration(0), '0s');
    assert.throws(() => formatDuration(-1), RangeError);
  });
});

describe('function config', { timeout: 30_000 }, () => {
  let admin: TestServer & { auth: () => string | undefined };

  before(async () => {
    admin = await startAdminServer('s3cret', {
      hello: { ...hello, limits: { concurrency: 1, memory: 67108864 } },
      partial: { name: 'partial', scale: { min: 0, max: 'many', idleMs: 1 } },
    });
  });

  after(async () => {
    await admin.close();
  });

  test('fetchFunctionConfig — reads the function with a bearer token', async () => {
    const config = await fetchFunctionConfig(admin.url, 'hello', { token: 's3cret' });
    assert.equal(admin.auth(), 'Bearer s3cret');
    assert.deepEqual(config.scale, hello.scale);
    assert.equal(config.limits?.concurrency, 1);
  });

  test('fetchFunctionConfig — reports a missing token, an unknown function and a bad answer', async () => {
    await assert.rejects(fetchFunctionConfig(admin.url, 'hello'), (err: LamplighterError) => err.code === 'LL_UNAUTHORIZED');
    await assert.rejects(fetchFunctionConfig(admin.url, 'nope', { token: 's3cret' }), (err: LamplighterError) => err.code === 'LL_NOT_FOUND');
    await assert.rejects(fetchFunctionConfig(admin.url, 'partial', { token: 's3cret' }), /unexpected answer at 'scale\.max'/);
  });
});
