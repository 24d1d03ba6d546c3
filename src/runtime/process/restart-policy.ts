// Restart backoff and crash-loop detection for one function's processes, on an injectable clock.
import { sleep, systemClock, type Clock } from './clock.js';

/** Options for {@link RestartPolicy}. */
export interface RestartPolicyOptions {
  /** Time source for delays and windows. @default systemClock */
  clock?: Clock;
  /** Delay before the start that follows the first failure; it doubles per further failure. @default 100 */
  initialBackoffMs?: number;
  /** Longest delay between starts. @default 10000 */
  maxBackoffMs?: number;
  /** Failures within {@link RestartPolicyOptions.crashLoopWindowMs} that mark the function failed. @default 5 */
  crashLoopThreshold?: number;
  /** Window in which failures count towards a crash loop. @default 30000 */
  crashLoopWindowMs?: number;
  /**
   * Once failed, time after which one more start is let through; if it fails too the function is
   * marked failed again at once, if it becomes ready everything resets. `Infinity` keeps it failed
   * until {@link RestartPolicy.reset}. @default 60000
   */
  failureRetryMs?: number;
}

/** Why a function takes no more starts: its processes keep failing. */
export interface FunctionFailure {
  /** What went wrong, fit to show a user: the count and the last failure with its stderr lines. */
  readonly message: string;
  /** Clock time at which the function was marked failed. */
  readonly since: number;
}

/** Tracks failures of a function's processes; decides how long the next start waits and when to give up. */
export class RestartPolicy {
  readonly #clock: Clock;
  readonly #label: string;
  readonly #initial: number;
  readonly #max: number;
  readonly #threshold: number;
  readonly #window: number;
  readonly #retry: number;
  #recent: number[] = [];
  #consecutive = 0;
  #nextStartAt = 0;
  #failure: FunctionFailure | undefined;
  #retrying = false;
  readonly #waiters = new Set<() => void>();

  /** `label` names the function in messages, e.g. "Function 'echo'". */
  constructor(label: string, options: RestartPolicyOptions = {}) {
    this.#label = label;
    this.#clock = options.clock ?? systemClock;
    this.#initial = options.initialBackoffMs ?? 100;
    this.#max = options.maxBackoffMs ?? 10_000;
    this.#threshold = options.crashLoopThreshold ?? 5;
    this.#window = options.crashLoopWindowMs ?? 30_000;
    this.#retry = options.failureRetryMs ?? 60_000;
  }

  /** The crash loop that stopped starts, or undefined while starts are allowed. */
  get failure(): FunctionFailure | undefined {
    if (this.#failure && this.#clock.now() - this.#failure.since >= this.#retry) {
      this.#failure = undefined;
      this.#retrying = true;
    }
    return this.#failure;
  }

  /** Milliseconds the next start has to wait; 0 when it may begin now. */
  get delayMs(): number {
    return Math.max(0, this.#nextStartAt - this.#clock.now());
  }

  /** Failures since the last successful ready. */
  get consecutiveFailures(): number {
    return this.#consecutive;
  }

  /** Notes a failed process (crash, exit before ready, never ready); returns the failure if it tripped a crash loop now. */
  recordFailure(message: string): FunctionFailure | undefined {
    const now = this.#clock.now();
    this.#consecutive += 1;
    this.#recent = this.#recent.filter((at) => now - at < this.#window);
    this.#recent.push(now);
    const backoff = Math.min(this.#max, this.#initial * 2 ** Math.min(this.#consecutive - 1, 30));
    this.#nextStartAt = Math.max(this.#nextStartAt, now + backoff);
    if (this.#failure) return undefined;
    const tripped = this.#recent.length >= this.#threshold || this.#retrying;
    if (!tripped) return undefined;
    const count = this.#retrying ? this.#consecutive : this.#recent.length;
    const seconds = Math.round(this.#window / 100) / 10;
    const how = this.#retrying
      ? `it failed again after ${count} failures without becoming ready`
      : `${count} failures within ${seconds} s without becoming ready`;
    this.#retrying = false;
    this.#failure = { message: `${this.#label} is crash-looping (${how}); last failure: ${message}`, since: now };
    this.#wakeWaiters();
    return this.#failure;
  }

  /** Notes a process that became ready: clears failures, backoff and any crash loop. */
  recordSuccess(): void {
    this.reset();
  }

  /** Forgets every failure, e.g. after a redeploy or an operator's restart. */
  reset(): void {
    this.#recent = [];
    this.#consecutive = 0;
    this.#nextStartAt = 0;
    this.#failure = undefined;
    this.#retrying = false;
    this.#wakeWaiters();
  }

  #wakeWaiters(): void {
    for (const wake of [...this.#waiters]) wake();
  }

  /**
   * Resolves once the backoff delay has passed (re-checking if more failures pushed it later),
   * or at once when a crash loop is declared or the failures are reset meanwhile, so the caller
   * re-reads {@link RestartPolicy.failure}. Rejects with the signal's reason when it aborts.
   */
  async waitForTurn(options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    for (let round = 0; round < 64; round++) {
      signal?.throwIfAborted();
      const wait = this.delayMs;
      if (wait <= 0 || this.#failure) return;
      const woken = new AbortController();
      const wake = (): void => woken.abort();
      const forward = (): void => woken.abort(signal?.reason);
      this.#waiters.add(wake);
      signal?.addEventListener('abort', forward, { once: true });
      try {
        await sleep(this.#clock, wait, { signal: woken.signal });
      } catch (err) {
        if (signal?.aborted) throw err;
      } finally {
        this.#waiters.delete(wake);
        signal?.removeEventListener('abort', forward);
      }
    }
  }
}
