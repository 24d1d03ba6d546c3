// A supervisor's SIGTERM the moment `up` says it serves is a graceful stop, never a kill: the
// handler is in place before the line is printed (a signal's default action ends a process at once).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { CliProcess, HELLO_DIR, killAllChildren } from './cli-helpers.js';

after(killAllChildren);

test('signals — SIGTERM right after the serving line drains and exits 0, every time', async () => {
  const exits: Array<number | null> = [];
  for (let i = 0; i < 12; i++) {
    const up = new CliProcess(['up', HELLO_DIR, '--port', '0', '--admin-port', '0', '--workers', '2', '--no-function-output']);
    await up.waitForOutput(/Serving app 'hello'/);
    const exit = await up.stop('SIGTERM', 10_000);
    exits.push(exit.code);
    assert.equal(exit.signal, null, `run ${i}: killed by ${exit.signal}\n${up.stdout}\n${up.stderr}`);
  }
  assert.deepEqual(exits, Array(12).fill(0));
});
