// `lamplighter variables set|rm|ls`: app variable values kept by the cluster, for every node.
import type { Command } from 'commander';
import { AdminClient, type ClientOptions } from './admin-client.js';
import { withClientOptions } from './client-commands.js';
import type { CommandIo } from './command-io.js';

/** Reads standard input whole (a secret given with `--stdin` never appears in a shell's history). */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** Registers `variables set`, `variables rm` and `variables ls` on `program`. */
export function registerVariablesCommand(program: Command, io: CommandIo): void {
  const variables = program.command('variables').description("app variable values kept by the cluster (JetStream KV), read by every node's next build");
  withClientOptions(variables.command('set').argument('<name>', 'variable name').argument('[value]', 'its value (or --stdin)').description('set a variable for every node of the cluster'))
    .option('--stdin', 'read the value from standard input')
    .action(async (name: string, value: string | undefined, opts: ClientOptions & { stdin?: boolean }) => {
      if (value === undefined && !opts.stdin) throw new Error('Give the value, or --stdin to read it from standard input');
      if (value !== undefined && opts.stdin) throw new Error('Give the value or --stdin, not both');
      const client = await AdminClient.from(opts);
      await client.json('PUT', `/v1/variables/${encodeURIComponent(name)}`, { value: value ?? (await readStdin()) });
      io.out(`Set variable '${name}'; apps that use it take it at their next deploy (or a node's restart)`);
    });
  withClientOptions(variables.command('rm').argument('<name>', 'variable name').description("remove a variable's value from the cluster"))
    .action(async (name: string, opts: ClientOptions) => {
      const client = await AdminClient.from(opts);
      await client.json('DELETE', `/v1/variables/${encodeURIComponent(name)}`);
      io.out(`Removed variable '${name}'`);
    });
  withClientOptions(variables.command('ls').description('list the variables that have a value in the cluster (names only)'))
    .action(async (opts: ClientOptions) => {
      const client = await AdminClient.from(opts);
      const { names } = await client.json<{ names: string[] }>('GET', '/v1/variables');
      io.out(names.length === 0 ? 'No variables set in the cluster.' : names.join('\n'));
    });
}
