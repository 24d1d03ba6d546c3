// `lamplighter revisions` against a real node, and `completion` scripts run by a real bash.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { registerClientCommands } from '../src/cli/client-commands.js';
import { startTestNode, wagiApp, wagiFixture, type TestNode } from '../src/testing/index.js';
import { CLI, cliEnv, runInProcess } from './cli-helpers.js';

async function run(node: TestNode, args: string[]): Promise<string> {
  const result = await runInProcess(registerClientCommands, [...args, '--server', node.adminUrl, '--token', node.platform.token]);
  if (result.error) throw result.error;
  return result.out;
}

describe('revisions', () => {
  let node: TestNode;
  before(async () => {
    node = await startTestNode();
    await node.deploy(wagiApp('hello', 'hello', 'hello.wasm', ['/hello']), { 'hello.wasm': wagiFixture('../../../examples/hello/hello') });
    await node.deploy(wagiApp('hello', 'hello', 'echo.wasm', ['/hello']), { 'echo.wasm': wagiFixture('echo') });
  });
  after(() => node.close());

  test('revisions — newest first, the serving one marked, artifacts by name and short digest', async () => {
    const text = await run(node, ['revisions', 'hello']);
    const lines = text.split('\n');
    assert.match(lines[0]!, /^REV +CREATED +SERVING +ARTIFACTS$/);
    assert.match(lines[1]!, /^2 +\d{4}-\d\d-\d\dT\S+ +\* +echo\.wasm=[0-9a-f]{12}$/);
    assert.match(lines[2]!, /^1 +\d{4}-\d\d-\d\dT\S+ +hello\.wasm=[0-9a-f]{12}$/);
    await run(node, ['rollback', 'hello']);
    assert.match((await run(node, ['revisions', 'hello'])).split('\n')[2]!, /^1 +\S+ +\* +hello\.wasm=/, 'after a rollback the older one serves');
    const json = JSON.parse(await run(node, ['revisions', 'hello', '--json'])) as { revisions: Array<{ number: number }>; current: number };
    assert.deepEqual([json.revisions.map((r) => r.number).sort(), json.current], [[1, 2], 1]);
  });

  test('revisions — an unknown app is named', async () => {
    await assert.rejects(run(node, ['revisions', 'nope']), /No app named 'nope' on http:\/\/127\.0\.0\.1:\d+; `lamplighter ls` lists the apps/);
  });
});

describe('completion', () => {
  const script = (shell: string): string => {
    const result = spawnSync(process.execPath, [CLI, 'completion', shell], { env: cliEnv(), encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    return result.stdout;
  };

  test('completion — bash completes commands and each command\'s flags', () => {
    const complete = (words: string[]): string[] => {
      const body = `${script('bash')}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _lamplighter; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const result = spawnSync('bash', ['-c', body], { encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
      return result.stdout.split('\n').filter(Boolean);
    };
    assert.deepEqual(complete(['lamplighter', 're']), ['revisions']);
    assert.ok(complete(['lamplighter', '']).includes('inspect'));
    assert.ok(complete(['lamplighter', 'inspect', '--w']).includes('--watch'));
    assert.ok(complete(['lamplighter', 'up', '--var']).includes('--variables-file'));
  });

  test('completion — zsh and fish scripts name every command; another shell is refused', () => {
    for (const shell of ['zsh', 'fish']) {
      const text = script(shell);
      for (const command of ['up', 'serve', 'deploy', 'ls', 'revisions', 'inspect', 'logs', 'completion']) assert.match(text, new RegExp(`\\b${command}\\b`), `${shell}: ${command}`);
    }
    const ksh = spawnSync(process.execPath, [CLI, 'completion', 'ksh'], { env: cliEnv(), encoding: 'utf8' });
    assert.equal(ksh.status, 1);
    assert.match(ksh.stderr, /Cannot make completions for 'ksh': choose bash, zsh or fish/);
  });
});
