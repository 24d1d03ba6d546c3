// One supervised child process serving HTTP on its PORT: start, readiness, proxying, drain and stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { ErrorCodes, LamplighterError } from '../../errors/index.js';
import type { Instance, InstanceExit, InstanceState, InvocationRequest, InvocationResponse, LogSink } from '../../instance/index.js';
import type { FunctionSpec } from '../../manifest/index.js';
import { cgroupSupport, ChildCgroup } from './child-cgroup.js';
import { registerChildGroup, signalGroup, unregisterChildGroup } from './child-registry.js';
import { processExitChannel, processReadyChannel, processSpawnChannel } from './diagnostics.js';
import { proxyRequest, type ProxyRequestOptions } from './http-proxy.js';
import { forwardLines, type LineTail } from './line-splitter.js';
import { releasePort, reservePort } from './port-allocator.js';
import { resolveProgram } from './program-path.js';
import { ReadinessTimeoutError, waitUntilReady } from './readiness-probe.js';
import type { FunctionFailure } from './restart-policy.js';
import { pipeUpgrade, type UpgradeAnswer } from './upgrade-proxy.js';
import { UpstreamPool } from './upstream-pool.js';

const LOOPBACK = '127.0.0.1';

/**
 * Run by `sh -c` with the cgroup directory as $0 and the resolved command as "$@": moves itself
 * into the cgroup, then becomes the command, so nothing the command starts is ever outside it.
 */
const JOIN_CGROUP = 'echo $$ > "$0/cgroup.procs" 2>/dev/null; exec "$@"';

/** Makes each cgroup name unique in this process (instance ids repeat across redeploys). */
let cgroupSeq = 0;

/** What an instance asks of the factory that lit it: start slots, failure state and reports. */
export interface InstanceSupervisor {
  /** The crash loop that stops new starts, if any. */
  failure(): FunctionFailure | undefined;
  /** Resolves when the restart backoff lets a new process start. */
  waitForTurn(signal: AbortSignal): Promise<void>;
  /** The instance passed its readiness probe. */
  onReady(instance: ProcessInstance): void;
  /** The instance failed (crashed, exited or never became ready); `message` says why. */
  onFailure(instance: ProcessInstance, message: string): void;
  /** The instance is closed for good. */
  onClosed(instance: ProcessInstance): void;
}

/** How a {@link ProcessInstance} runs; built by the process factory from the spec and its options. */
export interface ProcessInstanceOptions {
  /** The function this instance runs. */
  spec: FunctionSpec;
  /** Absolute working directory of the child. */
  cwd: string;
  /** Environment of the child, without PORT (added per instance). */
  env: Record<string, string>;
  /** Where the child's stdout and stderr lines go. */
  log: LogSink;
  /** The factory's side of supervision. */
  supervisor: InstanceSupervisor;
  /** Time between SIGTERM and SIGKILL on stop. @default 5000 */
  killGraceMs?: number;
  /** Stderr lines quoted in failure messages. @default 10 */
  stderrTailLines?: number;
  /** First pause between readiness attempts. @default 10 */
  probeIntervalMs?: number;
  /** Longest pause between readiness attempts. @default 250 */
  maxProbeIntervalMs?: number;
  /** Fail this instance at once with this error instead of starting a process. @default undefined */
  failWith?: LamplighterError;
}

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  spawnError?: NodeJS.ErrnoException;
}

/** Resolves true when `promise` settles within `ms`, false otherwise. */
function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}

function describeExit(exit: ExitInfo): string {
  if (exit.signal) return `was killed by signal ${exit.signal}`;
  return `exited with code ${exit.code ?? 'unknown'}`;
}

/** Raised inside the start sequence when a failure must not count towards the crash loop. */
class _UncountedFailure extends Error {
  readonly error: LamplighterError;
  constructor(error: LamplighterError) {
    super(error.message);
    this.error = error;
  }
}

/** A supervised child process implementing {@link Instance}; see the process runtime's index for the contract. */
export class ProcessInstance implements Instance {
  readonly id: string;
  readonly functionName: string;
  readonly ready: Promise<void>;
  readonly closed: Promise<InstanceExit>;

  readonly #spec: FunctionSpec;
  readonly #options: ProcessInstanceOptions;
  readonly #label: string;
  readonly #startAbort = new AbortController();
  readonly #tunnels = new Set<Duplex>();
  #state: InstanceState = 'starting';
  #resolveReady!: () => void;
  #rejectReady!: (err: LamplighterError) => void;
  #resolveClosed!: (exit: InstanceExit) => void;
  #closedSettled = false;
  #child: ChildProcess | undefined;
  #pgid: number | undefined;
  #cgroup: ChildCgroup | undefined;
  #port: number | undefined;
  #pool: UpstreamPool | undefined;
  /** Made once with the pool: the same for every request. */
  #proxyOptions: ProxyRequestOptions | undefined;
  #exit: ExitInfo | undefined;
  #exited: Promise<void> = Promise.resolve();
  #stdioClosed: Promise<void> = Promise.resolve();
  #stderrTail: LineTail | undefined;
  #stopRequested = false;
  #failureMessage: string | undefined;
  #startTask: Promise<void>;
  #inFlight = 0;
  #idleWaiters: Array<() => void> = [];
  #draining: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;

  /** Starts the process at once (after the factory's backoff); use the factory's `create()` rather than this. */
  constructor(id: string, options: ProcessInstanceOptions) {
    this.id = id;
    this.functionName = options.spec.name;
    this.#spec = options.spec;
    this.#options = options;
    this.#label = `Function '${options.spec.name}' instance '${id}'`;
    this.ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    // A rejected `ready` nobody awaits must not crash the host process.
    this.ready.catch(() => {});
    this.closed = new Promise<InstanceExit>((resolve) => {
      this.#resolveClosed = resolve;
    });
    if (options.failWith) {
      this.#state = 'failed';
      this.#rejectReady(options.failWith);
      this.#settleClosed({ reason: 'failed', message: options.failWith.message });
      this.#startTask = Promise.resolve();
    } else {
      this.#startTask = this.#start();
    }
  }

  /** Current lifecycle state. */
  get state(): InstanceState {
    return this.#state;
  }

  /** Process id of the child (leader of its own process group), once spawned. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Port given to the child in `PORT`, once chosen. */
  get port(): number | undefined {
    return this.#port;
  }

  /** Requests (and upgraded connections) currently being served. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Proxies one request to the child; waits for `ready` if the instance is still starting. */
  handle(request: InvocationRequest): Promise<InvocationResponse> {
    if (this.#state === 'starting') return this.ready.then(() => this.handle(request));
    const pool = this.#pool;
    if (this.#state !== 'ready' || pool === undefined) return Promise.reject(this.#notServing());
    this.#inFlight += 1;
    return proxyRequest(pool, request, this.#proxyOptions!);
  }

  /**
   * Passes an HTTP upgrade (e.g. a WebSocket handshake the gateway received) to the child and
   * resolves with the status it answered: after a 101 the two connections are piped both ways
   * until either side closes; any other answer is relayed and the connection ends. Rejects with a
   * LamplighterError, leaving `socket` open for the caller to answer, when the instance is not
   * serving or the child cannot be reached. Counts as in flight until closed; `stop()` cuts it
   * after the drain.
   */
  async upgrade(request: InvocationRequest, socket: Duplex, head: Buffer): Promise<number> {
    if (this.#state === 'starting') await this.ready;
    if (this.#state !== 'ready' || this.#port === undefined) throw this.#notServing();
    this.#inFlight += 1;
    let answer: UpgradeAnswer;
    try {
      answer = await pipeUpgrade({ request, socket, head }, { port: this.#port, label: this.#label });
    } catch (err) {
      this.#release();
      throw err;
    }
    const upstream = answer.upstream;
    // A refusal may have been relayed, and its connection closed, before this runs.
    if (upstream.destroyed) {
      this.#release();
      return answer.status;
    }
    this.#tunnels.add(upstream);
    upstream.once('close', () => {
      this.#tunnels.delete(upstream);
      this.#release();
    });
    return answer.status;
  }

  /** Takes no new requests; resolves when in-flight ones finish or `drainTimeoutMs` passes. */
  figures(): Readonly<Record<string, number>> {
    const pool = this.#pool;
    return { upstreamConnections: pool?.connections ?? 0, upstreamIdle: pool?.idleConnections ?? 0, tunnels: this.#tunnels.size };
  }

  drain(): Promise<void> {
    if (this.#draining) return this.#draining;
    if (this.#state === 'starting' || this.#state === 'ready') this.#state = 'draining';
    this.#draining = this.#waitIdle(this.#spec.drainTimeoutMs);
    return this.#draining;
  }

  /** Drains, then SIGTERM to the process group, SIGKILL after the grace period. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stopNow();
    return this.#stopping;
  }

  async #stopNow(): Promise<void> {
    if (this.#closedSettled) return;
    if (this.#state === 'ready' || this.#state === 'draining') await this.drain();
    else this.drain();
    this.#stopRequested = true;
    this.#startAbort.abort(new LamplighterError(ErrorCodes.SHUTTING_DOWN, `${this.#label} was stopped before it became ready`));
    await this.#startTask;
    if (this.#closedSettled) return;
    await this.#terminate();
    this.#state = 'stopped';
    await this.#releaseResources();
    this.#settleClosed({ reason: 'stopped' });
  }

  #notServing(): LamplighterError {
    if (this.#state === 'failed') {
      return new LamplighterError(ErrorCodes.FUNCTION_FAILED, this.#failureMessage ?? `${this.#label} has failed`);
    }
    return new LamplighterError(ErrorCodes.SHUTTING_DOWN, `${this.#label} is ${this.#state} and takes no new requests`);
  }

  #release(): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
    if (this.#inFlight === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  #waitIdle(timeoutMs: number): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#idleWaiters.push(done);
    });
  }

  #stderrLines(): string {
    const lines = this.#stderrTail?.lines().slice(-(this.#options.stderrTailLines ?? 10)) ?? [];
    if (lines.length === 0) return ' (no stderr output)';
    return `; last stderr lines:\n  ${lines.join('\n  ')}`;
  }

  async #start(): Promise<void> {
    const startedAt = performance.now();
    try {
      await this.#options.supervisor.waitForTurn(this.#startAbort.signal);
      const failure = this.#options.supervisor.failure();
      if (failure) throw new _UncountedFailure(new LamplighterError(ErrorCodes.FUNCTION_FAILED, failure.message));
      if (this.#stopRequested) throw this.#startAbort.signal.reason;
      await this.#checkCwd();
      this.#port = await reservePort(LOOPBACK);
      if (this.#stopRequested) throw this.#startAbort.signal.reason;
      await this.#spawn();
      await this.#probe();
      processReadyChannel.publish({
        functionName: this.functionName,
        instanceId: this.id,
        pid: this.pid,
        port: this.#port,
        startupMs: performance.now() - startedAt,
      });
      this.#pool = this.#openPool();
      this.#proxyOptions = {
        label: this.#label,
        target: `${LOOPBACK}:${this.#port}`,
        headersTimeoutMs: this.#spec.limits.timeoutMs,
        onSettled: () => this.#release(),
        instanceId: this.id,
      };
      if (this.#state === 'starting') this.#state = 'ready';
      this.#options.supervisor.onReady(this);
      this.#resolveReady();
      void this.#exited.then(() => this.#onExitAfterReady());
    } catch (err) {
      await this.#onStartFailed(err);
    }
  }

  async #checkCwd(): Promise<void> {
    const cwd = this.#options.cwd;
    const info = await stat(cwd).catch(() => undefined);
    if (!info?.isDirectory()) {
      throw new LamplighterError(ErrorCodes.FUNCTION_FAILED, `${this.#label} could not start: working directory '${cwd}' does not exist`);
    }
  }

  async #spawn(): Promise<void> {
    const [program, ...args] = this.#spec.command ?? [];
    if (program === undefined) throw new LamplighterError(ErrorCodes.FUNCTION_FAILED, `${this.#label} has no command`);
    const env: Record<string, string> = { ...this.#options.env, PORT: String(this.#port) };
    let file = program;
    let argv = args;
    const cgroups = cgroupSupport();
    if (cgroups.available) {
      // The wrapper execs a path, so the command is looked up here, and a missing one named as before.
      let resolved: string;
      try {
        resolved = await resolveProgram(program, { cwd: this.#options.cwd, pathEnv: env.PATH });
      } catch (err) {
        throw this.#spawnError(program, err as NodeJS.ErrnoException);
      }
      try {
        this.#cgroup = new ChildCgroup(cgroups.base, `${this.id}-${++cgroupSeq}`);
        file = '/bin/sh';
        argv = ['-c', JOIN_CGROUP, this.#cgroup.dir, resolved, ...args];
      } catch (err) {
        this.#options.log('stderr', `[lamplighter] ${this.#label} starts without a cgroup: ${(err as Error).message}`);
      }
    }
    // Its own process group (and session): stop() signals the group, and a terminal's signals stay out.
    const child = spawn(file, argv, { cwd: this.#options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.#child = child;
    // Errors after the spawn (none are expected: signals go through process.kill) must not throw.
    child.on('error', () => {});
    if (child.pid !== undefined) {
      this.#pgid = child.pid;
      registerChildGroup(child.pid, this.#cgroup?.dir);
    }
    const log = this.#options.log;
    const keep = Math.max(this.#options.stderrTailLines ?? 10, 1);
    if (child.stdout) forwardLines(child.stdout, (line) => log('stdout', line), { keep });
    if (child.stderr) this.#stderrTail = forwardLines(child.stderr, (line) => log('stderr', line), { keep });
    this.#stdioClosed = new Promise((resolve) => child.once('close', () => resolve()));
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exit ??= { code, signal };
        processExitChannel.publish({
          functionName: this.functionName,
          instanceId: this.id,
          pid: child.pid,
          code,
          signal,
          expected: this.#stopRequested,
        });
        resolve();
      });
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (child.pid === undefined || (err as { syscall?: string }).syscall?.startsWith('spawn')) {
          this.#exit ??= { code: null, signal: null, spawnError: err };
          resolve();
        }
      });
    });
    const spawned = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    });
    if (spawned) throw this.#spawnError(program, spawned);
    processSpawnChannel.publish({ functionName: this.functionName, instanceId: this.id, pid: child.pid, port: this.#port });
  }

  #spawnError(program: string, err: NodeJS.ErrnoException): LamplighterError {
    const where = program.includes('/') ? `relative to '${this.#options.cwd}'` : `on PATH`;
    const message =
      err.code === 'ENOENT'
        ? `${this.#label} could not start: command '${program}' not found (looked ${where})`
        : err.code === 'EACCES'
          ? `${this.#label} could not start: command '${program}' is not executable`
          : `${this.#label} could not start command '${program}': ${err.code ?? err.message}`;
    return new LamplighterError(ErrorCodes.FUNCTION_FAILED, message, { cause: err });
  }

  async #probe(): Promise<void> {
    const stopProbe = new AbortController();
    const onAbort = (): void => stopProbe.abort(this.#startAbort.signal.reason);
    this.#startAbort.signal.addEventListener('abort', onAbort, { once: true });
    void this.#exited.then(() => stopProbe.abort(new Error('exited')));
    const timeoutMs = this.#spec.startupTimeoutMs;
    try {
      this.#startAbort.signal.throwIfAborted();
      await waitUntilReady(this.#port as number, {
        path: this.#spec.ready,
        timeoutMs,
        signal: stopProbe.signal,
        initialIntervalMs: this.#options.probeIntervalMs ?? 10,
        maxIntervalMs: this.#options.maxProbeIntervalMs ?? 250,
        host: LOOPBACK,
      });
      if (this.#exit) throw new Error('exited');
    } catch (err) {
      if (this.#stopRequested) throw this.#startAbort.signal.reason;
      if (this.#exit) {
        await within(this.#stdioClosed, 500);
        throw new LamplighterError(
          ErrorCodes.FUNCTION_FAILED,
          `${this.#label} ${describeExit(this.#exit)} before it became ready${this.#stderrLines()}`,
        );
      }
      if (err instanceof ReadinessTimeoutError) {
        const probe = this.#spec.ready === undefined ? 'TCP connect probe' : `HTTP probe GET ${this.#spec.ready}`;
        const hint = /refused/.test(err.lastResult)
          ? ` (PORT=${this.#port} was set in its environment: does the program listen on 127.0.0.1:$PORT?)`
          : '';
        throw new LamplighterError(
          ErrorCodes.FUNCTION_FAILED,
          `${this.#label} did not become ready within ${timeoutMs} ms: ${probe}: ${err.lastResult}${hint}${this.#stderrLines()}`,
        );
      }
      throw err;
    } finally {
      this.#startAbort.signal.removeEventListener('abort', onAbort);
    }
  }

  async #onStartFailed(err: unknown): Promise<void> {
    const uncounted = err instanceof _UncountedFailure;
    const error = uncounted
      ? err.error
      : err instanceof LamplighterError
        ? err
        : new LamplighterError(ErrorCodes.FUNCTION_FAILED, `${this.#label} could not start: ${err instanceof Error ? err.message : String(err)}`, {
            cause: err,
          });
    if (this.#stopRequested && !uncounted) {
      // stop() finishes the teardown and settles `closed` as stopped.
      this.#rejectReady(
        error.code === ErrorCodes.SHUTTING_DOWN
          ? error
          : new LamplighterError(ErrorCodes.SHUTTING_DOWN, `${this.#label} was stopped before it became ready`),
      );
      return;
    }
    this.#state = 'failed';
    this.#failureMessage = error.message;
    await this.#terminate();
    await this.#releaseResources();
    if (!uncounted) this.#options.supervisor.onFailure(this, error.message);
    this.#rejectReady(error);
    this.#settleClosed({ reason: 'failed', message: error.message });
  }

  async #onExitAfterReady(): Promise<void> {
    if (this.#stopRequested || this.#closedSettled || !this.#exit) return;
    this.#state = 'failed';
    this.#sweepGroup();
    await within(this.#stdioClosed, 500);
    const message = `${this.#label} ${describeExit(this.#exit)} unexpectedly${this.#stderrLines()}`;
    this.#failureMessage = message;
    await this.#releaseResources();
    this.#options.supervisor.onFailure(this, message);
    this.#settleClosed({ reason: 'failed', message });
  }

  /** Kills whatever is left of the child's process group, and of its cgroup, and forgets the group. */
  #sweepGroup(): void {
    if (this.#pgid === undefined) return;
    signalGroup(this.#pgid, 'SIGKILL');
    this.#cgroup?.killNow();
    unregisterChildGroup(this.#pgid);
  }

  async #terminate(): Promise<void> {
    const child = this.#child;
    if (child === undefined || this.#pgid === undefined) return;
    if (!this.#exit) {
      const graceMs = this.#options.killGraceMs ?? 5000;
      const since = performance.now();
      signalGroup(this.#pgid, 'SIGTERM');
      // Descendants that left the group get the same notice, through the cgroup.
      await this.#cgroup?.signal('SIGTERM', { exceptGroup: this.#pgid });
      if (!(await within(this.#exited, graceMs))) {
        this.#options.log('stderr', `[lamplighter] ${this.#label} ignored SIGTERM; sending SIGKILL`);
        signalGroup(this.#pgid, 'SIGKILL');
        await within(this.#exited, 5000);
      }
      // ...and what is left of the grace period to finish before the cgroup is killed.
      await this.#cgroup?.waitEmpty(Math.max(0, graceMs - (performance.now() - since)));
    }
    this.#sweepGroup();
    await within(this.#stdioClosed, 500);
  }

  async #releaseResources(): Promise<void> {
    for (const tunnel of this.#tunnels) tunnel.destroy();
    this.#tunnels.clear();
    const pool = this.#pool;
    this.#pool = undefined;
    // The pool first: nothing may reach the port once another instance can be given it.
    pool?.destroy();
    if (this.#port !== undefined) releasePort(this.#port);
    const cgroup = this.#cgroup;
    this.#cgroup = undefined;
    await cgroup?.destroy();
    // Wake drain() waiters: nothing more can finish.
    this.#inFlight = 0;
    this.#release();
  }

  #settleClosed(exit: InstanceExit): void {
    if (this.#closedSettled) return;
    this.#closedSettled = true;
    this.#resolveClosed(exit);
    this.#options.supervisor.onClosed(this);
  }

  /** Creates the connection pool once the child is ready. */
  #openPool(): UpstreamPool {
    return new UpstreamPool({ host: LOOPBACK, port: this.#port! });
  }
}
