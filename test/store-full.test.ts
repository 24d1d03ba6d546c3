// A full disk during a deploy, on a real 1 MiB tmpfs: LL_STORAGE_FULL with ENOSPC, temp files gone at once, the old revision serving.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, rmdir, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { digestOf } from '../src/store/index.js';
import { startTestNode, type TestNode } from '../src/testing/index.js';
import { appWithGreeting as app, HELLO, tempFiles, type LogEntry } from './store-helpers.js';

async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

describe('store full', () => {
  let mountpoint = '';
  let skip: string | false = false;
  let node: TestNode | undefined;
  const lines: LogEntry[] = [];

  before(async () => {
    mountpoint = await mkdtemp(path.join(tmpdir(), 'lamplighter-full-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1M,mode=0700', 'tmpfs', mountpoint], { stdio: 'pipe' });
    } catch (err) {
      skip = `cannot mount a 1 MiB tmpfs here (needs root and mount rights): ${((err as { stderr?: Buffer }).stderr ?? '').toString().trim() || (err as Error).message}`;
      return;
    }
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogEntry) });
    node = await startTestNode({ dataDir: path.join(mountpoint, 'data'), logger, adminPort: 0, sandboxWorkers: 1 });
  });
  after(async () => {
    await node?.close();
    if (!skip) execFileSync('umount', [mountpoint]);
    await rmdir(mountpoint).catch(() => rm(mountpoint, { recursive: true, force: true }));
  });

  const served = async () => (await fetch(`${node!.url}/app`, { signal: AbortSignal.timeout(15_000) })).text();

  test('store full — a blob that does not fit is LL_STORAGE_FULL with ENOSPC, logged, its temp file removed at once', async (t) => {
    if (skip || !node) return t.skip(skip || 'no node');
    await node.deploy(app('Old'), { 'app.wasm': HELLO });
    assert.equal(await served(), 'Old from Lamplighter!\n');
    const data = node.dataDir;
    const free = await freeBytes(data);

    const big = randomBytes(2 * 1024 * 1024);
    await assert.rejects(node.deploy(app('Big'), { 'app.wasm': big }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'LL_STORAGE_FULL');
      assert.match(err.message, /ENOSPC: no space left on device/);
      assert.match(err.message, new RegExp(`the data directory ${data.replace(/[.]/g, '\\.')} is full`));
      return true;
    });
    assert.ok(lines.some((l) => l.level >= 50 && l.code === 'ENOSPC' && /LL_STORAGE_FULL|is full/.test(`${l.errorCode} ${l.msg}`)), 'the node logged it with its cause');
    assert.deepEqual(await tempFiles(data), [], 'no temp file stays');
    assert.equal(await freeBytes(data), free, 'the space the temp file took is free again');
    assert.equal(await served(), 'Old from Lamplighter!\n', 'the old revision keeps serving');

    // The same through the admin API, as `lamplighter deploy` uploads: 507 with the stable code.
    const res = await fetch(`${node.adminUrl}/v1/blobs/${digestOf(big)}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${node.platform.token}` },
      body: big,
    });
    assert.equal(res.status, 507);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'LL_STORAGE_FULL');
    assert.match(body.error.message, /ENOSPC/);
    assert.deepEqual(await tempFiles(data), []);
  });

  test('store full — a revision that does not fit is refused the same way, and the next deploy works once there is room', async (t) => {
    if (skip || !node) return t.skip(skip || 'no node');
    const data = node.dataDir;
    // Fill the disk: write until ENOSPC, keeping what was written.
    const filler = path.join(mountpoint, 'filler');
    await writeFile(filler, Buffer.alloc(1024 * 1024)).catch((err: NodeJS.ErrnoException) => assert.equal(err.code, 'ENOSPC'));
    assert.ok((await freeBytes(data)) < 4096, 'the disk is full');
    // Same module, new manifest: the blob is there, the revision file is what fails.
    await assert.rejects(node.deploy(app('New'), { 'app.wasm': HELLO }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'LL_STORAGE_FULL');
      assert.match(err.message, /Cannot store revision \d+ of app 'app'.*ENOSPC/);
      return true;
    });
    assert.deepEqual(await tempFiles(data), []);
    assert.equal(await served(), 'Old from Lamplighter!\n');
    await rm(filler);
    await node.deploy(app('New'), { 'app.wasm': HELLO });
    assert.equal(await served(), 'New from Lamplighter!\n');
  });
});
