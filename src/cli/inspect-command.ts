// `lamplighter inspect`: what a running node is doing now; `inspect profile` and `inspect heap`
// write a CPU profile or a heap snapshot of it.
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidArgumentError, type Command } from 'commander';
import type { NodeInspection } from '../control/index.js';
import { AdminClient, type ClientOptions } from './admin-client.js';
import { withClientOptions } from './client-commands.js';
import type { CommandIo } from './command-io.js';
import { formatInspection } from './inspect-format.js';

interface InspectOptions extends ClientOptions {
  watch?: boolean;
  json?: boolean;
  interval: number;
  seconds: number;
  out?: string;
}

function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(n > 0)) throw new InvalidArgumentError(`must be a number of seconds above 0 (e.g. 10), got '${value}'`);
  return n;
}

/** Streams an answer's body into `file`. */
async function download(res: Response, file: string): Promise<void> {
  if (!res.body) throw new Error('The node answered with no body');
  await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), createWriteStream(file));
}

/** Registers `inspect [FUNCTION]`, `inspect profile` and `inspect heap` on `program`. */
export function registerInspectCommand(program: Command, io: CommandIo): void {
  withClientOptions(
    program
      .command('inspect')
      .argument('[function]', "one function's figures only; or 'profile' (a CPU profile) or 'heap' (a heap snapshot)")
      .description('show what a running node is doing now: instances, held requests, demand, scale decisions, breakers, sandbox workers, cluster nodes'),
  )
    .option('-w, --watch', 'redraw every --interval seconds until interrupted')
    .option('--interval <seconds>', 'seconds between redraws with --watch', positiveSeconds, 1)
    .option('--json', 'print the JSON the admin API answers')
    .option('--seconds <n>', 'inspect profile: seconds to sample the CPU', positiveSeconds, 10)
    .option('-o, --out <file>', 'inspect profile/heap: file to write (default lamplighter-<time>.cpuprofile or .heapsnapshot)')
    .action(async (what: string | undefined, opts: InspectOptions) => {
      const client = await AdminClient.from(opts);
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      if (what === 'profile') {
        const file = opts.out ?? `lamplighter-${stamp}.cpuprofile`;
        io.err(`Sampling the node's CPU for ${opts.seconds} s…`);
        await download(await client.call('POST', `/v1/inspect/profile?seconds=${opts.seconds}`), file);
        io.out(`Wrote ${file} (open it in Chrome DevTools: Performance, or a .cpuprofile viewer)`);
        return;
      }
      if (what === 'heap') {
        const file = opts.out ?? `lamplighter-${stamp}.heapsnapshot`;
        io.err('Taking a heap snapshot (the node pauses while V8 walks its heap)…');
        await download(await client.call('POST', '/v1/inspect/heap'), file);
        io.out(`Wrote ${file} (open it in Chrome DevTools: Memory)`);
        return;
      }
      const route = `/v1/inspect${what ? `?function=${encodeURIComponent(what)}` : ''}`;
      const show = async (): Promise<void> => {
        const inspection = await client.json<NodeInspection>('GET', route);
        io.out(opts.json ? JSON.stringify(inspection, null, 2) : formatInspection(inspection));
      };
      if (!opts.watch) return show();
      for (;;) {
        // Clear the screen and home the cursor, as `watch` does, when writing to a terminal.
        if (process.stdout.isTTY && !opts.json) process.stdout.write('\x1b[2J\x1b[H');
        await show();
        await new Promise((resolve) => setTimeout(resolve, opts.interval * 1000));
      }
    });
}
