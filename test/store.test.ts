// The file store: content addressing, atomic revisions, crash leftovers, rollback.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { digestOf, FileStore } from '../src/store/index.js';

describe('file store', () => {
  const dirs: string[] = [];
  const fresh = async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-store-'));
    dirs.push(dir);
    return dir;
  };
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('file store — blobs are addressed by sha256 and verified', async () => {
    const store = await FileStore.open(await fresh());
    const bytes = Buffer.from('module bytes');
    const digest = await store.putBlob(bytes);
    assert.equal(digest, digestOf(bytes));
    assert.ok(await store.hasBlob(digest));
    assert.deepEqual(await store.getBlob(digest), bytes);
    await assert.rejects(store.putBlob(bytes, '0'.repeat(64)), /digest mismatch/);
    await assert.rejects(store.getBlob('f'.repeat(64)), /No artifact/);
  });

  test('file store — revisions are numbered, immutable, and survive reopening', async () => {
    const dir = await fresh();
    const store = await FileStore.open(dir);
    const digest = await store.putBlob(Buffer.from('x'));
    const r1 = await store.commit('app', { manifest: 'one', artifacts: { 'a.wasm': digest } });
    const r2 = await store.commit('app', { manifest: 'two', artifacts: { 'a.wasm': digest } });
    assert.deepEqual([r1.number, r2.number], [1, 2]);
    const reopened = await FileStore.open(dir);
    assert.equal((await reopened.current('app'))?.manifest, 'two');
    assert.deepEqual((await reopened.revisions('app')).map((r) => r.manifest), ['one', 'two']);
    await reopened.setCurrent('app', 1);
    assert.equal((await (await FileStore.open(dir)).current('app'))?.manifest, 'one');
    await assert.rejects(reopened.setCurrent('app', 9), /no revision 9/);
  });

  test('file store — a commit naming a missing artifact is refused and leaves nothing', async () => {
    const store = await FileStore.open(await fresh());
    await assert.rejects(store.commit('app', { manifest: 'm', artifacts: { 'a.wasm': 'a'.repeat(64) } }), /has not been uploaded/);
    assert.equal(await store.current('app'), undefined);
    assert.deepEqual(await store.apps(), []);
  });

  test('file store — what a crash mid-deploy leaves behind is never served and is cleaned up', async () => {
    const dir = await fresh();
    const store = await FileStore.open(dir);
    const digest = await store.putBlob(Buffer.from('x'));
    await store.commit('app', { manifest: 'good', artifacts: { 'a.wasm': digest } });
    // A deploy that died after writing its revision but before flipping `current`,
    // and one that died while writing a temp file.
    const revisions = path.join(dir, 'apps', 'app', 'revisions');
    await writeFile(path.join(revisions, '2.json'), JSON.stringify({ app: 'app', number: 2, createdAt: '', manifest: 'unfinished', artifacts: {} }));
    await writeFile(path.join(revisions, '.tmp-deadbeef'), '{"half": ');
    await writeFile(path.join(dir, 'blobs', 'sha256', '.tmp-cafe'), 'partial blob');
    const reopened = await FileStore.open(dir);
    assert.equal((await reopened.current('app'))?.manifest, 'good');
    assert.ok(!(await readdir(revisions)).some((n) => n.startsWith('.tmp-')));
    assert.ok(!(await readdir(path.join(dir, 'blobs', 'sha256'))).some((n) => n.startsWith('.tmp-')));
    const next = await reopened.commit('app', { manifest: 'next', artifacts: {} });
    assert.equal(next.number, 3);
  });

  test('file store — removing an app takes all its revisions', async () => {
    const store = await FileStore.open(await fresh());
    await store.commit('gone', { manifest: 'm', artifacts: {} });
    assert.deepEqual(await store.apps(), ['gone']);
    await store.removeApp('gone');
    assert.deepEqual(await store.apps(), []);
    await assert.rejects(store.removeApp('gone'), /No app named 'gone'/);
  });
});
