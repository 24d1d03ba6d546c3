// Client commands find the token of a node `up` started on this machine, with no flag at all.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { CliProcess, HELLO_DIR, killAllChildren, runCli } from './cli-helpers.js';

after(killAllChildren);

test('local node — ls and inspect reach an `up` node by its admin URL alone, until it stops', async () => {
  const tmp = await mkdtemp(path.join(tmpdir(), 'lamplighter-local-'));
  const env = { TMPDIR: tmp, LAMPLIGHTER_TOKEN: undefined, LAMPLIGHTER_SERVER: undefined };
  const up = new CliProcess(['up', HELLO_DIR, '--port', '0', '--admin-port', '0', '--workers', '2'], { env });
  try {
    const [, admin] = await up.waitForOutput(/admin and \/metrics on (http:\/\/127\.0\.0\.1:\d+)\)/);
    const ls = await runCli(['ls', '--server', admin!], { cwd: tmp, env });
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^hello +1 +hello +wagi /m);
    const inspect = await runCli(['inspect', 'hello', '--server', admin!], { cwd: tmp, env });
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.match(inspect.stdout, /^hello +hello +1 +wagi /m);
    const notes = (await readdir(tmp)).filter((n) => n.startsWith('lamplighter-nodes-'));
    assert.equal(notes.length, 1, 'one note directory per user');

    const exit = await up.stop('SIGTERM', 5_000);
    assert.equal(exit.code, 0, up.stderr);
    assert.deepEqual((await readdir(tmp)).filter((n) => n.startsWith('lamplighter-nodes-')), [], 'the note (and its directory) go with the node');
    const after = await runCli(['ls', '--server', admin!], { cwd: tmp, env });
    assert.notEqual(after.code, 0);
  } finally {
    await up.stop('SIGKILL', 5_000).catch(() => undefined);
    await rm(tmp, { recursive: true, force: true });
  }
});
