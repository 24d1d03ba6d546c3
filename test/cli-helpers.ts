// Helpers for driving the `lamplighter` CLI as real child processes: bounded runs, long-lived nodes, app dirs.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import type { CommandIo } from '../src/cli/command-io.js';

/** Repository root (this file runs from dist/test/). */
export const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** The compiled CLI entry point. */
export const CLI = path.join(REPO, 'dist', 'src', 'cli', 'main.js');

/** The example app served by `lamplighter up`. */
export const HELLO_DIR = path.join(REPO, 'examples', 'hello');

/** Path of a WAGI test module, e.g. `wagiFixture('echo')`. */
export function wagiFixture(name: string): string {
  return path.join(REPO, 'test', 'fixtures', 'wagi', `${name}.wasm`);
}

/** Every child started here and not yet known to have exited. */
const live = new Set<ChildProcess>();

/** SIGKILLs every child still running; for `after()` hooks. */
export function killAllChildren(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  live.clear();
}

/** The environment children get: ours without a token, plus `extra` (undefined deletes). */
export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.LAMPLIGHTER_TOKEN;
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS;
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/** Options for {@link runCli} and {@link CliProcess}. */
export interface CliOptions {
  /** Working directory of the child. @default the OS temp dir */
  cwd?: string;
  /** Extra environment (undefined deletes a variable). @default {} */
  env?: Record<string, string | undefined>;
  /** How long the child may run before it is killed and the call fails. @default 20_000 */
  timeoutMs?: number;
}

/** How a finished CLI run ended. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function spawnCli(args: readonly string[], options: CliOptions): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? tmpdir(),
    env: cliEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** Runs one CLI command to completion; rejects (after SIGKILL) if it outlives its timeout. */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, options);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`lamplighter ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs a CLI command that must succeed; returns its stdout. */
export async function cliOk(args: readonly string[], options: CliOptions = {}): Promise<string> {
  const result = await runCli(args, options);
  if (result.code !== 0) {
    throw new Error(`lamplighter ${args.join(' ')} exited ${result.code ?? result.signal}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
  return result.stdout;
}

/** A long-running CLI child (`up`, `serve`, `logs -f`) whose output can be awaited. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  /** Resolves when the child has exited and its streams have closed. */
  readonly closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly args: readonly string[],
    options: CliOptions = {},
  ) {
    this.child = spawnCli(args, options);
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      this.notify();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      this.notify();
    });
    this.closed = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        resolve({ code, signal });
        this.notify();
      });
    });
  }

  private notify(): void {
    for (const waiter of this.waiters) waiter();
  }

  /** True once the child has exited. */
  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** Waits until stdout matches `pattern`; rejects on timeout or if the child exits first. */
  waitForOutput(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const match = this.stdout.match(pattern);
        if (match) {
          done();
          resolve(match);
        } else if (this.exited) {
          done();
          reject(new Error(`lamplighter ${this.args.join(' ')} exited before printing ${pattern}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`lamplighter ${this.args.join(' ')} did not print ${pattern} within ${timeoutMs} ms\nstdout: ${this.stdout}\nstderr: ${this.stderr}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Sends `signal` and waits for the exit; SIGKILLs and rejects if it takes over `timeoutMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }> {
    const started = Date.now();
    if (!this.exited) this.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      this.closed,
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.child.kill('SIGKILL');
      await this.closed;
      throw new Error(`lamplighter ${this.args.join(' ')} did not exit within ${timeoutMs} ms of ${signal}\nstderr: ${this.stderr}`);
    }
    return { ...outcome, ms: Date.now() - started };
  }
}

/** A running `lamplighter serve` node with its parsed URLs. */
export interface ServeNode {
  proc: CliProcess;
  /** Gateway base URL, e.g. http://127.0.0.1:41234 */
  gateway: string;
  /** Admin API base URL. */
  admin: string;
  /** Flags that point a client command at this node and its data dir. */
  clientFlags: string[];
}

const SERVING = /Lamplighter serving on (http:\/\/127\.0\.0\.1:\d+); admin API on (http:\/\/127\.0\.0\.1:\d+) \(token in (.+)\)/;

/** Starts `lamplighter serve --data dataDir` on free ports and waits until it prints its ports. */
export async function startServe(dataDir: string): Promise<ServeNode> {
  const proc = new CliProcess(['serve', '--data', dataDir, '--port', '0', '--admin-port', '0', '--workers', '2']);
  const match = await proc.waitForOutput(SERVING);
  const admin = match[2]!;
  return { proc, gateway: match[1]!, admin, clientFlags: ['--server', admin, '--data', dataDir] };
}

/** An HTTP answer read in full. */
export interface HttpAnswer {
  status: number;
  headers: Headers;
  body: string;
}

/** Fetches `url` with a bounded wait and reads the body as text. */
export async function httpGet(url: string, init: RequestInit = {}): Promise<HttpAnswer> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

/**
 * Writes an app directory: `lamplighter.toml` with `toml`, and each file in `files` — a string
 * is a path to copy, bytes are written as they are.
 */
export async function writeApp(dir: string, toml: string, files: Record<string, string | Uint8Array> = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'lamplighter.toml'), toml);
  for (const [name, source] of Object.entries(files)) {
    if (typeof source === 'string') await copyFile(source, path.join(dir, name));
    else await writeFile(path.join(dir, name), source);
  }
  return dir;
}

/** What a CLI module registers its commands with. */
export type RegisterCommands = (program: Command, io: CommandIo) => void;

/** Runs one command in-process with the commands `register` adds; resolves with its output, or the error it failed with. */
export async function runInProcess(register: RegisterCommands, args: readonly string[]): Promise<{ out: string; err: string; error: Error | undefined }> {
  const out: string[] = [];
  const err: string[] = [];
  const program = new Command('lamplighter').exitOverride().configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => err.push(s) });
  register(program, { out: (s) => out.push(s), err: (s) => err.push(s) });
  try {
    await program.parseAsync([...args], { from: 'user' });
    return { out: out.join('\n'), err: err.join('\n'), error: undefined };
  } catch (error) {
    return { out: out.join('\n'), err: err.join('\n'), error: error as Error };
  }
}
