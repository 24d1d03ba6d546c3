// `lamplighter config show`: the settings a node would run with, and where each came from.
import type { Command } from 'commander';
import { describeConfig, NODE_CONFIG_FILE } from '../config/index.js';
import type { CommandIo } from './command-io.js';
import { addNodeOptions, nodeConfigOf } from './node-options.js';
import { DEFAULT_DATA_DIR } from './admin-client.js';
import { table } from './ls-format.js';

/** Registers `config show` on `program`. */
export function registerConfigCommand(program: Command, io: CommandIo): void {
  const config = program.command('config').description("a node's settings: flags, LAMPLIGHTER_* variables, the config file, defaults");
  addNodeOptions(
    config.command('show').description(`print the settings \`lamplighter serve\` would run with here (the same flags, the environment, ${NODE_CONFIG_FILE}) and where each came from`),
    'serve',
  )
    .option('--json', 'print JSON: { file, settings: [{ key, value, source, from, live }] }')
    .action(async (_options: unknown, cmd: Command) => {
      const resolved = describeConfig(await nodeConfigOf(cmd, 'serve', DEFAULT_DATA_DIR));
      if (cmd.getOptionValue('json') === true) {
        io.out(JSON.stringify(resolved, null, 2));
        return;
      }
      const rows = [['KEY', 'VALUE', 'SOURCE']];
      for (const s of resolved.settings) {
        const value = s.value === null ? '-' : Array.isArray(s.value) ? s.value.join(',') : String(s.value);
        const source = s.source === null ? '-' : s.source === 'default' ? 'default' : `${s.source}: ${s.from}`;
        rows.push([s.live ? `${s.key} (live)` : s.key, value, source]);
      }
      io.out(`Config file: ${resolved.file ?? `none (${NODE_CONFIG_FILE} in the data directory, or --config FILE)`}`);
      io.out(table(rows));
    });
}
