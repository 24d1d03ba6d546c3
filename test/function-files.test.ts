// Which app files a function ships and where each appears: files entries, exclude_files, and the
// manifest rules around them (components take files now; processes do not).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { collectFunctionFiles, fileTargets, parseManifest } from '../src/manifest/index.js';

const fn = (runtime: string, extra: string): string => `name = "a"\n[[function]]\nname = "f"\nruntime = "${runtime}"\n${runtime === 'process' ? 'command = ["srv"]' : 'source = "f.wasm"'}\nroutes = ["/f"]\n${extra}`;

test('function files — a component function takes files, and exclude_files rides on each entry', () => {
  const [spec] = parseManifest(fn('component', 'files = ["static/**", { source = "assets", destination = "/a" }]\nexclude_files = ["**/*.map"]\n')).functions;
  assert.deepEqual(spec!.files, [
    { pattern: 'static/**', exclude: ['**/*.map'] },
    { source: 'assets', destination: '/a', exclude: ['**/*.map'] },
  ]);
  const [plain] = parseManifest(fn('component', 'files = ["static/**"]\n')).functions;
  assert.deepEqual(plain!.files, [{ pattern: 'static/**' }], 'no exclude when none is written');
});

test('function files — exclude_files without files, outside the app, and files for a process are refused', () => {
  assert.throws(() => parseManifest(fn('component', 'exclude_files = ["x"]\n')), /exclude_files leaves files out of those files = \[\.\.\.\] ships; this function ships none/);
  assert.throws(() => parseManifest(fn('wagi', 'files = ["s/**"]\nexclude_files = ["../x"]\n')), /an exclude_files pattern is a path inside the app directory/);
  assert.throws(() => parseManifest(fn('wagi', 'files = ["s/**"]\nexclude_files = "x"\n')), /exclude_files must be a list of patterns/);
  assert.throws(() => parseManifest(fn('process', 'files = ["s/**"]\n')), /a process function reads its app directory instead/);
});

test('function files — what exclude_files names is never collected for upload, nor laid out', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-exclude-'));
  try {
    await mkdir(path.join(dir, 'static', 'js'), { recursive: true });
    await mkdir(path.join(dir, 'assets'), { recursive: true });
    for (const name of ['static/index.html', 'static/js/app.js', 'static/js/app.js.map', 'assets/logo.png', 'assets/logo.psd']) await writeFile(path.join(dir, name), name);
    const exclude = ['**/*.map', 'assets/*.psd'];
    const mounts = [
      { pattern: 'static/**', exclude },
      { source: 'assets', destination: '/img', exclude },
    ];
    assert.deepEqual(await collectFunctionFiles(dir, 'f', mounts), ['assets/logo.png', 'static/index.html', 'static/js/app.js']);
    // On the node, the app's artifacts may hold an excluded file that another function ships.
    const artifacts = ['f.wasm', 'static/index.html', 'static/js/app.js', 'static/js/app.js.map', 'assets/logo.png', 'assets/logo.psd'];
    assert.deepEqual(
      [...fileTargets(mounts, artifacts).keys()].sort(),
      ['/img/logo.png', '/static/index.html', '/static/js/app.js'],
    );
    assert.equal(fileTargets([{ pattern: 'static/**' }], artifacts).size, 3, 'without exclude, the map ships');
    await assert.rejects(collectFunctionFiles(dir, 'f', [{ pattern: 'static/js/*.map', exclude }]), /files entry 'static\/js\/\*\.map' names no file that exclude_files leaves in under/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
