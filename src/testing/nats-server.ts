// A real nats-server with JetStream, started on a free loopback port in a temp directory for a test.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Options for {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Extra configuration text appended to the generated file (tls, authorization, cluster). */
  extraConfig?: string;
  /** Server name (also the JetStream node name). @default "ll-<port>" */
  name?: string;
  /** Directory for JetStream and the config; created when absent. @default a new temp dir */
  dir?: string;
  /** Port to listen on. @default a free one */
  port?: number;
  /** How long to wait for the server to accept connections, in ms. @default 10000 */
  startTimeoutMs?: number;
  /** Serve clients over TLS only. @default undefined (plain TCP) */
  tls?: NatsServerTlsOptions;
  /** Require this token from clients. @default undefined (no authentication) */
  token?: string;
}

/** TLS for a test server's client port; every field but `verify` is a PEM file path. */
export interface NatsServerTlsOptions {
  cert: string;
  key: string;
  /** CA that client certificates must chain to; needed when `verify` is set. @default undefined */
  ca?: string;
  /** Require a client certificate signed by `ca`. @default false */
  verify?: boolean;
}

/** A running nats-server. */
export interface NatsServer {
  /** `nats://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
  readonly name: string;
  /** Directory holding the config and JetStream's files. */
  readonly dir: string;
  /** The server's stderr so far, for failure messages. */
  output(): string;
  /** Kills the server at once (SIGKILL); its files stay, so {@link restart} brings it back with its data. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and directory. */
  restart(): Promise<void>;
  /** Stops the server and removes its directory (unless it was given). */
  close(): Promise<void>;
}

/** A free TCP port on loopback (closed again at once; the caller binds it next). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on `port`, or rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs: number, exited?: () => string | undefined): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const why = exited?.();
    if (why) throw new Error(why);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing accepted connections on port ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Starts `nats-server -js` with a generated config; rejects with its output if it does not come up. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(path.join(tmpdir(), 'lamplighter-nats-')));
  const port = options.port ?? (await freePort());
  const name = options.name ?? `ll-${port}`;
  const config = path.join(dir, 'nats.conf');
  await writeFile(
    config,
    [
      `server_name: "${name}"`,
      `listen: "127.0.0.1:${port}"`,
      `jetstream { store_dir: "${path.join(dir, 'js')}", max_mem: 64MB, max_file: 1GB }`,
      _tlsBlock(options.tls),
      options.token === undefined ? '' : `authorization { token: ${JSON.stringify(options.token)} }`,
      options.extraConfig ?? '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  let stderr = '';
  let exitNote: string | undefined;
  const start = async (): Promise<void> => {
    exitNote = undefined;
    const proc = spawn('nats-server', ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-16_384);
    });
    proc.once('error', (err) => {
      exitNote = `nats-server could not start: ${err.message} (is Debian's nats-server installed?)`;
    });
    proc.once('exit', (code, signal) => {
      exitNote ??= `nats-server exited (${signal ?? code}): ${stderr.trim().split('\n').slice(-5).join(' | ')}`;
    });
    await waitForPort(port, options.startTimeoutMs ?? 10_000, () => exitNote);
  };
  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    name,
    dir,
    output: () => stderr,
    kill: () => stop('SIGKILL'),
    restart: start,
    close: async () => {
      await stop('SIGTERM');
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  };
}

function _tlsBlock(tls: NatsServerTlsOptions | undefined): string {
  if (tls === undefined) return '';
  const lines = [`cert_file: ${JSON.stringify(tls.cert)}`, `key_file: ${JSON.stringify(tls.key)}`];
  if (tls.ca !== undefined) lines.push(`ca_file: ${JSON.stringify(tls.ca)}`);
  if (tls.verify === true) lines.push('verify: true');
  // A generous handshake timeout: two busy cores can stall a handshake past the default half second.
  lines.push('timeout: 5');
  return `tls {\n  ${lines.join('\n  ')}\n}`;
}
