// Fault injection into a deploy's write sequence (blob, revision, `current`): fail or stop at each step, restart, the app is whole.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Logger } from 'pino';
import { Platform } from '../src/control/index.js';
import { FileStore, type StoreFs } from '../src/store/index.js';
import { FaultyFs, SimulatedCrash, type FaultMode } from './faulty-fs.js';
import { capturingLogger, HELLO, NEW, NEW_TEXT, OLD, OLD_TEXT, OUTPUT, tempFiles } from './store-helpers.js';




async function body(platform: Platform, route: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${platform.port}${route}`, { signal: AbortSignal.timeout(15_000) });
  return `${res.status} ${await res.text()}`;
}

describe('deploy faults', () => {
  const dirs: string[] = [];
  let root: string;
  let newApp: string;
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'lamplighter-faults-'));
    dirs.push(root);
    newApp = path.join(root, 'new-app');
    await mkdir(newApp);
    await writeFile(path.join(newApp, 'lamplighter.toml'), NEW);
    await writeFile(path.join(newApp, 'app.wasm'), await readFile(OUTPUT));
  });
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  /** A data dir whose app serves OLD as revision 1. */
  const seeded = async (): Promise<string> => {
    const data = await mkdtemp(path.join(root, 'data-'));
    const store = await FileStore.open(data);
    const digest = await store.putBlob(await readFile(HELLO));
    await store.commit('app', { manifest: OLD, artifacts: { 'app.wasm': digest } });
    return data;
  };

  const start = (dataDir: string, logger: Logger, storeFs?: StoreFs) =>
    Platform.start({ dataDir, port: 0, adminPort: null, processMetrics: false, sandboxWorkers: 1, logger, ...(storeFs ? { storeFs } : {}) });

  /** The write steps of one clean deploy of NEW over OLD. */
  const traceDeploy = async (): Promise<string[]> => {
    const fs = new FaultyFs();
    const platform = await start(await seeded(), capturingLogger().logger, fs);
    try {
      await platform.deployDir(newApp);
      assert.equal(await body(platform, '/app'), `200 ${NEW_TEXT}`);
    } finally {
      await platform.close();
    }
    return fs.steps;
  };

  /** Restarts on `data` with no fault: the app must be whole, at OLD or NEW, with nothing damaged; then a deploy works. */
  const assertWholeAfterRestart = async (data: string, where: string): Promise<void> => {
    const { logger, lines } = capturingLogger();
    const platform = await start(data, logger);
    try {
      assert.match(await body(platform, '/app'), new RegExp(`^200 (${OLD_TEXT}|${NEW_TEXT})$`), `${where}: the app serves the old or the new revision after a restart`);
      const [app] = platform.list();
      assert.equal(app?.restored, undefined, `${where}: restored as it was, no fallback: ${app?.restored?.message}`);
      assert.deepEqual(lines.filter((l) => l.level >= 50).map((l) => l.msg), [], `${where}: nothing damaged, nothing failed`);
      assert.deepEqual(await tempFiles(data), [], `${where}: crash leftovers cleared at start`);
      const { revision } = await platform.deployDir(newApp);
      assert.equal(await body(platform, '/app'), `200 ${NEW_TEXT}`, `${where}: the next deploy works`);
      assert.ok(revision.number >= 2, `${where}: revision ${revision.number}`);
      assert.deepEqual(lines.filter((l) => l.level >= 50).map((l) => l.msg), [], `${where}: the next deploy read nothing damaged`);
    } finally {
      await platform.close();
    }
  };

  test('deploy faults — a deploy writes its blob, then its revision, then `current`, each through a temp file and a rename', async () => {
    const steps = await traceDeploy();
    const renameInto = (pattern: RegExp) => steps.findIndex((s) => s.startsWith('rename ') && pattern.test(s.split(' -> ')[1] ?? ''));
    const blob = renameInto(/blobs\/sha256\/[0-9a-f]{2}\/[0-9a-f]{64}$/);
    const revision = renameInto(/apps\/app\/revisions\/2\.json$/);
    const current = renameInto(/apps\/app\/current$/);
    assert.ok(blob >= 0 && revision >= 0 && current >= 0, steps.join('\n'));
    assert.ok(blob < revision && revision < current, `blob, revision, current in that order:\n${steps.join('\n')}`);
    const written = steps.filter((s) => s.startsWith('writeFile ')).map((s) => path.basename(s.slice('writeFile '.length)));
    assert.ok(written.length >= 3 && written.every((name) => name.startsWith('.tmp-')), `every file is written under a temp name first: ${written.join(', ')}`);
  });

  test('deploy faults — a deploy stopped at any write step leaves the app whole after a restart', async () => {
    const steps = await traceDeploy();
    for (let at = 0; at < steps.length; at++) {
      const where = `stopped at step ${at} (${steps[at]})`;
      const data = await seeded();
      const platform = await start(data, capturingLogger().logger, new FaultyFs().arm(at, { kind: 'stop' }));
      try {
        await assert.rejects(platform.deployDir(newApp), SimulatedCrash, where);
      } finally {
        await platform.close();
      }
      await assertWholeAfterRestart(data, where);
    }
  });

  // EIO at every step is covered in the store's own test; here the full disk, through the whole node.
  const code = 'ENOSPC';
  test(`deploy faults — a deploy failing with ${code} at any write step says so, removes its temp files at once, and the old revision keeps serving`, async () => {
    const steps = await traceDeploy();
    const mode: FaultMode = { kind: 'fail', code };
    for (let at = 0; at < steps.length; at++) {
      const where = `${code} at step ${at} (${steps[at]})`;
      const data = await seeded();
      const { logger, lines } = capturingLogger();
      const platform = await start(data, logger, new FaultyFs().arm(at, mode));
      try {
        const err = await platform.deployDir(newApp).then(() => undefined, (e: unknown) => e as Error & { code?: string });
        assert.ok(err, `${where}: the deploy fails`);
        assert.equal(err.code, 'LL_STORAGE_FULL', `${where}: ${err.message}`);
        assert.match(err.message, new RegExp(`${code}: `), where);
        assert.ok(lines.some((l) => l.level >= 50 && l.msg === err.message && l.code === code), `${where}: logged with its cause`);
        assert.deepEqual(await tempFiles(data), [], `${where}: no temp file stays`);
        assert.equal(await body(platform, '/app'), `200 ${OLD_TEXT}`, `${where}: the old revision keeps serving`);
      } finally {
        await platform.close();
      }
      await assertWholeAfterRestart(data, where);
    }
  });
});
