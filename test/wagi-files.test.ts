// Files shipped with a WAGI function: uploaded as artifacts, laid out on the node, preopened
// read-only as `/`; nothing else of the host is visible, and nothing can be changed.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseManifest } from '../src/manifest/index.js';
import { startTestNode, wagiFixture, type TestNode } from '../src/testing/index.js';

const APP = `name = "site"
[[function]]
name = "site"
source = "files.wasm"
routes = ["/site"]
files = ["static/**", { source = "assets", destination = "/assets" }, { source = "notes/readme.txt", destination = "/README" }]
[[function]]
name = "bare"
source = "files.wasm"
routes = ["/bare"]
`;

/** Writes the files the site app ships into its directory. */
async function writeSiteFiles(dir: string): Promise<void> {
    await mkdir(path.join(dir, 'static', 'css'), { recursive: true });
    await mkdir(path.join(dir, 'assets'), { recursive: true });
    await mkdir(path.join(dir, 'notes'), { recursive: true });
    await writeFile(path.join(dir, 'static', 'hello.txt'), 'hello from a shipped file\n');
    await writeFile(path.join(dir, 'static', 'css', 'site.css'), 'body { color: black }\n');
    await writeFile(path.join(dir, 'assets', 'logo.txt'), 'LOGO\n');
    await writeFile(path.join(dir, 'notes', 'readme.txt'), 'read me\n');
}

describe('wagi files', () => {
  let node: TestNode;
  const get = async (fn: string, query: string): Promise<string> => (await fetch(`${node.url}/${fn}?${query}`)).text();

  before(async () => {
    node = await startTestNode();
    const dir = await node.writeApp(APP, { 'files.wasm': wagiFixture('files') });
    await writeSiteFiles(dir);
    await writeFile(path.join(dir, 'secret.txt'), 'not shipped\n');
    await node.platform.deployDir(dir);
  });
  after(() => node.close());

  test('wagi files — shipped files are read at their paths, mounts at their destinations', async () => {
    assert.equal(await get('site', 'cat=/static/hello.txt'), 'hello from a shipped file\n');
    assert.equal(await get('site', 'cat=/static/css/site.css'), 'body { color: black }\n');
    assert.equal(await get('site', 'cat=/assets/logo.txt'), 'LOGO\n');
    assert.equal(await get('site', 'cat=/README'), 'read me\n');
    assert.equal(await get('site', 'stat=/static/hello.txt'), 'file 26\n');
    assert.equal(await get('site', 'stat=/static'), 'dir 0\n');
    assert.deepEqual((await get('site', 'ls=/')).split('\n').filter(Boolean).sort(), ['../', './', 'README', 'assets/', 'static/']);
    assert.deepEqual((await get('site', 'ls=/static')).split('\n').filter(Boolean).sort(), ['../', './', 'css/', 'hello.txt']);
  });

  test('wagi files — nothing else of the host is visible: not the app dir, not the node, not past the root', async () => {
    assert.equal(await get('site', 'cat=/secret.txt'), 'error ENOENT\n', 'an app file not shipped');
    assert.equal(await get('site', 'cat=/etc/passwd'), 'error ENOENT\n');
    assert.equal(await get('site', 'cat=/static/../../etc/passwd'), 'error ENOTCAPABLE\n');
    assert.equal(await get('site', 'cat=/static/hello.txt/x'), 'error ENOTDIR\n');
    assert.equal(await get('bare', 'cat=/static/hello.txt'), 'error ENOTCAPABLE\n', 'a function without files has no preopen');
    assert.equal(await get('bare', 'ls=/'), 'error ENOTCAPABLE\n');
  });

  test('wagi files — they are read-only: writing, making and removing are refused with EROFS', async () => {
    assert.equal(await get('site', 'write=/static/hello.txt'), 'error EROFS\n');
    assert.equal(await get('site', 'write=/static/new.txt'), 'error EROFS\n');
    assert.equal(await get('site', 'mkdir=/static/more'), 'error EROFS\n');
    assert.equal(await get('site', 'rm=/static/hello.txt'), 'error EROFS\n');
    assert.equal(await get('site', 'cat=/static/hello.txt'), 'hello from a shipped file\n', 'and the file is intact');
  });

  test('wagi files — laid out once per content under the data directory, shared by revisions alike', async () => {
    const before = await readdir(path.join(node.dataDir, 'files'));
    assert.equal(before.filter((n) => !n.startsWith('.')).length, 1);
    const dir = await node.writeApp(APP.replace('name = "site"\n', 'name = "site"\nversion = "2"\n'), { 'files.wasm': wagiFixture('files') });
    await writeSiteFiles(dir);
    await node.platform.deployDir(dir);
    assert.deepEqual(await readdir(path.join(node.dataDir, 'files')), before, 'the same files: the same directory');
  });

  test('wagi files — a mount that names nothing, and files for a process, are refused with what to do', async () => {
    const dir = await node.writeApp('name = "empty"\n[[function]]\nname = "empty"\nsource = "files.wasm"\nroutes = ["/empty"]\nfiles = ["public/**"]\n', { 'files.wasm': wagiFixture('files') });
    await assert.rejects(node.platform.deployDir(dir), /function 'empty': files entry 'public\/\*\*' names no file under/);
    assert.throws(() => parseManifest('name = "c"\n[[function]]\nname = "c"\nruntime = "process"\ncommand = ["srv"]\nroutes = ["/c"]\nfiles = ["static/**"]\n'), /files are shipped to WAGI modules and components .*; a process function reads its app directory instead/);
    assert.throws(() => parseManifest('name = "c"\n[[function]]\nname = "c"\nsource = "c.wasm"\nroutes = ["/c"]\nfiles = ["../etc/**"]\n'), /a files pattern is a path inside the app directory/);
    assert.throws(() => parseManifest('name = "c"\n[[function]]\nname = "c"\nsource = "c.wasm"\nroutes = ["/c"]\nfiles = [{ source = "a", destination = "rel" }]\n'), /files destination is an absolute path/);
  });
});

test('wagi files — paths resolve inside the preopen only, counted from the directory they are relative to, never through a link', async () => {
  const { PreopenedFiles, PREOPEN_FD, FileErrno } = await import('../src/runtime/wasm/wasi-files.js');
  const root = await mkdtemp(path.join(tmpdir(), 'lamplighter-preopen-'));
  try {
    await mkdir(path.join(root, 'a', 'b'), { recursive: true });
    await writeFile(path.join(root, 'a', 'b', 'f.txt'), 'f');
    const files = new PreopenedFiles(root);
    assert.deepEqual(files.resolve(PREOPEN_FD, 'a/../a/b/f.txt'), { inner: 'a/b/f.txt' });
    assert.deepEqual(files.resolve(PREOPEN_FD, './a/b/'), { inner: 'a/b' });
    assert.deepEqual(files.resolve(PREOPEN_FD, '.'), { inner: '' });
    assert.deepEqual(files.resolve(PREOPEN_FD, 'a/../../x'), { errno: FileErrno.NOTCAPABLE });
    assert.deepEqual(files.resolve(PREOPEN_FD, '/etc/passwd'), { errno: FileErrno.NOTCAPABLE });
    assert.deepEqual(files.resolve(PREOPEN_FD + 7, 'a'), { errno: FileErrno.BADF });
    const opened = files.open('a', 0, 0n);
    assert.ok('fd' in opened);
    assert.deepEqual(files.resolve(opened.fd, '../a/b/f.txt'), { inner: 'a/b/f.txt' }, 'from a/, one level up is the root');
    assert.deepEqual(files.resolve(opened.fd, '../../x'), { errno: FileErrno.NOTCAPABLE });
    assert.deepEqual(files.open('a/b/f.txt', 1, 0n), { errno: FileErrno.ROFS }, 'O_CREAT is refused');
    assert.deepEqual(files.open('a/b/f.txt', 0, 1n << 6n), { errno: FileErrno.ROFS }, 'a write right is refused');
    assert.deepEqual(files.open('a/b/f.txt', 2, 0n), { errno: FileErrno.NOTDIR });
    assert.deepEqual(files.open('missing', 0, 0n), { errno: FileErrno.NOENT });
    // A link, last on the path or before it, is never followed: it could lead out.
    await symlink('/etc', path.join(root, 'a', 'out'));
    await symlink('/etc/hostname', path.join(root, 'a', 'host'));
    assert.equal(files.statPath('a/out/hostname'), FileErrno.NOTCAPABLE);
    assert.deepEqual(files.open('a/out/hostname', 0, 0n), { errno: FileErrno.NOTCAPABLE });
    assert.deepEqual(files.open('a/host', 0, 0n), { errno: FileErrno.NOTCAPABLE });
    assert.deepEqual(files.list('a').map((e) => e.name), ['.', '..', 'b'], 'links are not listed');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('wagi files — a restart reads shipped files from the store only when their directory is missing', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'lamplighter-files-restart-'));
  try {
    const first = await startTestNode({ dataDir });
    const dir = await first.writeApp(APP, { 'files.wasm': wagiFixture('files') });
    await writeSiteFiles(dir);
    await first.platform.deployDir(dir);
    await first.close();
    // The blob of one shipped file goes missing from the store; its laid-out copy stays.
    const blob = path.join(dataDir, 'blobs', 'sha256');
    const { createHash } = await import('node:crypto');
    const digest = createHash('sha256').update('LOGO\n').digest('hex');
    await rm(path.join(blob, digest.slice(0, 2), digest));
    const again = await startTestNode({ dataDir });
    try {
      assert.equal(await (await fetch(`${again.url}/site?cat=/assets/logo.txt`)).text(), 'LOGO\n', 'served from the layout, the store not read');
    } finally {
      await again.close();
    }
    // Without the layout the file must come from the store, and its absence is named.
    await rm(path.join(dataDir, 'files'), { recursive: true });
    const bare = await startTestNode({ dataDir });
    try {
      assert.equal((await fetch(`${bare.url}/site?cat=/assets/logo.txt`)).status, 404, 'the app could not be restored');
      assert.match(JSON.stringify(bare.platform.list()), /artifact 'assets\/logo\.txt' \(sha256 [0-9a-f]{64}\) is missing from the store/);
    } finally {
      await bare.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
