// `lamplighter up --watch`: a changed source rebuilds with the function's build command and
// redeploys; a failed build leaves the last revision serving.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { CliProcess, HELLO_DIR, killAllChildren, wagiFixture } from './cli-helpers.js';

after(killAllChildren);

async function text(url: string, init?: RequestInit): Promise<string> {
  return (await fetch(url, init)).text();
}

async function eventually(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('up --watch — a change rebuilds and redeploys; a failed build keeps the last revision', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-watch-'));
  // The build copies whichever module `choice` names over the one the function serves.
  await copyFile(path.join(HELLO_DIR, 'hello.wasm'), path.join(dir, 'hello.wasm'));
  await copyFile(wagiFixture('echo'), path.join(dir, 'echo.wasm'));
  await copyFile(path.join(HELLO_DIR, 'hello.wasm'), path.join(dir, 'out.wasm'));
  await writeFile(path.join(dir, 'choice'), 'hello\n');
  await writeFile(
    path.join(dir, 'lamplighter.toml'),
    'name = "watched"\n[[function]]\nname = "watched"\nsource = "out.wasm"\nroutes = ["/w"]\nbuild = "test -f \\"$(cat choice).wasm\\" && cp \\"$(cat choice).wasm\\" out.wasm"\n',
  );
  const up = new CliProcess(['up', dir, '--port', '0', '--admin-port', '0', '--workers', '2', '--watch', '--no-function-output']);
  try {
    const [, gateway] = await up.waitForOutput(/Serving app 'watched' on (http:\/\/127\.0\.0\.1:\d+)/);
    await eventually('the watch to start', async () => /Watching .* for changes/.test(up.stderr), 10_000);
    assert.match(await text(`${gateway}/w`), /Hello/);

    await writeFile(path.join(dir, 'choice'), 'echo\n');
    await eventually('revision 2', async () => /Redeployed: revision 2 serves/.test(up.stderr), 15_000);
    assert.equal(await text(`${gateway}/w`, { method: 'POST', body: 'echoed' }), 'echoed', 'the rebuilt module serves');

    await writeFile(path.join(dir, 'choice'), 'missing\n');
    await eventually('the failed build', async () => /\[watched\] build failed \(`.*` exited 1\); still serving the last revision/.test(up.stderr), 15_000);
    assert.equal(await text(`${gateway}/w`, { method: 'POST', body: 'still' }), 'still');
    await new Promise((r) => setTimeout(r, 1000));
    assert.doesNotMatch(up.stderr, /revision 3/, 'nothing deployed after the failed build');
  } finally {
    await up.stop('SIGTERM', 5_000).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
});
