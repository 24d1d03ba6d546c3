// A whole cluster in one test process: a real nats-server, N Lamplighter nodes joined through it,
// and nodes run as child processes where a test must kill one for real.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ClusterSettings } from '../cluster/index.js';
import type { PlatformOptions } from '../control/index.js';
import { repoRoot, startTestNode, type TestNode } from './harness.js';
import { startNatsServer, type NatsServer } from './nats-server.js';

/** Discovery timing for tests: a silent node is dropped after 1 s. */
export const TEST_TIMING = { heartbeatMs: 200, downAfterMs: 1000 } as const;

/** Options for {@link startTestCluster}. */
export interface TestClusterOptions {
  /** Nodes started in this process, named node-a, node-b, … @default 3 */
  nodes?: number;
  /** Join these NATS URLs instead of starting a nats-server. @default a new nats-server */
  natsUrls?: string[];
  /** Settings every node joins with (TLS, token…), besides the servers. @default {} */
  cluster?: Partial<ClusterSettings>;
  /** Options of every in-process node. @default {} */
  platform?: Partial<PlatformOptions>;
}

/** A node run as `lamplighter serve --cluster …` in a child process. */
export interface ChildNode {
  name: string;
  /** Gateway base URL. */
  url: string;
  process: ChildProcess;
  /** SIGKILL: no leave, no drain; peers must find out by its silence. */
  kill(): Promise<void>;
  /** SIGTERM: the graceful leave; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** What it printed (stdout and stderr), and how it died when a signal ended it. */
  readonly output: string;
}

/** A cluster started for a test. */
export interface TestCluster {
  /** The nats-server started for it; undefined when `natsUrls` was given. */
  nats: NatsServer | undefined;
  urls: string[];
  nodes: TestNode[];
  /** Starts one more in-process node. */
  addNode(name?: string, options?: Partial<PlatformOptions>): Promise<TestNode>;
  /** Starts a node as a child process (`serve --cluster`). */
  startChildNode(name: string): Promise<ChildNode>;
  close(): Promise<void>;
}

const nodeName = (i: number): string => `node-${String.fromCharCode(97 + i)}`;

/** Starts a nats-server (unless given) and `nodes` Lamplighter nodes joined through it. */
export async function startTestCluster(options: TestClusterOptions = {}): Promise<TestCluster> {
  const nats = options.natsUrls ? undefined : await startNatsServer();
  const urls = options.natsUrls ?? [nats!.url];
  const nodes: TestNode[] = [];
  const children: ChildNode[] = [];
  const root = await mkdtemp(path.join(tmpdir(), 'lamplighter-cluster-'));
  const addNode = async (name = nodeName(nodes.length), extra: Partial<PlatformOptions> = {}): Promise<TestNode> => {
    const node = await startTestNode({
      nodeName: name,
      scaleIntervalMs: 100,
      ...options.platform,
      ...extra,
      cluster: { servers: urls, timing: TEST_TIMING, ...options.cluster, ...extra.cluster },
    });
    nodes.push(node);
    return node;
  };
  const cluster: TestCluster = {
    nats,
    urls,
    nodes,
    addNode,
    startChildNode: async (name) => {
      const child = await startChildNode(name, urls, path.join(root, name), options.cluster);
      children.push(child);
      return child;
    },
    close: async () => {
      await Promise.all(children.map((c) => c.kill()));
      await Promise.all(nodes.map((n) => n.close().catch(() => undefined)));
      await nats?.close();
      await rm(root, { recursive: true, force: true });
    },
  };
  try {
    for (let i = 0; i < (options.nodes ?? 3); i++) await addNode();
  } catch (err) {
    await cluster.close();
    throw err;
  }
  return cluster;
}

/** Runs `lamplighter serve --cluster` in a child process; resolves once its gateway listens. */
async function startChildNode(name: string, urls: string[], dataDir: string, settings: Partial<ClusterSettings> = {}): Promise<ChildNode> {
  const args = [path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'serve', '--cluster', urls.join(','), '--node-name', name, '--port', '0', '--admin-port', '0', '--host', '127.0.0.1', '--data', dataDir, '--down-after', `${TEST_TIMING.downAfterMs}ms`];
  if (settings.ca) args.push('--nats-ca', settings.ca);
  if (settings.cert) args.push('--nats-cert', settings.cert);
  if (settings.key) args.push('--nats-key', settings.key);
  if (settings.token) args.push('--nats-token', settings.token);
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LAMPLIGHTER_LOG: 'warn' } });
  let output = '';
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code, signal) => {
      // A node that dies by a signal says which, with what it printed last, for the test's message.
      if (code === null) output += `\n[exited by ${signal ?? 'an unknown signal'}]`;
      resolve(code);
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node ${name} did not start within 15 s: ${output}`)), 15_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const m = /serving on (http:\/\/[^\s;]+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`node ${name} exited (${code}) before serving: ${output}`));
    });
  });
  const gone = (): boolean => proc.exitCode !== null || proc.signalCode !== null;
  return {
    name,
    url,
    process: proc,
    kill: async () => {
      if (!gone()) proc.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (!gone()) proc.kill('SIGTERM');
      return exited;
    },
    get output() {
      return output;
    },
  };
}
