// Files shipped with a component function: a read-only wasi:filesystem preopen `/`, nothing else
// of the host, and the same view on every request of a restored instance.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestNode, type TestNode } from '../src/testing/index.js';
import { buildCachedComponent, COMPONENT_FIXTURES } from './component-helpers.js';

/** One component function, run one request at a time on one instance; `extra` adds its files lines. */
function fileFunction(name: string, source: string, route: string, extra: string): string {
  return `[[function]]\nname = "${name}"\nruntime = "component"\nsource = "${source}"\nroutes = ["${route}"]\n${extra}[function.limits]\nconcurrency = 1\n[function.scale]\nmax = 1\n`;
}

const ALL_FILES = 'files = ["static/**", { source = "assets", destination = "/assets" }]\nexclude_files = ["static/**/*.bak"]\n';
const STATIC_FILES = 'strip_prefix = true\nfiles = ["static/**"]\n';

const APP = [
  'name = "files"\n',
  fileFunction('site', 'reader.wasm', '/site', ALL_FILES),
  fileFunction('cached', 'cached.wasm', '/cached/...', STATIC_FILES),
  fileFunction('asks', 'asks.wasm', '/asks/...', STATIC_FILES),
  fileFunction('libc', 'libc.wasm', '/libc/...', `strip_prefix = true\n${ALL_FILES}`),
  '[[function]]\nname = "bare"\nruntime = "component"\nsource = "reader.wasm"\nroutes = ["/bare"]\n',
].join('\n');

const HELLO = 'hello from a shipped file\n';
/** Every byte value, twice: text decoding anywhere on the way would change it. */
const BINARY = Buffer.from([...Array(512).keys()].map((i) => i % 256));
/** Larger than one 64 KiB read, and than the stream window. */
const BIG = randomBytes(200 * 1024 + 17);

interface JcoBuild {
  parse(wat: string): Promise<Uint8Array>;
  componentEmbed(options: { binary: Uint8Array; witSource: string; world: string }): Promise<Uint8Array>;
  componentNew(core: Uint8Array, adapters: undefined): Promise<Uint8Array>;
}

/** files.wat as a component; `cacheAtInit` makes it take its preopen while initialising. */
async function buildFilesComponent(cacheAtInit: boolean): Promise<Uint8Array> {
  const source = (await readFile(path.join(COMPONENT_FIXTURES, 'files.wat'), 'utf8')).replace('(i32.const CACHE_AT_INIT)', `(i32.const ${cacheAtInit ? 1 : 0})`);
  const witSource = await readFile(path.join(COMPONENT_FIXTURES, 'files.wit'), 'utf8');
  const jco = (await import('@bytecodealliance/jco')) as unknown as JcoBuild;
  return jco.componentNew(await jco.componentEmbed({ binary: await jco.parse(source), witSource, world: 'files' }), undefined);
}

/** files-libc.wasm (a wasi-libc reactor, built by scripts/build-wasm.sh) with jco's preview1 reactor adapter, as a component. */
async function buildLibcComponent(): Promise<Uint8Array> {
  const witSource = await readFile(path.join(COMPONENT_FIXTURES, 'files.wit'), 'utf8');
  const adapter = await readFile(new URL('../../node_modules/@bytecodealliance/jco/lib/wasi_snapshot_preview1.reactor.wasm', import.meta.url));
  const jco = (await import('@bytecodealliance/jco')) as unknown as JcoAdapt;
  const core = await jco.componentEmbed({ binary: await readFile(path.join(COMPONENT_FIXTURES, 'files-libc.wasm')), witSource, world: 'files-libc' });
  return jco.componentNew(core, [['wasi_snapshot_preview1', adapter]]);
}

interface JcoAdapt {
  componentEmbed(options: { binary: Uint8Array; witSource: string; world: string }): Promise<Uint8Array>;
  componentNew(core: Uint8Array, adapters: Array<[string, Uint8Array]>): Promise<Uint8Array>;
}

/** A GET whose path goes out exactly as written (fetch would resolve `..` first). */
function rawGet(base: string, rawPath: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/`, { path: rawPath }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** files-reader.js built with `lamplighter build` (10-40 s; kept under the temp dir by content, world and tool versions). */
async function buildReaderComponent(): Promise<Uint8Array> {
  return (await buildCachedComponent(path.join(COMPONENT_FIXTURES, 'files-reader.js'))).component;
}

describe('component files', () => {
  let node: TestNode;
  let layout: string;
  const get = (url: string): Promise<Response> => fetch(`${node.url}${url}`);
  const site = async (op: string, file = ''): Promise<{ status: number; text: string }> => {
    const res = await get(`/site?op=${op}&path=${encodeURIComponent(file)}`);
    return { status: res.status, text: await res.text() };
  };
  const siteBytes = async (op: string, file: string): Promise<Buffer> => {
    const res = await get(`/site?op=${op}&path=${encodeURIComponent(file)}`);
    assert.equal(res.status, 200, `${op} ${file}`);
    return Buffer.from(await res.arrayBuffer());
  };

  before(async () => {
    const [reader, cached, asks, libc] = await Promise.all([buildReaderComponent(), buildFilesComponent(true), buildFilesComponent(false), buildLibcComponent()]);
    node = await startTestNode();
    const dir = await node.writeApp(APP, { 'reader.wasm': reader, 'cached.wasm': cached, 'asks.wasm': asks, 'libc.wasm': libc });
    await mkdir(path.join(dir, 'static', 'css'), { recursive: true });
    await mkdir(path.join(dir, 'assets'), { recursive: true });
    await writeFile(path.join(dir, 'static', 'hello.txt'), HELLO);
    await writeFile(path.join(dir, 'static', 'bin.dat'), BINARY);
    await writeFile(path.join(dir, 'static', 'big.bin'), BIG);
    await writeFile(path.join(dir, 'static', 'css', 'site.css'), 'body { color: black }\n');
    await writeFile(path.join(dir, 'static', 'draft.bak'), 'left out by exclude_files\n');
    await writeFile(path.join(dir, 'assets', 'logo.txt'), 'LOGO\n');
    await writeFile(path.join(dir, 'secret.txt'), 'not shipped\n');
    await node.platform.deployDir(dir);
    // The site function's layout (the one with /assets); links are put in by hand, as nothing the
    // node lays out is ever a link, to show the guest cannot follow one out.
    const root = path.join(node.dataDir, 'files');
    for (const id of await readdir(root)) {
      if (await readdir(path.join(root, id)).then((names) => names.includes('assets'), () => false)) layout = path.join(root, id);
    }
    assert.ok(layout, 'the site function has a files directory');
    await symlink('/etc/hostname', path.join(layout, 'hostname-link'));
    await symlink('/etc', path.join(layout, 'etc-link'));
  });
  after(() => node?.close());

  test('component files — a file reads back byte for byte: text, binary, larger than 64 KiB; by read and by stream', async () => {
    assert.equal((await siteBytes('cat', 'static/hello.txt')).toString(), HELLO);
    assert.deepEqual(await siteBytes('cat', 'static/bin.dat'), BINARY);
    assert.deepEqual(await siteBytes('cat', 'static/big.bin'), BIG);
    assert.deepEqual(await siteBytes('stream', 'static/big.bin'), BIG);
    assert.deepEqual(await siteBytes('stream', 'static/bin.dat'), BINARY);
    assert.equal((await siteBytes('cat', 'static/css/../hello.txt')).toString(), HELLO, 'a climb that stays inside is fine');
  });

  test('component files — listings, stats, types; a { source, destination } entry appears at its destination', async () => {
    assert.deepEqual(await site('ls'), { status: 200, text: 'assets/\nstatic/' });
    assert.deepEqual(await site('ls', 'static'), { status: 200, text: 'big.bin\nbin.dat\ncss/\nhello.txt' }, 'exclude_files left draft.bak out');
    assert.deepEqual(await site('ls', 'assets'), { status: 200, text: 'logo.txt' });
    assert.equal((await siteBytes('cat', 'assets/logo.txt')).toString(), 'LOGO\n');
    assert.deepEqual(await site('stat', 'static/big.bin'), { status: 200, text: `regular-file ${BIG.length}` });
    assert.deepEqual(await site('stat', 'static'), { status: 200, text: 'directory 0' });
    assert.deepEqual(await site('stat'), { status: 200, text: 'directory 0' });
    const type = await site('type', 'static/hello.txt');
    assert.match(type.text, /^regular-file \{"read":true,"write":false,/);
    assert.deepEqual(await site('same', 'static/hello.txt,static/css/../hello.txt'), { status: 200, text: 'true true' });
    assert.deepEqual(await site('same', 'static/hello.txt,static/bin.dat'), { status: 200, text: 'false false' });
  });

  test('component files — a missing file is the handler\'s own 404; a function without files has no preopen', async () => {
    assert.deepEqual(await site('cat', 'static/missing.txt'), { status: 404, text: 'error no-entry' });
    assert.deepEqual(await site('cat', 'static/draft.bak'), { status: 404, text: 'error no-entry' }, 'excluded');
    assert.deepEqual(await site('cat', 'secret.txt'), { status: 404, text: 'error no-entry' }, 'an app file not shipped');
    assert.deepEqual(await site('cat', 'static/hello.txt/x'), { status: 403, text: 'error not-directory' });
    assert.deepEqual(await site('ls', 'static/hello.txt'), { status: 403, text: 'error not-directory' });
    const bare = await get('/bare?op=cat&path=static/hello.txt');
    assert.deepEqual({ status: bare.status, text: await bare.text() }, { status: 404, text: 'no preopen' });
  });

  test('component files — read-only: opening to write, create or truncate, writing, making and removing are refused', async () => {
    for (const op of ['write', 'create', 'truncate', 'write-at', 'write-stream', 'unlink']) {
      assert.deepEqual(await site(op, 'static/hello.txt'), { status: 403, text: 'error read-only' }, op);
    }
    assert.deepEqual(await site('create', 'static/new.txt'), { status: 403, text: 'error read-only' });
    assert.deepEqual(await site('mkdir', 'static/more'), { status: 403, text: 'error read-only' });
    assert.deepEqual(await site('readlink', 'static/hello.txt'), { status: 403, text: 'error invalid' });
    assert.equal((await siteBytes('cat', 'static/hello.txt')).toString(), HELLO, 'and the file is intact');
  });

  test('component files — nothing else of the host: no climb out, no absolute path, no link followed out', async () => {
    const refused = { status: 403, text: 'error not-permitted' };
    assert.deepEqual(await site('cat', '../secret.txt'), refused);
    assert.deepEqual(await site('cat', 'static/../../etc/hostname'), refused);
    assert.deepEqual(await site('cat', '/etc/hostname'), refused);
    assert.deepEqual(await site('stat', '../'), refused);
    assert.deepEqual(await site('ls', '..'), refused);
    assert.deepEqual(await site('cat', 'etc/hostname'), { status: 404, text: 'error no-entry' }, 'the host root is not the preopen');
    assert.deepEqual(await site('cat', 'hostname-link'), refused, 'a link to a host file');
    assert.deepEqual(await site('cat', 'etc-link/hostname'), refused, 'a link to a host directory, on the way');
    assert.deepEqual(await site('stat', 'etc-link/hostname'), refused);
    assert.deepEqual(await site('readlink', 'hostname-link'), refused);
    assert.deepEqual(await site('ls'), { status: 200, text: 'assets/\nstatic/' }, 'links are not listed');
  });

  test('component files — a JS handler that keeps its preopen reads the same on 20 requests of one restored instance', async () => {
    for (let i = 0; i < 20; i++) assert.deepEqual(await siteBytes('cat', 'static/bin.dat'), BINARY, `request ${i + 1}`);
  });

  test('component files — a preopen taken while initialising stays valid on 20 requests of one restored instance', async () => {
    for (const fn of ['cached', 'asks']) {
      for (let i = 0; i < 20; i++) {
        const res = await get(`/${fn}/static/hello.txt`);
        assert.deepEqual({ status: res.status, text: await res.text() }, { status: 200, text: HELLO }, `${fn}, request ${i + 1}`);
      }
      const missing = await get(`/${fn}/static/missing.txt`);
      assert.deepEqual({ status: missing.status, text: await missing.text() }, { status: 404, text: 'error 20' }, 'no-entry is error code 20');
    }
    const logs = node.platform.logs.recent(['cached', 'asks']).map((l) => l.text).join('');
    assert.doesNotMatch(logs, /cannot be restored|was replaced/);
  });

  test('component files — a descriptor left open by one request is gone in the next', async () => {
    for (const fn of ['cached', 'asks']) {
      const opened = await get(`/${fn}/static/hello.txt`);
      assert.equal(await opened.text(), HELLO);
      // Handle 2 is the descriptor the request above opened and left open.
      const stale = await get(`/${fn}/!`);
      await stale.arrayBuffer();
      assert.equal(stale.status, 500, `${fn}: the stale handle traps`);
      const again = await get(`/${fn}/static/hello.txt`);
      assert.equal(await again.text(), HELLO, `${fn}: and the next request is served`);
    }
  });

  test('component files — a C handler reads them through wasi-libc and the preview1 adapter, on 20 restored requests', async () => {
    const libc = async (p: string): Promise<{ status: number; text: string }> => {
      const res = await get(`/libc${p}`);
      return { status: res.status, text: await res.text() };
    };
    for (let i = 0; i < 20; i++) assert.deepEqual(await libc('/static/hello.txt'), { status: 200, text: HELLO }, `request ${i + 1}`);
    // Restored, not replaced (reading the big file below grows its memory, and that replaces it).
    assert.doesNotMatch(node.platform.logs.recent(['libc']).map((l) => l.text).join(''), /cannot be restored|was replaced/);
    assert.deepEqual(Buffer.from(await (await get('/libc/static/bin.dat')).arrayBuffer()), BINARY);
    assert.deepEqual(Buffer.from(await (await get('/libc/static/big.bin')).arrayBuffer()), BIG);
    assert.deepEqual(await libc('/assets/logo.txt'), { status: 200, text: 'LOGO\n' });
    assert.deepEqual((await libc('/ls/static')).text.split('\n').filter(Boolean).sort(), ['big.bin', 'bin.dat', 'css/', 'hello.txt']);
    assert.deepEqual(await libc('/static/missing.txt'), { status: 404, text: 'error ENOENT' });
    assert.deepEqual(await libc('/static/draft.bak'), { status: 404, text: 'error ENOENT' });
    assert.deepEqual(await libc('/etc/hostname'), { status: 404, text: 'error ENOENT' }, 'the host root is not the preopen');
    assert.deepEqual(await libc('/write/static/hello.txt'), { status: 403, text: 'error EROFS' });
    assert.deepEqual(await libc('/write/static/new.txt'), { status: 403, text: 'error EROFS' });
    assert.deepEqual(await libc('/hostname-link'), { status: 403, text: 'error EPERM' });
    assert.deepEqual(await libc('/etc-link/hostname'), { status: 403, text: 'error EPERM' });
    const climb = await rawGet(node.url, '/libc/static/../../etc/hostname');
    assert.deepEqual({ status: climb.status, text: climb.text }, { status: 403, text: 'error EPERM' }, 'a climb out is refused by the preopen, not found elsewhere');
    assert.equal((await libc('/static/hello.txt')).text, HELLO, 'and the file is intact');
  });
});
