// The confinement under both runtimes' read-only files: what a guest path may reach of a host directory.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfinedDir } from '../src/runtime/wasm/index.js';

describe('confined dir', () => {
  let work: string;
  let root: string;
  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'lamplighter-confined-'));
    root = path.join(work, 'files');
    await mkdir(path.join(root, 'static'), { recursive: true });
    await writeFile(path.join(root, 'static', 'a.txt'), 'a');
    await writeFile(path.join(work, 'secret.txt'), 'outside');
    await symlink(work, path.join(root, 'out'));
  });
  after(() => rm(work, { recursive: true, force: true }));

  test('confined dir — paths resolve inside; a climb out, an absolute path and a NUL are refused', () => {
    const dir = new ConfinedDir(root);
    assert.equal(dir.resolve('', 'static/./a.txt'), 'static/a.txt');
    assert.equal(dir.resolve('static', '../static/a.txt'), 'static/a.txt');
    assert.equal(dir.resolve('static', '../../secret.txt'), undefined);
    assert.equal(dir.resolve('', '/etc/hostname'), undefined);
    assert.equal(dir.resolve('', 'static/a.txt\0'), undefined);
  });

  test('confined dir — a symbolic link is never followed, last part or on the way', () => {
    const dir = new ConfinedDir(root);
    assert.equal(dir.stat('out'), 'symlink');
    assert.equal(dir.stat('out/secret.txt'), 'symlink');
    assert.deepEqual(dir.list('').map((e) => e.name), ['static'], 'the link is not listed');
  });

  test('confined dir — a directory that vanished answers no-entry and an empty listing, never a throw', async () => {
    const gone = path.join(work, 'gone');
    await mkdir(path.join(gone, 'sub'), { recursive: true });
    const dir = new ConfinedDir(gone);
    await rm(gone, { recursive: true });
    assert.equal(dir.stat('sub/x'), 'no-entry');
    assert.deepEqual(dir.list('sub'), []);
  });
});
