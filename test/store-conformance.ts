// One suite every ArtifactStore passes: blobs, numbering, pointers, conflicts, removal, damage.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { digestOf, type ArtifactStore, type DamageReport, type PointerChange, type StoreEvents } from '../src/store/index.js';

/** What the suite needs of an implementation. */
export interface StoreFixture {
  /** Opens a store on fresh, empty state. */
  open(options?: { events?: StoreEvents }): Promise<ArtifactStore>;
  /** Another handle on the state of the last {@link open} (another connection), for races; absent when a store is one handle. */
  openSecond?(options?: { events?: StoreEvents }): Promise<ArtifactStore>;
  /** Overwrites revision `n` of `app` behind the store's back with `text`. @default text that is not JSON */
  damageRevision(app: string, n: number, text?: string): Promise<void>;
  /** Overwrites the pointer of `app` behind the store's back with `text`. @default text that is not a number */
  damagePointer(app: string, text?: string): Promise<void>;
  /** Replaces the blob's bytes with others under the same digest. */
  damageBlob(digest: string): Promise<void>;
  /** What the store calls each entry in damage reports. */
  names: { revision(app: string, n: number): string; pointer(app: string): string; blob(digest: string): string };
  /** Something that changes whenever the blob is written again (a file's identity, an object's id). */
  blobVersion(digest: string): Promise<string | undefined>;
  /** Closes every store opened and what they share. */
  close(): Promise<void>;
}

type Coded = Error & { code?: string };

const coded = (code: string, message?: RegExp) => (err: Coded) => {
  assert.equal(err.code, code, err.message);
  if (message) assert.match(err.message, message);
  return true;
};

/** A store with revisions 1 ('one') and 2 ('two', current) of 'app', and every damage report it makes. */
async function twoRevisions(fixture: StoreFixture) {
  const reports: DamageReport[] = [];
  const store = await fixture.open({ events: { damaged: (r) => reports.push(r) } });
  const digest = await store.putBlob(Buffer.from('module'));
  await store.commit('app', { manifest: 'one', artifacts: { 'a.wasm': digest } });
  await store.commit('app', { manifest: 'two', artifacts: { 'a.wasm': digest } });
  return { store, digest, reports };
}

/** Registers the conformance tests for one implementation, named "<name> store — …". */
export function storeConformance(name: string, fixture: StoreFixture): void {
  const t = (title: string, fn: () => Promise<void>) => test(`${name} store — ${title}`, fn);

  t('blobs are addressed by sha256: put, has, get; a wrong digest is refused and stores nothing', async () => {
    const store = await fixture.open();
    const bytes = Buffer.from('module bytes');
    const digest = digestOf(bytes);
    assert.equal(await store.hasBlob(digest), false);
    await assert.rejects(store.getBlob(digest), coded('LL_NOT_FOUND', /No artifact/));
    assert.equal(await store.putBlob(bytes, digest), digest);
    assert.equal(await store.hasBlob(digest), true);
    assert.deepEqual(await store.getBlob(digest), bytes);
    const other = Buffer.from('other bytes');
    await assert.rejects(store.putBlob(other, digest), coded('LL_BAD_REQUEST', /digest mismatch/));
    assert.equal(await store.hasBlob(digestOf(other)), false, 'the refused bytes are not stored under their own digest either');
    await assert.rejects(store.hasBlob('not-a-digest'), coded('LL_BAD_REQUEST'));
    const empty = await store.putBlob(new Uint8Array(0));
    assert.equal((await store.getBlob(empty)).length, 0);
  });

  t('a blob already stored intact is not uploaded again', async () => {
    const store = await fixture.open();
    const digest = await store.putBlob(Buffer.from('once'));
    const version = await fixture.blobVersion(digest);
    assert.ok(version);
    await store.putBlob(Buffer.from('once'));
    await store.putBlob(Buffer.from('once'), digest);
    assert.equal(await fixture.blobVersion(digest), version);
  });

  t('a damaged blob is refused and reported once, counts as absent, and the next upload replaces it', async () => {
    const { store, digest, reports } = await twoRevisions(fixture);
    await fixture.damageBlob(digest);
    await assert.rejects(store.getBlob(digest), coded('LL_STORE_DAMAGED', /Deploy the app again/));
    // Moved aside (absent) or left in place (damaged): refused either way, and not reported again.
    await assert.rejects(store.getBlob(digest), (err: Coded) => err.code === 'LL_STORE_DAMAGED' || err.code === 'LL_NOT_FOUND');
    assert.equal(await store.hasBlob(digest), false);
    assert.deepEqual(reports.map((r) => [r.kind, r.file]), [['blob', fixture.names.blob(digest)]]);
    assert.match(reports[0]!.reason, new RegExp(`not the ${digest}`));
    const damagedVersion = await fixture.blobVersion(digest);
    await store.putBlob(Buffer.from('module'));
    assert.notEqual(await fixture.blobVersion(digest), damagedVersion);
    assert.equal((await store.getBlob(digest)).toString(), 'module');
    assert.equal(await store.hasBlob(digest), true);
  });

  t('commits are numbered from 1 and read back: current, record, revisions, revision', async () => {
    const store = await fixture.open();
    assert.equal(await store.current('app'), undefined);
    assert.equal(await store.record('app'), undefined);
    assert.deepEqual(await store.revisions('app'), []);
    const digest = await store.putBlob(Buffer.from('x'));
    const r1 = await store.commit('app', { manifest: 'one', artifacts: { 'a.wasm': digest }, appDir: '/srv/app' });
    const r2 = await store.commit('app', { manifest: 'two', artifacts: { 'a.wasm': digest } });
    assert.deepEqual([r1.number, r2.number], [1, 2]);
    assert.equal(r1.app, 'app');
    assert.ok(!Number.isNaN(Date.parse(r1.createdAt)));
    assert.deepEqual(await store.current('app'), r2);
    assert.deepEqual(await store.revision('app', 1), r1);
    assert.equal((await store.revision('app', 1)).appDir, '/srv/app');
    assert.deepEqual(await store.revisions('app'), [r1, r2]);
    assert.deepEqual(await store.record('app'), { app: 'app', current: 2, damage: undefined, revisions: [r1, r2] });
    await assert.rejects(store.revision('app', 3), coded('LL_NOT_FOUND', /no revision 3/));
    await assert.rejects(store.commit('Bad App', { manifest: 'm', artifacts: {} }), coded('LL_BAD_REQUEST'));
  });

  t('a commit naming an artifact not uploaded is refused and commits nothing', async () => {
    const store = await fixture.open();
    await assert.rejects(store.commit('app', { manifest: 'm', artifacts: { 'a.wasm': 'a'.repeat(64) } }), coded('LL_BAD_REQUEST', /has not been uploaded/));
    assert.equal(await store.record('app'), undefined);
    assert.deepEqual(await store.apps(), []);
  });

  t('setCurrent points back at an older revision; numbers go on past the highest after a rollback', async () => {
    const store = await fixture.open();
    for (let i = 1; i <= 5; i++) await store.commit('app', { manifest: `m${i}`, artifacts: {} });
    const back = await store.setCurrent('app', 2);
    assert.equal(back.manifest, 'm2');
    assert.equal((await store.current('app'))?.number, 2);
    assert.equal((await store.record('app'))?.current, 2);
    await assert.rejects(store.setCurrent('app', 9), coded('LL_NOT_FOUND', /no revision 9/));
    assert.equal((await store.current('app'))?.number, 2, 'a refused rollback moves nothing');
    const next = await store.commit('app', { manifest: 'm6', artifacts: {} });
    assert.equal(next.number, 6);
    assert.deepEqual((await store.revisions('app')).map((r) => r.number), [1, 2, 3, 4, 5, 6]);
  });

  t('expectCurrent: a commit or rollback that saw another current revision is LL_DEPLOY_CONFLICT and changes nothing', async () => {
    const store = await fixture.open();
    await assert.rejects(store.commit('app', { manifest: 'm', artifacts: {} }, { expectCurrent: 1 }), coded('LL_DEPLOY_CONFLICT', /another deploy changed app 'app'.*no current revision.*deploy again/));
    assert.equal(await store.record('app'), undefined);
    await store.commit('app', { manifest: 'one', artifacts: {} }, { expectCurrent: null });
    await store.commit('app', { manifest: 'two', artifacts: {} }, { expectCurrent: 1 });
    const before = await store.record('app');
    await assert.rejects(store.commit('app', { manifest: 'three', artifacts: {} }, { expectCurrent: 1 }), coded('LL_DEPLOY_CONFLICT', /another deploy changed app 'app'.*revision 2 is now current.*deploy again/));
    await assert.rejects(store.commit('app', { manifest: 'three', artifacts: {} }, { expectCurrent: null }), coded('LL_DEPLOY_CONFLICT', /revision 2 is now current/));
    await assert.rejects(store.setCurrent('app', 1, { expectCurrent: 1 }), coded('LL_DEPLOY_CONFLICT', /revision 2 is now current/));
    assert.deepEqual(await store.record('app'), before, 'nothing was committed or moved');
    assert.equal((await store.setCurrent('app', 1, { expectCurrent: 2 })).number, 1);
    assert.equal((await store.commit('app', { manifest: 'three', artifacts: {} }, { expectCurrent: 1 })).number, 3);
  });

  t(`two concurrent commits expecting the same revision: exactly one wins${fixture.openSecond ? ' (two handles)' : ''}`, async () => {
    const first = await fixture.open();
    const second = fixture.openSecond ? await fixture.openSecond() : first;
    await first.commit('app', { manifest: 'base', artifacts: {} });
    const numbers = new Set<number>([1]);
    for (let round = 0; round < 5; round++) {
      const current = (await first.current('app'))!.number;
      const results = await Promise.allSettled([
        first.commit('app', { manifest: `a${round}`, artifacts: {} }, { expectCurrent: current }),
        second.commit('app', { manifest: `b${round}`, artifacts: {} }, { expectCurrent: current }),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
      const lost = results.filter((r) => r.status === 'rejected').map((r) => r.reason as Coded);
      assert.equal(won.length, 1, `round ${round}: ${JSON.stringify(results.map((r) => r.status))}`);
      assert.equal(lost[0]?.code, 'LL_DEPLOY_CONFLICT', lost[0]?.message);
      assert.match(lost[0]!.message, new RegExp(`revision ${won[0]!.number} is now current`));
      assert.ok(!numbers.has(won[0]!.number), 'a number is never handed out twice');
      numbers.add(won[0]!.number);
      assert.deepEqual(await second.current('app'), won[0]);
      const listed = await first.revisions('app');
      assert.equal(listed.length, round + 2, 'the loser left no revision behind');
      assert.ok(!listed.some((r) => r.manifest === (won[0]!.manifest.startsWith('a') ? `b${round}` : `a${round}`)));
    }
  });

  t('racing commits without expectCurrent: losers get LL_DEPLOY_CONFLICT, winners take distinct rising numbers, nothing is left behind', async () => {
    const first = await fixture.open();
    const second = fixture.openSecond ? await fixture.openSecond() : first;
    await first.commit('app', { manifest: 'base', artifacts: {} });
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => (i % 2 ? second : first).commit('app', { manifest: `m${i}`, artifacts: {} })));
    const won = results.filter((r) => r.status === 'fulfilled').map((r) => r.value.number);
    for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as Coded).code, 'LL_DEPLOY_CONFLICT', (r.reason as Error).message);
    assert.ok(won.length >= 1);
    assert.equal(new Set(won).size, won.length, `numbers are distinct: ${won}`);
    assert.equal((await second.current('app'))?.number, Math.max(...won), 'each winner read the pointer its predecessor left');
    assert.deepEqual((await first.revisions('app')).map((r) => r.number), [1, ...won.sort((a, b) => a - b)]);
  });

  t('removeApp takes the pointer and the revisions; apps() lists apps with a pointer, sorted', async () => {
    const store = await fixture.open();
    await store.commit('zeta', { manifest: 'z', artifacts: {} });
    await store.commit('alpha', { manifest: 'a1', artifacts: {} });
    await store.commit('alpha', { manifest: 'a2', artifacts: {} });
    assert.deepEqual(await store.apps(), ['alpha', 'zeta']);
    await store.removeApp('alpha');
    assert.deepEqual(await store.apps(), ['zeta']);
    assert.equal(await store.record('alpha'), undefined);
    assert.equal(await store.current('alpha'), undefined);
    assert.deepEqual(await store.revisions('alpha'), []);
    await assert.rejects(store.revision('alpha', 1), coded('LL_NOT_FOUND'));
    await assert.rejects(store.removeApp('alpha'), coded('LL_NOT_FOUND', /No app named 'alpha'/));
    const again = await store.commit('alpha', { manifest: 'new', artifacts: {} });
    assert.deepEqual((await store.revisions('alpha')).map((r) => r.manifest), ['new']);
    assert.equal((await store.current('alpha'))?.number, again.number);
  });

  const damagedRevisions: Array<[string, string | undefined, RegExp]> = [
    ['not JSON', undefined, /is not valid JSON/],
    ['empty', '', /is empty/],
    ['not a revision', JSON.stringify({ app: 'app', number: 2, manifest: 'two' }), /is not a revision \(createdAt/],
    ['another revision', JSON.stringify({ app: 'app', number: 1, createdAt: '', manifest: 'one', artifacts: {} }), /holds revision 1 of app 'app', not revision 2/],
  ];
  for (const [kind, text, reason] of damagedRevisions) {
    t(`a current revision that is ${kind} is reported once, left out, surfaced in record(), and keeps its number`, async () => {
      const { store, reports } = await twoRevisions(fixture);
      await fixture.damageRevision('app', 2, text);
      const name = fixture.names.revision('app', 2);
      const record = await store.record('app');
      assert.ok(record);
      assert.equal(record.current, 2);
      assert.ok(record.damage?.startsWith(name), record.damage);
      assert.match(record.damage ?? '', reason);
      assert.deepEqual(record.revisions.map((r) => r.manifest), ['one']);
      assert.equal(await store.current('app'), undefined);
      assert.deepEqual((await store.revisions('app')).map((r) => r.number), [1]);
      assert.deepEqual(await store.apps(), ['app'], 'the app is still listed');
      await assert.rejects(store.revision('app', 2), (err: Coded) => err.code === 'LL_STORE_DAMAGED' && err.message.includes(name));
      assert.deepEqual(reports.map((r) => [r.kind, r.file]), [['revision', name]], 'reported once, however often it is read');
      assert.match(reports[0]!.reason, reason);
      const next = await store.commit('app', { manifest: 'three', artifacts: {} });
      assert.equal(next.number, 3, 'the damaged revision keeps its number');
      assert.equal((await store.current('app'))?.manifest, 'three');
    });
  }

  t('a pointer naming a revision that does not exist is reported as the pointer\'s damage', async () => {
    const { store, reports } = await twoRevisions(fixture);
    await fixture.damagePointer('app', '9');
    const name = fixture.names.pointer('app');
    const record = await store.record('app');
    assert.ok(record);
    assert.equal(record.current, 9);
    assert.ok(record.damage?.includes(name), record.damage);
    assert.match(record.damage ?? '', /names revision 9, which does not exist/);
    assert.deepEqual(record.revisions.map((r) => r.number), [1, 2]);
    assert.equal(await store.current('app'), undefined);
    assert.deepEqual(reports.map((r) => [r.kind, r.file]), [['pointer', name]]);
  });

  t('a pointer holding no number is reported once and surfaced in record(); every revision stays listed', async () => {
    const { store, reports } = await twoRevisions(fixture);
    await fixture.damagePointer('app');
    const name = fixture.names.pointer('app');
    const record = await store.record('app');
    assert.ok(record);
    assert.equal(record.current, undefined);
    assert.ok(record.damage?.includes(name), record.damage);
    assert.match(record.damage ?? '', /does not hold a revision number/);
    assert.deepEqual(record.revisions.map((r) => r.number), [1, 2]);
    assert.equal(await store.current('app'), undefined);
    await store.record('app');
    assert.deepEqual(await store.apps(), ['app']);
    assert.deepEqual(reports.map((r) => [r.kind, r.file]), [['pointer', name]]);
    // A rollback rewrites the pointer: it serves again.
    await store.setCurrent('app', 1);
    assert.equal((await store.current('app'))?.manifest, 'one');
  });

  t('watch (where supported) reports every later pointer change through this handle, in order', async () => {
    const store = await fixture.open();
    if (!store.watch) return;
    const seen: PointerChange[] = [];
    const stop = store.watch((c) => seen.push(c));
    await store.commit('app', { manifest: 'one', artifacts: {} });
    await store.commit('app', { manifest: 'two', artifacts: {} });
    await store.setCurrent('app', 1);
    await store.removeApp('app');
    const expected: PointerChange[] = [{ app: 'app', current: 1 }, { app: 'app', current: 2 }, { app: 'app', current: 1 }, { app: 'app', current: undefined }];
    await until(() => seen.length >= expected.length, 5000);
    assert.deepEqual(seen, expected);
    stop();
    await store.commit('app', { manifest: 'three', artifacts: {} });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(seen.length, expected.length, 'a stopped listener hears nothing more');
  });
}

/** Waits until `done()` holds, checking every 20 ms, for at most `ms`. */
export async function until(done: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`not done within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
