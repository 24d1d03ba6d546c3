// Lights process instances of one function: environment, working directory, restart backoff and crash loops.
import path from 'node:path';
import { ErrorCodes, LamplighterError, ManifestError } from '../../errors/index.js';
import type { InstanceFactory, LogSink } from '../../instance/index.js';
import type { FunctionSpec } from '../../manifest/index.js';
import { cgroupSupport } from './child-cgroup.js';
import type { Clock } from './clock.js';
import { processCrashLoopChannel } from './diagnostics.js';
import { ProcessInstance, type InstanceSupervisor } from './process-instance.js';
import { RestartPolicy, type FunctionFailure, type RestartPolicyOptions } from './restart-policy.js';

/** Host environment variables a child inherits unless told otherwise, so interpreters can be found. */
export const DEFAULT_INHERITED_ENV: readonly string[] = ['PATH', 'HOME'];

/** Options for {@link createProcessFactory}. */
export interface ProcessFactoryOptions extends RestartPolicyOptions {
  /** Directory of the app; the child's working directory is `spec.cwd` resolved against it. */
  appDir: string;
  /** Receives the child's stdout and stderr, one line per call. */
  log: LogSink;
  /** Time source for restart backoff and crash-loop windows (not for probes or drains). @default systemClock */
  clock?: Clock;
  /**
   * Host environment variables copied into the child's environment before the manifest's `env`
   * (which may override them); `PORT` is always set last by Lamplighter. Nothing else of the
   * host's environment reaches the child. @default DEFAULT_INHERITED_ENV (PATH, HOME)
   */
  inheritEnv?: readonly string[];
  /** Time between SIGTERM and SIGKILL when an instance stops. @default 5000 */
  killGraceMs?: number;
  /** Stderr lines quoted in failure messages. @default 10 */
  stderrTailLines?: number;
  /** First pause between readiness attempts; grows by half per attempt. @default 10 */
  probeIntervalMs?: number;
  /** Longest pause between readiness attempts. @default 250 */
  maxProbeIntervalMs?: number;
}

/** An {@link InstanceFactory} for `runtime = "process"` functions, with restart backoff and crash-loop state. */
export class ProcessFactory implements InstanceFactory {
  /** The function whose processes this factory starts. */
  readonly spec: FunctionSpec;
  readonly #options: ProcessFactoryOptions;
  readonly #policy: RestartPolicy;
  readonly #cwd: string;
  readonly #env: Record<string, string>;
  readonly #live = new Set<ProcessInstance>();
  readonly #supervisor: InstanceSupervisor;
  #closed = false;

  /** Use {@link createProcessFactory}. */
  constructor(spec: FunctionSpec, options: ProcessFactoryOptions) {
    if (!spec.command || spec.command.length === 0) {
      throw new ManifestError(`Cannot run function '${spec.name}' as a process: it has no command`);
    }
    this.spec = spec;
    this.#options = options;
    this.#policy = new RestartPolicy(`Function '${spec.name}'`, options);
    this.#cwd = path.resolve(options.appDir, spec.cwd ?? '.');
    const env: Record<string, string> = {};
    for (const name of options.inheritEnv ?? DEFAULT_INHERITED_ENV) {
      const value = process.env[name];
      if (value !== undefined) env[name] = value;
    }
    Object.assign(env, spec.env);
    this.#env = env;
    const cgroups = cgroupSupport();
    if (!cgroups.available) {
      options.log('stderr', `[lamplighter] processes that leave a child's process group (setsid, daemons) are not stopped with it: ${cgroups.reason}`);
    }
    this.#supervisor = {
      failure: () => this.#policy.failure,
      waitForTurn: (signal) => this.#policy.waitForTurn({ signal }),
      onReady: () => this.#policy.recordSuccess(),
      onFailure: (_instance, message) => {
        const tripped = this.#policy.recordFailure(message);
        if (tripped) processCrashLoopChannel.publish({ functionName: spec.name, message: tripped.message });
      },
      onClosed: (instance) => this.#live.delete(instance),
    };
  }

  /**
   * Set when the function's processes keep failing (a crash loop): new instances fail at once
   * with FUNCTION_FAILED carrying this message instead of starting. Clears itself after
   * `failureRetryMs` (one more start is tried), on a successful ready, or on {@link reset}.
   */
  get failure(): FunctionFailure | undefined {
    return this.#policy.failure;
  }

  /** Milliseconds a start made now would wait because of earlier failures; 0 when none. */
  get restartDelayMs(): number {
    return this.#policy.delayMs;
  }

  /** Failures since the last instance became ready. */
  get consecutiveFailures(): number {
    return this.#policy.consecutiveFailures;
  }

  /** Instances started by this factory and not yet closed. */
  get instances(): readonly ProcessInstance[] {
    return [...this.#live];
  }

  /** The working directory children start in (absolute). */
  get cwd(): string {
    return this.#cwd;
  }

  /**
   * Starts a new instance. Its process starts after the restart backoff, if any; when the
   * function is crash-looping or the factory is closed, the instance is failed from the start
   * (its `ready` rejects at once, its `closed` resolves as failed).
   */
  create(id: string): ProcessInstance {
    const failure = this.#closed
      ? new LamplighterError(ErrorCodes.SHUTTING_DOWN, `Function '${this.spec.name}' is shutting down`)
      : this.#policy.failure
        ? new LamplighterError(ErrorCodes.FUNCTION_FAILED, this.#policy.failure.message)
        : undefined;
    const instance = new ProcessInstance(id, {
      spec: this.spec,
      cwd: this.#cwd,
      env: this.#env,
      log: this.#options.log,
      supervisor: this.#supervisor,
      ...(this.#options.killGraceMs !== undefined && { killGraceMs: this.#options.killGraceMs }),
      ...(this.#options.stderrTailLines !== undefined && { stderrTailLines: this.#options.stderrTailLines }),
      ...(this.#options.probeIntervalMs !== undefined && { probeIntervalMs: this.#options.probeIntervalMs }),
      ...(this.#options.maxProbeIntervalMs !== undefined && { maxProbeIntervalMs: this.#options.maxProbeIntervalMs }),
      ...(failure && { failWith: failure }),
    });
    if (!failure) this.#live.add(instance);
    return instance;
  }

  /** Forgets every recorded failure and any crash loop, e.g. after a redeploy or an operator's restart. */
  reset(): void {
    this.#policy.reset();
  }

  /** Stops every live instance (drain, SIGTERM, SIGKILL) and refuses new ones. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#live].map((instance) => instance.stop()));
  }
}

/** Creates the factory for a `runtime = "process"` function. */
export function createProcessFactory(spec: FunctionSpec, options: ProcessFactoryOptions): ProcessFactory {
  return new ProcessFactory(spec, options);
}
