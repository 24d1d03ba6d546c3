// CLI commands that run a node: `up` (one app, like `spin up`) and `serve` (a long-running node).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { parseDuration, parseSize, PlatformDefaults } from '../config/index.js';
import { parseClusterUrls, type ClusterSettings } from '../cluster/index.js';
import { Platform, type GatewayTlsSettings } from '../control/index.js';
import { deployStepChannel, parseLogFormat, type DeployStepEvent } from '../observability/index.js';
import { installExitHook } from '../runtime/process/index.js';
import type { Revision } from '../store/index.js';
import { DEFAULT_DATA_DIR } from './admin-client.js';
import type { CommandIo } from './client-commands.js';
import { printFunctionOutput } from './function-output.js';

interface NodeFlags {
  port: string;
  adminPort: string;
  host: string;
  adminHost: string;
  data?: string;
  workers?: string;
  kedaPort?: string;
  variablesFile?: string;
  logFormat?: string;
  logMaxSize?: string;
  logMaxFiles?: string;
  tlsCert: string[];
  tlsKey: string[];
  httpRedirectPort?: string;
  adminTlsCert?: string;
  adminTlsKey?: string;
}

interface ClusterFlags {
  cluster?: string;
  nodeName?: string;
  advertise?: string;
  natsCa?: string;
  natsCert?: string;
  natsKey?: string;
  natsCreds?: string;
  natsToken?: string;
  downAfter?: string;
  replicas?: string;
  forwardLogs?: boolean;
}

/** The cluster a `serve` joins, from its flags; undefined (embedded) without `--cluster`. */
function clusterSettings(flags: ClusterFlags): ClusterSettings | undefined {
  if (flags.cluster === undefined) {
    const stray = (['natsCa', 'natsCert', 'natsKey', 'natsCreds', 'natsToken', 'advertise', 'downAfter', 'replicas'] as const).find((k) => flags[k] !== undefined);
    if (stray) throw new Error(`--${stray.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} only applies with --cluster nats://HOST:PORT`);
    return undefined;
  }
  return {
    servers: parseClusterUrls(flags.cluster),
    ca: flags.natsCa,
    cert: flags.natsCert,
    key: flags.natsKey,
    creds: flags.natsCreds,
    token: flags.natsToken ?? process.env.LAMPLIGHTER_NATS_TOKEN,
    advertise: flags.advertise,
    timing: flags.downAfter === undefined ? undefined : discoveryTiming(flags.downAfter),
    replicas: flags.replicas === undefined ? undefined : replicaCount(flags.replicas),
  };
}

function replicaCount(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 5) throw new Error(`--replicas must be a whole number from 1 to 5 (JetStream's limit), got '${text}'`);
  return n;
}

/** Heartbeats three times per drop time: one lost heartbeat never drops a node. */
function discoveryTiming(text: string): { heartbeatMs: number; downAfterMs: number } {
  const ms = parseDuration(text);
  if (ms === undefined || ms < 300) throw new Error(`--down-after must be a duration of at least 300ms, like "3s", got '${text}'`);
  return { heartbeatMs: Math.floor(ms / 3), downAfterMs: ms };
}

function port(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${flag} must be a port number, got '${value}'`);
  return n;
}

/** Starts a node with the flags both `up` and `serve` take. */
function startNode(flags: NodeFlags & ClusterFlags, dataDir: string, logLevel?: string, beforeListen?: (platform: Platform) => Promise<void>): Promise<Platform> {
  return Platform.start({
    cluster: clusterSettings(flags),
    forwardLogs: flags.forwardLogs === true,
    nodeName: flags.nodeName,
    dataDir,
    port: port(flags.port, '--port'),
    adminPort: port(flags.adminPort, '--admin-port'),
    host: flags.host,
    adminHost: flags.adminHost,
    sandboxWorkers: flags.workers ? Number(flags.workers) : undefined,
    variablesFile: flags.variablesFile ?? process.env.LAMPLIGHTER_VARIABLES_FILE,
    logLevel,
    logFormat: flags.logFormat === undefined ? undefined : parseLogFormat(flags.logFormat),
    functionLogs: functionLogSettings(flags),
    beforeListen,
    tls: gatewayTls(flags),
    adminTls: adminTls(flags),
  });
}

/** The gateway's certificates from repeated `--tls-cert`/`--tls-key` pairs, in order. */
function gatewayTls(flags: NodeFlags): GatewayTlsSettings | undefined {
  const { tlsCert: certs, tlsKey: keys } = flags;
  if (certs.length !== keys.length) {
    throw new Error(`--tls-cert and --tls-key come in pairs, one key after each certificate; got ${certs.length} certificate(s) and ${keys.length} key(s)`);
  }
  if (certs.length === 0) {
    if (flags.httpRedirectPort !== undefined) throw new Error('--http-redirect-port only applies with --tls-cert FILE --tls-key FILE');
    return undefined;
  }
  const certificates = certs.map((cert, i) => ({ cert, key: keys[i]! }));
  return { certificates, redirectPort: flags.httpRedirectPort === undefined ? undefined : port(flags.httpRedirectPort, '--http-redirect-port') };
}

function adminTls(flags: NodeFlags): { cert: string; key: string } | undefined {
  if ((flags.adminTlsCert === undefined) !== (flags.adminTlsKey === undefined)) throw new Error('--admin-tls-cert and --admin-tls-key go together: give both, or neither');
  return flags.adminTlsCert === undefined ? undefined : { cert: flags.adminTlsCert, key: flags.adminTlsKey! };
}

/** Collects a repeatable option's values in order. */
function repeated(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Rotation of the function log files, from `--log-max-size` and `--log-max-files`. */
function functionLogSettings(flags: NodeFlags): { maxBytes?: number; maxFiles?: number } {
  const maxBytes = flags.logMaxSize === undefined ? undefined : parseSize(flags.logMaxSize);
  if (maxBytes === 0 || (flags.logMaxSize !== undefined && maxBytes === undefined)) throw new Error(`--log-max-size must be a size like 10MiB, got '${flags.logMaxSize}'`);
  const maxFiles = flags.logMaxFiles === undefined ? undefined : Number(flags.logMaxFiles);
  if (maxFiles !== undefined && !(Number.isInteger(maxFiles) && maxFiles >= 1)) throw new Error(`--log-max-files must be a whole number of at least 1, got '${flags.logMaxFiles}'`);
  return { maxBytes, maxFiles };
}

/** Steps shorter than this print nothing. */
const PROGRESS_AFTER_MS = 1000;

/**
 * Prints deploy steps that take over a second: `preparing component hello…` once one has run
 * for a second, then `preparing component hello… 6.1 s` when it ends. Returns the unsubscribe.
 */
function reportProgress(io: CommandIo): () => void {
  const running = new Map<string, NodeJS.Timeout>();
  const onStep = (message: unknown): void => {
    const event = message as DeployStepEvent;
    const label = `${event.step} ${event.function}…`;
    const key = `${event.step}\0${event.function}`;
    if (event.phase === 'start') {
      const timer = setTimeout(() => io.err(label), PROGRESS_AFTER_MS);
      timer.unref();
      running.set(key, timer);
      return;
    }
    clearTimeout(running.get(key));
    running.delete(key);
    const ms = event.durationMs ?? 0;
    if (ms >= PROGRESS_AFTER_MS) io.err(`${label} ${(ms / 1000).toFixed(1)} s${event.outcome && event.outcome !== 'ready' ? ` (${event.outcome})` : ''}`);
  };
  deployStepChannel.subscribe(onStep);
  return () => {
    deployStepChannel.unsubscribe(onStep);
    for (const timer of running.values()) clearTimeout(timer);
  };
}

function withNodeOptions(cmd: Command): Command {
  return cmd
    .option('--port <port>', 'gateway port', String(PlatformDefaults.port))
    .option('--admin-port <port>', 'admin API and /metrics port', String(PlatformDefaults.adminPort))
    .option('--host <addr>', 'gateway bind address', PlatformDefaults.host)
    .option('--admin-host <addr>', 'admin API and /metrics bind address (loopback unless told otherwise, whatever --host is)', PlatformDefaults.adminHost)
    .option('--workers <n>', 'sandbox worker threads (default: max(2, cores))')
    .option('--variables-file <file>', 'TOML file of name = "value" giving app variables their values, after LAMPLIGHTER_VAR_<NAME> (or LAMPLIGHTER_VARIABLES_FILE)')
    .option('--log-format <format>', "the node's own log: json (one object a line) or pretty (for a terminal) (default: $LAMPLIGHTER_LOG_FORMAT, then json)")
    .option('--log-max-size <size>', 'rotate a function\'s log file in <data>/logs before it passes this size (default: 10MiB)')
    .option('--log-max-files <n>', 'log files kept per function, the current one included (default: 5)')
    .option('--tls-cert <file>', 'serve the gateway over HTTPS with this PEM certificate (chain); repeat with --tls-key for more, chosen by SNI, the first the default', repeated, [])
    .option('--tls-key <file>', 'the PEM private key of the --tls-cert before it', repeated, [])
    .option('--http-redirect-port <port>', 'with --tls-cert, also answer plain HTTP on this port with a 308 to HTTPS')
    .option('--admin-tls-cert <file>', 'serve the admin API and /metrics over HTTPS with this PEM certificate (with --admin-tls-key)')
    .option('--admin-tls-key <file>', 'the PEM private key of --admin-tls-cert');
}

async function runUntilSignal(platform: Platform, io: CommandIo, cleanup: () => Promise<void>): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      io.err('Shutting down...');
      // A second signal while closing means "now": exit, and the exit hook kills child processes.
      const force = (): void => process.exit(1);
      process.once('SIGINT', force);
      process.once('SIGTERM', force);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await platform.close();
  await cleanup();
}

/** A bind address as it stands in a URL (IPv6 in brackets). */
function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function describeRoutes(platform: Platform, host: string, io: CommandIo): void {
  const authority = urlHost(host);
  for (const app of platform.list()) {
    for (const fn of app.functions) {
      for (const route of fn.routes) io.out(`  ${fn.name} (${fn.runtime}): ${platform.scheme}://${authority}:${platform.port}${route}`);
    }
  }
}

/** Registers `up` and `serve` on `program`. */
export function registerServerCommands(program: Command, io: CommandIo): void {
  withNodeOptions(program.command('up').argument('[dir]', 'app directory holding lamplighter.toml', '.').description('serve the app in [dir] on an embedded node (no other service needed)'))
    .option('--data <dir>', 'keep state in this directory (default: a temporary one)')
    .option('--no-function-output', "do not show the functions' output here (it stays in the logs)")
    .action(async (dir: string, flags: NodeFlags & { functionOutput: boolean }) => {
      installExitHook({ signals: [] }); // SIGINT/SIGTERM stop gracefully below; the hook stays the last resort on exit.
      const dataDir = flags.data ?? (await mkdtemp(path.join(tmpdir(), 'lamplighter-up-')));
      // The app is deployed before the gateway listens: a request never finds the node without it.
      const stopProgress = reportProgress(io);
      let revision: Revision | undefined;
      let platform: Platform;
      try {
        platform = await startNode(flags, dataDir, process.env.LAMPLIGHTER_LOG ?? 'warn', async (p) => {
          // Shown from before the deploy, so what a function prints as it starts is seen too.
          if (flags.functionOutput) printFunctionOutput(p.logs, io);
          ({ revision } = await p.deployDir(dir));
        });
      } catch (err) {
        if (!flags.data) await rm(dataDir, { recursive: true, force: true });
        throw err;
      } finally {
        stopProgress();
      }
      io.out(`Serving app '${revision!.app}' on ${platform.scheme}://${flags.host}:${platform.port} (admin and /metrics on ${platform.adminScheme}://${urlHost(flags.adminHost)}:${platform.adminPort})`);
      if (platform.redirectPort) io.out(`Redirecting http://${flags.host}:${platform.redirectPort} to HTTPS`);
      describeRoutes(platform, flags.host, io);
      await runUntilSignal(platform, io, async () => {
        if (!flags.data) await rm(dataDir, { recursive: true, force: true });
      });
    });

  withNodeOptions(program.command('serve').description('run a long-lived node; deploy to it with `lamplighter deploy`'))
    .option('--data <dir>', 'data directory (artifacts, revisions, admin token)', DEFAULT_DATA_DIR)
    .option('--keda-port <port>', 'serve the KEDA external-scaler gRPC protocol on this port')
    .option('--cluster <urls>', 'join a cluster through NATS: nats://HOST:PORT[,nats://…] (tls:// requires TLS); without it the node is embedded')
    .option('--node-name <name>', 'this node\'s name in the cluster (default: the host name)')
    .option('--advertise <host:port>', 'address peers forward requests to (default: --host and the gateway port)')
    .option('--nats-ca <file>', 'CA certificate that signed the NATS servers\' certificates')
    .option('--nats-cert <file>', 'client certificate for NATS (with --nats-key)')
    .option('--nats-key <file>', 'client key for NATS')
    .option('--nats-creds <file>', 'NATS credentials file (JWT and seed)')
    .option('--nats-token <token>', 'NATS token (or LAMPLIGHTER_NATS_TOKEN)')
    .option('--replicas <n>', 'copies JetStream keeps of Lamplighter\'s buckets: 3 on a 3-server NATS cluster (default: 1)')
    .option('--down-after <duration>', 'drop a node not heard from for this long, heartbeating every third of it (default: 3s)')
    .option('--forward-logs', 'in a cluster, also publish function output to NATS subjects lamplighter.logs.<function>')
    .action(async (flags: NodeFlags & ClusterFlags) => {
      installExitHook({ signals: [] }); // SIGINT/SIGTERM stop gracefully below; the hook stays the last resort on exit.
      const dataDir = flags.data ?? DEFAULT_DATA_DIR;
      const platform = await startNode(flags, dataDir);
      let closeKeda = async (): Promise<void> => {};
      if (flags.kedaPort !== undefined) {
        const keda = await platform.startKeda(port(flags.kedaPort, '--keda-port'), flags.host);
        closeKeda = () => keda.close();
        io.out(`KEDA external scaler on ${flags.host}:${keda.port}`);
      }
      if (flags.cluster !== undefined) io.out(`Joined the cluster at ${flags.cluster} as node '${platform.nodeName}'`);
      io.out(`Lamplighter serving on ${platform.scheme}://${flags.host}:${platform.port}; admin API on ${platform.adminScheme}://${urlHost(flags.adminHost)}:${platform.adminPort} (token in ${path.join(dataDir, 'token')})`);
      if (platform.redirectPort) io.out(`Redirecting http://${flags.host}:${platform.redirectPort} to HTTPS`);
      describeRoutes(platform, flags.host, io);
      await runUntilSignal(platform, io, closeKeda);
    });
}
