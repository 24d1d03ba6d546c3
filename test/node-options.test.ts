// The flags of `up` and `serve` made from the node settings' schema: switches, negatable switches, values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { addNodeOptions, givenFlags, platformOptionsOf } from '../src/cli/node-options.js';
import { NODE_SETTINGS, resolveNodeConfig, settingFlagOf } from '../src/config/index.js';

/** `up`'s flags parsed from `argv`, resolved with no environment and no config file. */
async function upWith(argv: string[]) {
  const cmd = addNodeOptions(new Command('up').exitOverride(), 'up');
  cmd.parse(argv, { from: 'user' });
  const config = await resolveNodeConfig({ command: 'up', flags: givenFlags(cmd, 'up'), env: {} });
  return { cmd, config };
}

test('node options — a negatable switch is turned off by --no-<name>, and config show says that flag set it (regression: special-cased by name)', async () => {
  const { cmd, config } = await upWith(['--no-function-output', '--watch']);
  const help = cmd.helpInformation();
  assert.match(help, /--no-function-output\s+do not show the functions' output/);
  assert.doesNotMatch(help, /--function-output\b/);
  assert.deepEqual(config.settings.get('function_output'), { key: 'function_output', value: false, source: 'flag', from: '--no-function-output', live: false, secret: false });
  assert.equal(config.settings.get('watch')?.value, true, 'a plain switch is turned on by its flag');

  const plain = await upWith([]);
  assert.equal(plain.config.settings.get('function_output')?.value, true);
  assert.equal(plain.config.settings.get('function_output')?.source, 'default');
});

test('node options — every negatable setting is a switch on by default, with its --no- flag in the help', () => {
  const negatable = NODE_SETTINGS.filter((s) => s.negatable);
  assert.ok(negatable.length > 0);
  const help = addNodeOptions(new Command('up'), 'up').helpInformation() + addNodeOptions(new Command('serve'), 'serve').helpInformation();
  for (const def of negatable) {
    assert.equal(def.valueName, undefined, `${def.key} is a switch`);
    assert.equal(def.default, true, `${def.key} is on unless turned off`);
    assert.ok(settingFlagOf(def).startsWith('--no-'));
    assert.ok(help.includes(settingFlagOf(def)), `${settingFlagOf(def)} in the help`);
  }
});

test('node options — component_workers and the limits_* defaults reach the platform, from a flag and from the environment', async () => {
  const cmd = addNodeOptions(new Command('serve').exitOverride(), 'serve');
  cmd.parse(['--component-workers', '3', '--limits-timeout', '2s'], { from: 'user' });
  const config = await resolveNodeConfig({ command: 'serve', flags: givenFlags(cmd, 'serve'), env: { LAMPLIGHTER_LIMITS_BODY_SIZE: '1KiB' } });
  const options = platformOptionsOf(config, { dataDir: '/nowhere' });
  assert.equal(options.componentWorkers, 3);
  assert.equal(options.limitDefaults?.timeoutMs, 2000);
  assert.equal(options.limitDefaults?.bodyBytes, 1024);
  assert.equal(options.limitDefaults?.maxPending, 1000, 'unset: the platform default');
  await assert.rejects(resolveNodeConfig({ command: 'serve', flags: {}, env: { LAMPLIGHTER_COMPONENT_WORKERS: '0' } }), /component_workers.*whole number from 1/);
});
