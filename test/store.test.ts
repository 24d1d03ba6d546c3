// The file store: content addressing, atomic revisions, crash leftovers, rollback, verification on read.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { digestOf, FileStore, removeTempLeftovers, writeFileAtomic, type DamageReport } from '../src/store/index.js';
import { FaultyFs, SimulatedCrash } from './faulty-fs.js';

/** Every temp file under `dir`, recursively. */
async function tempFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir, { recursive: true });
  return names.filter((n) => path.basename(n).startsWith('.tmp-'));
}

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

  /** A store with revisions 1 and 2 of 'app' (2 current), and every damage report it makes. */
  const twoRevisions = async () => {
    const dir = await fresh();
    const reports: DamageReport[] = [];
    const store = await FileStore.open(dir, { events: { damaged: (r) => reports.push(r) } });
    const digest = await store.putBlob(Buffer.from('module'));
    await store.commit('app', { manifest: 'one', artifacts: { 'a.wasm': digest } });
    await store.commit('app', { manifest: 'two', artifacts: { 'a.wasm': digest } });
    const reopen = () => FileStore.open(dir, { events: { damaged: (r) => reports.push(r) } });
    return { dir, store, digest, reports, reopen, revisionFile: (n: number) => path.join(dir, 'apps', 'app', 'revisions', `${n}.json`), pointer: path.join(dir, 'apps', 'app', 'current') };
  };

  const damagedRevisions: Array<[string, (text: string) => string, RegExp]> = [
    ['empty', () => '', /is empty/],
    ['truncated', (text) => text.slice(0, Math.floor(text.length / 2)), /is not valid JSON/],
    ['not JSON', () => 'garbage\u0000\u0001', /is not valid JSON/],
    ['not a revision', () => JSON.stringify({ app: 'app', number: 2, manifest: 'two' }), /is not a revision \(createdAt/],
    ['another revision', (text) => text.replace('"number": 2', '"number": 1'), /holds revision 1 of app 'app', not revision 2/],
  ];
  for (const [name, damage, reason] of damagedRevisions) {
    test(`file store — a current revision file that is ${name} is reported with its path, left out, and never overwritten`, async () => {
      const { reopen, reports, revisionFile } = await twoRevisions();
      await writeFile(revisionFile(2), damage(await readFile(revisionFile(2), 'utf8')));
      const store = await reopen();
      const record = await store.record('app');
      assert.ok(record);
      assert.equal(record.current, 2);
      assert.ok(record.damage?.startsWith(revisionFile(2)), record.damage);
      assert.match(record.damage ?? '', reason);
      assert.deepEqual(record.revisions.map((r) => r.manifest), ['one']);
      assert.equal(await store.current('app'), undefined);
      assert.deepEqual(await store.apps(), ['app'], 'the app is still listed');
      await assert.rejects(store.revision('app', 2), (err: Error & { code?: string }) => err.code === 'LL_STORE_DAMAGED' && err.message.includes(revisionFile(2)));
      assert.equal(reports.length, 1, 'reported once, however often it is read');
      assert.deepEqual([reports[0]!.kind, reports[0]!.file], ['revision', revisionFile(2)]);
      assert.match(reports[0]!.reason, reason);
      const next = await store.commit('app', { manifest: 'three', artifacts: {} });
      assert.equal(next.number, 3, 'the damaged file keeps its number');
      assert.equal((await store.current('app'))?.manifest, 'three');
    });
  }

  for (const [name, content, reason] of [
    ['names no revision', '9', /names revision 9, which does not exist/],
    ['is empty', '', /is empty/],
    ['holds no number', 'two\n', /does not hold a revision number/],
  ] as const) {
    test(`file store — a current pointer that ${name} is reported with its path`, async () => {
      const { reopen, reports, pointer } = await twoRevisions();
      await writeFile(pointer, content);
      const store = await reopen();
      const record = await store.record('app');
      assert.ok(record);
      assert.match(record.damage ?? '', reason);
      assert.ok(record.damage?.includes(pointer), record.damage);
      assert.deepEqual(record.revisions.map((r) => r.number), [1, 2]);
      assert.deepEqual(reports.map((r) => [r.kind, r.file]), [['pointer', pointer]]);
      assert.match(reports[0]!.reason, reason);
    });
  }

  test('file store — a blob whose sha256 does not match its name is reported, moved aside, and replaced by the next upload', async () => {
    const { dir, reopen, reports, digest } = await twoRevisions();
    const file = path.join(dir, 'blobs', 'sha256', digest.slice(0, 2), digest);
    await writeFile(file, 'modulf');
    const store = await reopen();
    await assert.rejects(store.getBlob(digest), (err: Error & { code?: string }) => err.code === 'LL_STORE_DAMAGED' && err.message.includes(file) && /Deploy the app again/.test(err.message));
    assert.deepEqual(reports.map((r) => [r.kind, r.file]), [['blob', file]]);
    assert.match(reports[0]!.reason, new RegExp(`sha256 is ${digestOf(Buffer.from('modulf'))}`));
    assert.ok(reports[0]!.movedTo?.startsWith(path.join(dir, 'damaged')), 'kept for inspection under damaged/');
    assert.equal(await readFile(reports[0]!.movedTo!, 'utf8'), 'modulf');
    assert.equal(await store.hasBlob(digest), false, 'a damaged blob counts as missing, so a deploy uploads it again');
    await store.putBlob(Buffer.from('module'));
    assert.equal((await store.getBlob(digest)).toString(), 'module');
  });

  test('file store — hasBlob finds a blob damaged after it was verified', async () => {
    const { dir, store, reports, digest } = await twoRevisions();
    assert.equal(await store.hasBlob(digest), true);
    await writeFile(path.join(dir, 'blobs', 'sha256', digest.slice(0, 2), digest), 'modulE');
    assert.equal(await store.hasBlob(digest), false);
    assert.deepEqual(reports.map((r) => r.kind), ['blob']);
  });

  test('file store — a revision damaged again after a rewrite is reported again', async () => {
    const { reopen, reports, pointer } = await twoRevisions();
    await writeFile(pointer, 'x');
    const store = await reopen();
    await store.record('app');
    await store.record('app');
    await store.setCurrent('app', 1);
    assert.equal((await store.current('app'))?.number, 1);
    await writeFile(pointer, 'x');
    await store.record('app');
    assert.equal(reports.length, 2);
  });

  test('writeFileAtomic — a write that fails at any step leaves the old contents and no temp file', async () => {
    const dir = await fresh();
    const file = path.join(dir, 'sub', 'file');
    await writeFileAtomic(file, 'old contents');
    const probe = new FaultyFs();
    await writeFileAtomic(file, 'probe', probe);
    assert.deepEqual(probe.steps.map((s) => s.split(' ')[0]), ['mkdir', 'writeFile', 'rename', 'syncDir']);
    await writeFileAtomic(file, 'old contents');
    // Steps before the rename: the old contents stay. The directory's fsync comes after it.
    for (const at of [0, 1, 2]) {
      for (const mode of [{ kind: 'fail', code: 'ENOSPC' }, { kind: 'fail', code: 'EIO' }] as const) {
        await assert.rejects(writeFileAtomic(file, 'new contents, twice as long as before', new FaultyFs().arm(at, mode)), { code: mode.code });
        assert.equal(await readFile(file, 'utf8'), 'old contents', `after ${mode.code} at step ${at}`);
        assert.deepEqual(await tempFiles(dir), [], `no temp file after ${mode.code} at step ${at}`);
      }
      await assert.rejects(writeFileAtomic(file, 'new contents, twice as long as before', new FaultyFs().arm(at, { kind: 'stop' })), SimulatedCrash);
      assert.equal(await readFile(file, 'utf8'), 'old contents', `after a crash at step ${at}`);
      await removeTempLeftovers(dir); // what the next start does after a crash
    }
  });

  test('file store — a full disk is LL_STORAGE_FULL naming the cause; nothing is committed and no temp file stays', async () => {
    const dir = await fresh();
    const failures: Array<{ code: string; file: string }> = [];
    const fs = new FaultyFs();
    const store = await FileStore.open(dir, { fs, events: { writeFailed: (f) => failures.push({ code: f.code, file: f.file }) } });
    await store.commit('app', { manifest: 'one', artifacts: {} });
    fs.arm(fs.steps.length + 1, { kind: 'fail', code: 'ENOSPC' });
    await assert.rejects(store.putBlob(Buffer.from('big module')), (err: Error & { code?: string; status?: number }) => {
      assert.equal(err.code, 'LL_STORAGE_FULL');
      assert.equal(err.status, 507);
      assert.match(err.message, /ENOSPC: no space left on device/);
      assert.match(err.message, /artifact sha256 [0-9a-f]{64}/);
      return true;
    });
    assert.equal(failures.length, 1);
    assert.equal(failures[0]!.code, 'ENOSPC');
    assert.deepEqual(await tempFiles(dir), []);
    assert.equal((await store.current('app'))?.manifest, 'one');
  });
});
