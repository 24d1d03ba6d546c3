// The per-user cache of transpiled components: where it lives, and that what it reads is verified.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ComponentCache, componentCacheDir, type PreparedComponent } from '../src/runtime/component/index.js';

const DIGEST = 'ab'.repeat(32);

function prepared(): PreparedComponent {
  return {
    files: { 'component.js': new TextEncoder().encode('export function instantiate() {}'), 'component.core.wasm': new Uint8Array(4096).map((_, i) => i & 0xff) },
    entry: 'component.js',
    imports: ['wasi:io/poll@0.2.6'],
    exports: ['wasi:http/incoming-handler@0.2.6'],
    oneRequestPerInstance: false,
  };
}

describe('component cache', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-cache-test-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('component cache — lives under $XDG_CACHE_HOME/lamplighter, or ~/.cache/lamplighter when it is unset or relative', () => {
    assert.equal(componentCacheDir({ XDG_CACHE_HOME: '/var/cache/u1' }), '/var/cache/u1/lamplighter');
    assert.equal(componentCacheDir({}), path.join(homedir(), '.cache', 'lamplighter'));
    assert.equal(componentCacheDir({ XDG_CACHE_HOME: 'relative/dir' }), path.join(homedir(), '.cache', 'lamplighter'));
  });

  test('component cache — an entry is keyed by digest and jco version, and read back as written', async () => {
    const cache = new ComponentCache(dir, '1.2.3');
    assert.deepEqual(await cache.read(DIGEST), { kind: 'miss' });
    await cache.write(DIGEST, prepared());
    assert.match(path.basename(cache.fileFor(DIGEST)), new RegExp(`^component-${DIGEST}-jco1\\.2\\.3-v\\d+-r\\d+$`));
    const found = await cache.read(DIGEST);
    assert.equal(found.kind, 'hit');
    assert.deepEqual(found.kind === 'hit' ? found.prepared : undefined, prepared());
    // Another transpiler version does not see it; no temporary file is left behind.
    assert.deepEqual(await new ComponentCache(dir, '1.2.4').read(DIGEST), { kind: 'miss' });
    assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.tmp')), []);
  });

  const damages: Array<[string, (bytes: Buffer) => Buffer, RegExp]> = [
    ['empty', () => Buffer.alloc(0), /no valid header/],
    ['truncated', (b) => b.subarray(0, b.length - 100), /checksum/],
    ['one byte changed', (b) => Buffer.from(b).fill(b[b.length - 200] === 0x41 ? 0x42 : 0x41, b.length - 200, b.length - 199), /checksum/],
    ['another digest inside, checksum recomputed', (b) => reseal(Buffer.from(bodyOf(b).toString('latin1').replace(DIGEST, 'cd'.repeat(32)), 'latin1')), /not a transpiled component for this digest/],
    ['an index longer than the entry, checksum recomputed', (b) => reseal(Buffer.from(bodyOf(b)).fill(0xff, 0, 4)), /not a transpiled component for this digest/],
    ['file lengths that do not add up, checksum recomputed', (b) => reseal(Buffer.concat([bodyOf(b), Buffer.from('extra')])), /not a transpiled component for this digest/],
    ['not JSON, checksum recomputed', () => reseal(Buffer.concat([Buffer.from([0, 0, 0, 10]), Buffer.from('{"digest":')])), /not valid JSON/],
  ];
  for (const [name, damage, reason] of damages) {
    test(`component cache — a damaged entry (${name}) is reported, not trusted`, async () => {
      const cache = new ComponentCache(dir, '1.2.3');
      await cache.write(DIGEST, prepared());
      await writeFile(cache.fileFor(DIGEST), damage(await readFile(cache.fileFor(DIGEST))));
      const found = await cache.read(DIGEST);
      assert.equal(found.kind, 'damaged');
      assert.match(found.kind === 'damaged' ? found.reason : '', reason);
    });
  }
});

/** An entry's body: what follows its header line. */
function bodyOf(entry: Buffer): Buffer {
  return entry.subarray(entry.indexOf(0x0a) + 1);
}

/** A body with a correct header, as a writer with other content would have made it. */
function reseal(body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`lamplighter-component-cache/3 ${createHash('sha256').update(body).digest('hex')}\n`), body]);
}
