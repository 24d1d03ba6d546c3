// The manifest fields of component isolation: `isolation` and `max_reuse` in [[function]].
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { IsolationDefaults, parseManifest } from '../src/manifest/index.js';

function fn(lines: string, runtime = 'component'): string {
  return `name = "app"\n[[function]]\nname = "hello"\nruntime = "${runtime}"\n${runtime === 'process' ? 'command = ["srv"]' : 'source = "h.wasm"'}\nroutes = ["/..."]\n${lines}\n`;
}

function refused(text: string, message: RegExp): void {
  assert.throws(
    () => parseManifest(text, 'lamplighter.toml'),
    (err: Error & { code?: string }) => {
      assert.equal(err.code, 'LL_MANIFEST_INVALID');
      assert.match(err.message, message);
      return true;
    },
  );
}

describe('component manifest — isolation and max_reuse', () => {
  test('component manifest — isolation is "request" and max_reuse 128 when left out', () => {
    const spec = parseManifest(fn('')).functions[0];
    assert.equal(spec?.isolation, 'request');
    assert.equal(spec?.maxReuse, 128);
    assert.deepEqual(IsolationDefaults, { isolation: 'request', maxReuse: 128 });
  });

  test('component manifest — isolation = "instance" with max_reuse is read', () => {
    const spec = parseManifest(fn('isolation = "instance"\nmax_reuse = 1000')).functions[0];
    assert.equal(spec?.isolation, 'instance');
    assert.equal(spec?.maxReuse, 1000);
  });

  test('component manifest — an unknown isolation names both choices and the value', () => {
    refused(fn('isolation = "shared"'), /function\[hello\]\.isolation.*isolation must be "request" .* or "instance" .*got 'shared'/);
  });

  test('component manifest — max_reuse must be a whole number from 1 to 1000000', () => {
    for (const bad of ['0', '1.5', '"10"', '2000000']) refused(fn(`isolation = "instance"\nmax_reuse = ${bad}`), /max_reuse must be a whole number from 1 to 1000000/);
  });

  test('component manifest — max_reuse without isolation = "instance" is refused', () => {
    refused(fn('max_reuse = 10'), /max_reuse applies only with isolation = "instance"/);
  });

  test('component manifest — isolation and max_reuse belong to component functions only', () => {
    refused(fn('isolation = "request"', 'wagi'), /isolation applies to runtime = "component" only \(this function's runtime is "wagi"\)/);
    refused(fn('isolation = "instance"\nmax_reuse = 3', 'process'), /max_reuse applies to runtime = "component" only/);
  });
});
