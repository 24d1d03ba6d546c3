// `lamplighter new` and `lamplighter build`: scaffold apps, build real components from JS and TS, serve them.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Command } from 'commander';
import { registerBuildCommand } from '../src/cli/build-command.js';
import { registerNewCommand } from '../src/cli/new-command.js';
import { LamplighterError, ManifestError, ModuleError } from '../src/errors/index.js';
import { loadManifest } from '../src/manifest/index.js';
import { ComponentCache, createComponentFactory, prepareComponent } from '../src/runtime/component/index.js';
import { digestOf } from '../src/store/index.js';
import { CliProcess, killAllChildren } from './cli-helpers.js';
import { buildFixtureComponent, COMPONENT_FIXTURES } from './component-helpers.js';
import { headerOf, makeInvocationRequest, readBody, withTimeout } from './instance-conformance.js';

/** Runs `lamplighter <args>` in-process with the build and new commands; returns what it printed. */
async function cli(...args: string[]): Promise<string[]> {
  const out: string[] = [];
  const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(`err: ${s}`) };
  const program = new Command('lamplighter').exitOverride().configureOutput({ writeErr: () => undefined });
  registerBuildCommand(program, io);
  registerNewCommand(program, io);
  await program.parseAsync(args, { from: 'user' });
  return out;
}

/** Serves one request with the component at `wasm`, deployed with the manifest in `dir`. */
async function serveOnce(dir: string, url: string): Promise<{ status: number; body: string; headers: Array<[string, string]> }> {
  const { manifest } = await loadManifest(dir);
  const spec = manifest.functions[0];
  assert.ok(spec && spec.source);
  const prepared = await prepareComponent(new Uint8Array(await readFile(path.join(dir, spec.source))), spec);
  const factory = createComponentFactory(prepared, spec, { log: () => undefined });
  const instance = factory.create('cli-test');
  try {
    await withTimeout(instance.ready, 30_000, 'ready');
    const response = await withTimeout(instance.handle(makeInvocationRequest({ url })), 30_000, url);
    return { status: response.status, body: (await readBody(response)).toString(), headers: response.headers };
  } finally {
    await instance.stop();
    await factory.close();
  }
}

describe('lamplighter new', () => {
  let parent: string;
  before(async () => {
    parent = await mkdtemp(path.join(tmpdir(), 'lamplighter-new-'));
  });
  after(async () => {
    await rm(parent, { recursive: true, force: true });
  });

  for (const [template, runtime, handler] of [
    ['wagi-c', 'wagi', 'handler.c'],
    ['js', 'component', 'handler.js'],
    ['ts', 'component', 'handler.ts'],
  ] as const) {
    test(`lamplighter new — --template ${template} writes a valid manifest (runtime = "${runtime}") and ${handler}`, async () => {
      const name = `app-${template}`;
      const printed = await cli('new', name, '--template', template, '--dir', parent);
      assert.match(printed[0] ?? '', /created .*lamplighter\.toml/);
      const dir = path.join(parent, name);
      assert.deepEqual((await readdir(dir)).sort(), ['README.md', handler, 'lamplighter.toml'].sort());
      const { manifest } = await loadManifest(dir);
      assert.equal(manifest.name, name);
      assert.equal(manifest.functions[0]?.runtime, runtime);
      assert.equal(manifest.functions[0]?.source, 'handler.wasm');
      assert.deepEqual(manifest.functions[0]?.allowedOutboundHosts, []);
    });
  }

  test('lamplighter new — refuses a directory that is not empty, and a bad name', async () => {
    await cli('new', 'taken', '--template', 'js', '--dir', parent);
    await assert.rejects(cli('new', 'taken', '--template', 'ts', '--dir', parent), (err: unknown) => {
      assert.ok(err instanceof ManifestError);
      assert.match(err.message, /exists and is not empty/);
      return true;
    });
    await assert.rejects(cli('new', 'Bad_Name', '--dir', parent), /lower-case letters, digits and dashes/);
  });

  test('lamplighter new — rejects an unknown template', async () => {
    await assert.rejects(cli('new', 'x', '--template', 'cobol', '--dir', parent), /expected one of wagi-c, js, ts/);
  });
});

describe('lamplighter build', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'lamplighter-build-test-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('lamplighter build — the ts template builds into a component that answers with the manifest env', { timeout: 180_000 }, async () => {
    await cli('new', 'hello-ts', '--template', 'ts', '--dir', work);
    const dir = path.join(work, 'hello-ts');
    const printed = await cli('build', path.join(dir, 'handler.ts'));
    assert.match(printed[0] ?? '', /built .*handler\.wasm \(\d+\.\d MiB\)/);
    const { status, body } = await serveOnce(dir, '/hi');
    assert.equal(status, 200);
    assert.equal(body, 'Hello from Lamplighter! You asked for /hi\n');
  });

  test('lamplighter build — a fetch event listener with a local import builds and answers', { timeout: 180_000 }, async () => {
    const dir = path.join(work, 'listener');
    await cli('new', 'listener', '--template', 'js', '--dir', work);
    const out = path.join(dir, 'handler.wasm');
    await cli('build', path.join(COMPONENT_FIXTURES, 'listener.js'), '-o', out);
    const { status, body, headers } = await serveOnce(dir, '/?name=lamp');
    assert.equal(status, 200);
    assert.equal(body, 'hello, lamp');
    assert.equal(headerOf({ status, headers, body: null }, 'x-style'), 'listener');
    // A listener that does not respond is the host's error, not the engine's plain-text 500.
    await assert.rejects(serveOnce(dir, '/?silent'), (err: unknown) => {
      assert.ok(err instanceof LamplighterError, String(err));
      assert.equal(err.code, 'LL_BAD_HANDLER_RESPONSE');
      assert.match(err.message, /returned no response: no fetch listener called respondWith\(\)/);
      return true;
    });
  });

  test('lamplighter build --isolation instance — a listener builds for reuse, deploys under isolation = "instance" and answers', { timeout: 180_000 }, async () => {
    await cli('new', 'reused', '--template', 'js', '--dir', work);
    const dir = path.join(work, 'reused');
    const manifestFile = path.join(dir, 'lamplighter.toml');
    const manifest = await readFile(manifestFile, 'utf8');
    assert.match(manifest, /runtime = "component"\n/);
    await writeFile(manifestFile, manifest.replace('runtime = "component"\n', 'runtime = "component"\nisolation = "instance"\n'));
    const printed = await cli('build', path.join(COMPONENT_FIXTURES, 'listener.js'), '-o', path.join(dir, 'handler.wasm'), '--isolation', 'instance');
    assert.match(printed[0] ?? '', /built .*handler\.wasm/);
    const { status, body, headers } = await serveOnce(dir, '/?name=again');
    assert.equal(status, 200);
    assert.equal(body, 'hello, again');
    assert.equal(headerOf({ status, headers, body: null }, 'x-style'), 'listener');
    await assert.rejects(serveOnce(dir, '/?silent'), (err: unknown) => err instanceof LamplighterError && err.code === 'LL_BAD_HANDLER_RESPONSE' && /no fetch listener called respondWith\(\)/.test(err.message));
    await assert.rejects(cli('build', path.join(COMPONENT_FIXTURES, 'listener.js'), '--isolation', 'reused'), /argument 'reused' is invalid\. Allowed choices are request, instance/);
  });

  const noHandler: Array<[string, string, string, RegExp]> = [
    ['a text file', 'notes.txt', 'Remember to buy milk.\n', /not a JavaScript or TypeScript module \(\.txt\)/],
    ['a module with neither', 'nothing.js', 'export const answer = 42;\n', /no default export and adds no 'fetch' event listener/],
    // Its top level runs in the probe: the rejection it leaves must not end the build's process.
    ['a module whose top level leaves a rejected promise', 'rejects.js', 'Promise.reject(new Error("left at the top level"));\nexport const answer = 42;\n', /no default export and adds no 'fetch' event listener/],
    ['a module with top-level await and neither', 'awaits.js', 'export const answer = await Promise.resolve(42);\n', /no default export and adds no 'fetch' event listener/],
    ['a default export without fetch', 'nofetch.ts', 'export default { handle(request: Request) { return new Response(request.url); } };\n', /an object without a fetch method/],
  ];
  for (const [what, file, source, reason] of noHandler) {
    test(`lamplighter build — ${what} is refused before componentize: it registers no fetch handler`, { timeout: 60_000 }, async () => {
      const entry = path.join(work, file);
      await writeFile(entry, source);
      const started = Date.now();
      await assert.rejects(cli('build', entry, '-o', path.join(work, `${file}.wasm`)), (err: unknown) => {
        assert.ok(err instanceof ModuleError, String(err));
        assert.match(err.message, new RegExp(`^Cannot build .*${file.replace('.', '\\.')}: `));
        assert.match(err.message, reason);
        assert.match(err.message, /export default \{ async fetch\(request, env\)/);
        assert.match(err.message, /addEventListener\('fetch'/);
        return true;
      });
      // Componentize alone takes 10-20 s; the check is a bundle and a probe.
      assert.ok(Date.now() - started < 8_000, `refused after ${Date.now() - started} ms`);
      assert.ok(!(await readdir(work)).includes(`${file}.wasm`));
    });
  }

  test('lamplighter build — a syntax error fails with the file and the bundler message', async () => {
    const broken = path.join(work, 'broken.ts');
    await writeFile(broken, 'export default { fetch( { return 1 } }\n');
    await assert.rejects(cli('build', broken), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, /Cannot build .*broken\.ts/);
      return true;
    });
  });
});

/** A port free a moment ago on loopback. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Sends a request to `url` as soon as its port accepts connections (retrying refused connections
 * every 10 ms, for at most `timeoutMs`); returns the status and body of the first answer.
 */
async function firstAnswer(url: string, proc: CliProcess, timeoutMs: number): Promise<{ status: number; body: string }> {
  const started = Date.now();
  for (;;) {
    assert.ok(!proc.exited, `lamplighter up exited\nstdout: ${proc.stdout}\nstderr: ${proc.stderr}`);
    assert.ok(Date.now() - started < timeoutMs, `nothing listened within ${timeoutMs} ms\nstderr: ${proc.stderr}`);
    try {
      const res = await fetch(url, { method: 'POST', body: 'first' });
      return { status: res.status, body: await res.text() };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

describe('lamplighter up — a component app', () => {
  let work: string;
  let app: string;
  let cacheHome: string;
  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'lamplighter-up-test-'));
    app = path.join(work, 'app');
    cacheHome = path.join(work, 'cache');
    await mkdir(app, { recursive: true });
    await writeFile(path.join(app, 'echo.wasm'), await buildFixtureComponent('echo.ts'));
    await writeFile(path.join(app, 'lamplighter.toml'), 'name = "hello"\n[[function]]\nname = "hello"\nruntime = "component"\nsource = "echo.wasm"\nroutes = ["/..."]\n');
  });
  after(async () => {
    killAllChildren();
    await rm(work, { recursive: true, force: true });
  });

  async function up(): Promise<{ answer: { status: number; body: string }; stderr: string; stdout: string }> {
    const port = await freePort();
    const proc = new CliProcess(['up', app, '--port', String(port), '--admin-port', '0'], { env: { XDG_CACHE_HOME: cacheHome } });
    try {
      const answer = await firstAnswer(`http://127.0.0.1:${port}/echo`, proc, 150_000);
      await proc.waitForOutput(/Serving app 'hello'/, 10_000);
      return { answer, stderr: proc.stderr, stdout: proc.stdout };
    } finally {
      await proc.stop('SIGINT', 20_000);
    }
  }

  test('lamplighter up — the first request answered is served by the app, never a 404 while it is prepared; slow steps are shown', { timeout: 200_000 }, async () => {
    const { answer, stderr } = await up();
    assert.deepEqual(answer, { status: 200, body: 'first' });
    assert.match(stderr, /^preparing component hello… \d+\.\d s \(transpiled\)$/m);
  });

  test('lamplighter up — a second up of the same component reads the per-user cache and does not transpile again', { timeout: 200_000 }, async () => {
    const entry = new ComponentCache(path.join(cacheHome, 'lamplighter')).fileFor(digestOf(await readFile(path.join(app, 'echo.wasm'))));
    const first = await stat(entry);
    const { answer, stderr } = await up();
    assert.deepEqual(answer, { status: 200, body: 'first' });
    assert.doesNotMatch(stderr, /transpiled/);
    const second = await stat(entry);
    assert.equal(second.ino, first.ino, 'the cache entry was read, not written again');
    assert.equal(second.mtimeMs, first.mtimeMs);
  });
});
