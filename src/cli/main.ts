#!/usr/bin/env node
// The `lamplighter` command line.
import './heap-tuning.js';
import { Command, CommanderError } from 'commander';
import { isLamplighterError } from '../errors/index.js';
import { registerBenchCommand } from './bench-command.js';
import { registerBuildCommand } from './build-command.js';
import { registerNewCommand } from './new-command.js';
import { registerClientCommands } from './client-commands.js';
import { registerInspectCommand } from './inspect-command.js';
import { registerCompletionCommand } from './completion-command.js';
import { registerConfigCommand } from './config-command.js';
import { registerVariablesCommand } from './variables-command.js';
import { STDIO } from './command-io.js';
import { registerServerCommands } from './server-commands.js';

const io = STDIO;

const program = new Command('lamplighter')
  .description('Serve WebAssembly and process HTTP functions behind one gateway; lit on demand, put out when idle.')
  .version('0.1.0')
  .showHelpAfterError();

registerServerCommands(program, io);
registerClientCommands(program, io);
registerInspectCommand(program, io);
registerBenchCommand(program, io);
registerBuildCommand(program, io);
registerNewCommand(program, io);
registerConfigCommand(program, io);
registerVariablesCommand(program, io);
registerCompletionCommand(program, io);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  const message = isLamplighterError(err) ? `${err.message} (${err.code})` : err instanceof Error ? err.message : String(err);
  io.err(`lamplighter: ${message}`);
  process.exit(1);
}
