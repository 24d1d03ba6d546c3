// CLI commands that talk to a running node: deploy, ls, rm, rollback, logs.
import { InvalidArgumentError, type Command } from 'commander';
import type { AppStatus } from '../control/index.js';
import { loadManifest, readArtifact } from '../manifest/index.js';
import { digestOf } from '../store/index.js';
import { AdminClient, DEFAULT_DATA_DIR, DEFAULT_SERVER, type ClientOptions } from './admin-client.js';
import type { CommandIo } from './command-io.js';

export type { CommandIo } from './command-io.js';

function withClientOptions(cmd: Command): Command {
  return cmd
    .option('--server <url>', `admin API of the node (default: $LAMPLIGHTER_SERVER, then ${DEFAULT_SERVER})`)
    .option('--token <token>', 'admin token (default: $LAMPLIGHTER_TOKEN, then <data>/token)')
    .option('--data <dir>', 'data directory of a local node, to read its token', DEFAULT_DATA_DIR);
}

/** Uploads what the node lacks of an app directory's artifacts and deploys it. */
export async function deployDirectory(client: AdminClient, dir: string): Promise<{ app: string; revision: number; unchanged?: boolean }> {
  const { manifest, dir: appDir, text } = await loadManifest(dir);
  const artifacts: Record<string, string> = {};
  const bytesByDigest = new Map<string, Buffer>();
  for (const fn of manifest.functions) {
    if (!fn.source || artifacts[fn.source]) continue;
    const bytes = await readArtifact(appDir, fn);
    const digest = digestOf(bytes);
    artifacts[fn.source] = digest;
    bytesByDigest.set(digest, bytes);
  }
  const { missing } = await client.json<{ missing: string[] }>('POST', '/v1/blobs/missing', { digests: [...bytesByDigest.keys()] });
  for (const digest of missing) await client.call('PUT', `/v1/blobs/${digest}`, undefined, bytesByDigest.get(digest));
  return client.json('POST', '/v1/apps', { manifest: text, artifacts, appDir });
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** Formats `ls` output: a row per function, then a line per app restored from another revision than its current one. */
export function formatApps(apps: AppStatus[]): string {
  if (apps.length === 0) return 'No apps deployed.';
  const rows = [['APP', 'REV', 'FUNCTION', 'RUNTIME', 'INSTANCES', 'PENDING', 'STATUS', 'ROUTES']];
  const notes: string[] = [];
  for (const app of apps) {
    for (const fn of app.functions) {
      rows.push([app.name, String(app.revision), fn.name, fn.runtime, String(fn.instances), String(fn.pending), fn.status === 'failing' ? `failing: ${fn.lastFailure ?? ''}` : fn.status, fn.routes.join(' ')]);
    }
    if (app.restored) notes.push(`App '${app.name}' ${app.restored.message}`);
  }
  return [table(rows), ...(notes.length ? ['', ...notes] : [])].join('\n');
}

/** Parses `logs -n`: a whole number of lines, 0 or more. */
function lineCount(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(`-n must be a number of lines, 0 or more (e.g. -n 50), got '${value}'`);
  }
  return n;
}

/** Registers deploy, ls, rm, rollback and logs on `program`. */
export function registerClientCommands(program: Command, io: CommandIo): void {
  withClientOptions(program.command('deploy').argument('[dir]', 'app directory holding lamplighter.toml', '.').description('deploy an app to a running node (uploads only missing artifacts)'))
    .action(async (dir: string, opts: ClientOptions) => {
      const client = await AdminClient.from(opts);
      const result = await deployDirectory(client, dir);
      io.out(result.unchanged ? `Unchanged: app '${result.app}' revision ${result.revision} already serves this` : `Deployed app '${result.app}' revision ${result.revision}`);
    });

  withClientOptions(program.command('ls').description('list deployed apps and their functions'))
    .option('--json', 'print JSON')
    .action(async (opts: ClientOptions & { json?: boolean }) => {
      const client = await AdminClient.from(opts);
      const { apps } = await client.json<{ apps: AppStatus[] }>('GET', '/v1/apps');
      io.out(opts.json ? JSON.stringify(apps, null, 2) : formatApps(apps));
    });

  withClientOptions(program.command('rm').argument('<name>', 'app name').description('remove an app'))
    .action(async (name: string, opts: ClientOptions) => {
      const client = await AdminClient.from(opts);
      await client.json('DELETE', `/v1/apps/${encodeURIComponent(name)}`);
      io.out(`Removed app '${name}'`);
    });

  withClientOptions(program.command('rollback').argument('<name>', 'app name').argument('[revision]', 'revision number (default: the one before the current)').description('serve an older revision of an app'))
    .action(async (name: string, revision: string | undefined, opts: ClientOptions) => {
      const client = await AdminClient.from(opts);
      const body = revision === undefined ? {} : { revision: Number(revision) };
      if (revision !== undefined && !Number.isInteger(body.revision)) throw new Error(`Revision must be a number, got '${revision}'`);
      const result = await client.json<{ revision: number }>('POST', `/v1/apps/${encodeURIComponent(name)}/rollback`, body);
      io.out(`App '${name}' now serves revision ${result.revision}`);
    });

  withClientOptions(program.command('logs').argument('<name>', 'function or app name').description("print a function's (or app's) recent output"))
    .option('-f, --follow', 'keep printing new lines')
    .option('-n, --tail <lines>', 'recent lines to print (0 with -f: only new ones)', lineCount, 100)
    .action(async (name: string, opts: ClientOptions & { follow?: boolean; tail: number }) => {
      const client = await AdminClient.from(opts);
      const res = await client.call('GET', `/v1/logs/${encodeURIComponent(name)}?tail=${opts.tail}${opts.follow ? '&follow=1' : ''}`);
      const decoder = new TextDecoder();
      let buffered = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffered += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = JSON.parse(buffered.slice(0, nl)) as { time: number; function: string; stream: string; text: string };
          buffered = buffered.slice(nl + 1);
          io.out(`${new Date(line.time).toISOString()} ${line.function} ${line.stream}: ${line.text}`);
        }
      }
    });
}
