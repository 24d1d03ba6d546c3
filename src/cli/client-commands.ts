// CLI commands that talk to a running node: deploy, ls, rm, rollback, logs.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import type { ClusterView } from '../cluster/index.js';
import type { AppStatus } from '../control/index.js';
import { parseDuration } from '../config/index.js';
import { collectFunctionFiles, loadManifest, readArtifact } from '../manifest/index.js';
import { digestOf } from '../store/index.js';
import { AdminClient, ClientError, DEFAULT_DATA_DIR, DEFAULT_SERVER, resolveServer, type ClientOptions } from './admin-client.js';
import type { CommandIo } from './command-io.js';
import { formatListing, table } from './ls-format.js';

export type { CommandIo } from './command-io.js';

/** Adds --server, --token and --data, the options of every command that talks to a node. */
export function withClientOptions(cmd: Command): Command {
  return cmd
    .option('--server <url>', `admin API of the node (default: $LAMPLIGHTER_SERVER, then ${DEFAULT_SERVER})`)
    .option('--token <token>', 'admin token (default: $LAMPLIGHTER_TOKEN, then <data>/token)')
    .option('--data <dir>', 'data directory of a local node, to read its token', DEFAULT_DATA_DIR)
    .option('--ca <file>', 'PEM certificate of the CA that signed an https admin API\'s certificate (default: $LAMPLIGHTER_CA)');
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
  // Files shipped with functions travel as artifacts named by their app-relative paths.
  for (const fn of manifest.functions) {
    for (const rel of await collectFunctionFiles(appDir, fn.name, fn.files ?? [])) {
      if (artifacts[rel]) continue;
      const bytes = await readFile(path.join(appDir, rel));
      const digest = digestOf(bytes);
      artifacts[rel] = digest;
      bytesByDigest.set(digest, bytes);
    }
  }
  const { missing } = await client.json<{ missing: string[] }>('POST', '/v1/blobs/missing', { digests: [...bytesByDigest.keys()] });
  for (const digest of missing) await client.call('PUT', `/v1/blobs/${digest}`, undefined, bytesByDigest.get(digest));
  return client.json('POST', '/v1/apps', { manifest: text, artifacts, appDir });
}

/** The node's view of its cluster; undefined from a node older than `GET /v1/cluster`, which answers 404. */
async function clusterViewOf(client: AdminClient): Promise<ClusterView | undefined> {
  try {
    return await client.json<ClusterView>('GET', '/v1/cluster');
  } catch (err) {
    if (err instanceof ClientError && err.status === 404) return undefined;
    throw err;
  }
}

/** Parses `logs -n`: a whole number of lines, 0 or more. */
function lineCount(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(`-n must be a number of lines, 0 or more (e.g. -n 50), got '${value}'`);
  }
  return n;
}

/**
 * Parses `logs --since`: a duration back from now ("10m", "1h30m") or a time Date.parse reads
 * ("2026-12-03T02:00:00Z"); the time in ms since the epoch.
 */
function sinceTime(value: string, now = Date.now()): number {
  const ago = parseDuration(value);
  if (ago !== undefined) return Math.floor(now - ago);
  const time = /\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(time)) {
    throw new InvalidArgumentError(`--since must be a duration back from now like 10m or 1h30m, or a time like 2026-12-03T02:00:00Z, got '${value}'`);
  }
  return time;
}

/** One revision as the admin API lists it. */
interface RevisionRow {
  number: number;
  createdAt: string;
  artifacts: Record<string, string>;
}

/** The revisions table; the one serving is marked, artifacts shown by name and short digest. */
export function formatRevisions(app: string, revisions: RevisionRow[], current: number | undefined): string {
  if (revisions.length === 0) return `App '${app}' has no revisions.`;
  const rows = [['REV', 'CREATED', 'SERVING', 'ARTIFACTS']];
  for (const r of [...revisions].sort((a, b) => b.number - a.number)) {
    const artifacts = Object.entries(r.artifacts).map(([file, digest]) => `${file}=${digest.slice(0, 12)}`).join(' ') || '-';
    rows.push([String(r.number), r.createdAt, r.number === current ? '*' : '', artifacts]);
  }
  return table(rows);
}

/** Registers deploy, ls, revisions, rm, rollback and logs on `program`. */
export function registerClientCommands(program: Command, io: CommandIo): void {
  withClientOptions(program.command('deploy').argument('[dir]', 'app directory holding lamplighter.toml', '.').description('deploy an app to a running node (uploads only missing artifacts)'))
    .action(async (dir: string, opts: ClientOptions) => {
      const client = await AdminClient.from(opts);
      const result = await deployDirectory(client, dir);
      io.out(result.unchanged ? `Unchanged: app '${result.app}' revision ${result.revision} already serves this` : `Deployed app '${result.app}' revision ${result.revision}`);
    });

  withClientOptions(program.command('ls').description('list deployed apps and their functions; in a cluster, its nodes and where instances run'))
    .option('--json', 'print JSON: { apps, cluster }')
    .action(async (opts: ClientOptions & { json?: boolean }) => {
      const client = await AdminClient.from(opts);
      const [{ apps }, cluster] = await Promise.all([client.json<{ apps: AppStatus[] }>('GET', '/v1/apps'), clusterViewOf(client)]);
      io.out(opts.json ? JSON.stringify({ apps, cluster }, null, 2) : formatListing(apps, cluster, Date.now()));
    });

  withClientOptions(program.command('revisions').argument('<name>', 'app name').description("list an app's revisions: number, when, artifacts, and which one serves"))
    .option('--json', 'print JSON: { revisions, current }')
    .action(async (name: string, opts: ClientOptions & { json?: boolean }) => {
      const client = await AdminClient.from(opts);
      const [{ revisions }, { apps }] = await Promise.all([
        client.json<{ revisions: RevisionRow[] }>('GET', `/v1/apps/${encodeURIComponent(name)}/revisions`),
        client.json<{ apps: AppStatus[] }>('GET', '/v1/apps'),
      ]);
      const current = apps.find((a) => a.name === name)?.revision;
      if (revisions.length === 0 && current === undefined) throw new ClientError(`No app named '${name}' on ${resolveServer(opts.server)}; \`lamplighter ls\` lists the apps`, 404);
      io.out(opts.json ? JSON.stringify({ revisions, current: current ?? null }, null, 2) : formatRevisions(name, revisions, current));
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

  withClientOptions(program.command('logs').argument('<name>', 'function or app name').description("print a function's (or app's) output, kept across restarts"))
    .option('-f, --follow', 'keep printing new lines')
    .option('-n, --tail <lines>', 'last lines to print (default: 100, or all with --since; 0 with -f: only new ones)', lineCount)
    .option('--since <duration|time>', 'only lines since then: a duration back from now (10m, 2h) or a time (2026-12-03T02:00:00Z)', (value: string) => sinceTime(value))
    .action(async (name: string, opts: ClientOptions & { follow?: boolean; tail?: number; since?: number }) => {
      const client = await AdminClient.from(opts);
      const query = new URLSearchParams();
      if (opts.tail !== undefined) query.set('tail', String(opts.tail));
      if (opts.since !== undefined) query.set('since', String(opts.since));
      if (opts.follow) query.set('follow', '1');
      const res = await client.call('GET', `/v1/logs/${encodeURIComponent(name)}?${query}`);
      const damaged = Number(res.headers.get('x-lamplighter-log-damaged') ?? 0);
      if (damaged > 0) io.err(`(skipped ${damaged} damaged line${damaged === 1 ? '' : 's'} in the log files)`);
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
