// The clocks the process runtime and the dispatcher read for backoff, crash-loop windows and timeouts; tests inject their own.

/** A timer handle as returned by {@link Clock.setTimeout}. */
export type ClockTimer = unknown;

/** Time source and timer scheduler; swap it to test backoff without real waiting. */
export interface Clock {
  /** Milliseconds since some fixed origin (only differences are used). */
  now(): number;
  /** Calls `callback` once after `ms` milliseconds of this clock's time. */
  setTimeout(callback: () => void, ms: number): ClockTimer;
  /** Cancels a timer from {@link Clock.setTimeout}; unknown handles are ignored. */
  clearTimeout(timer: ClockTimer): void;
}

/** The real clock: `performance.now()` and node's timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (timer) => clearTimeout(timer as ReturnType<typeof setTimeout>),
};

/** Resolves after `ms` of `clock` time, or rejects with the signal's reason when it aborts first. */
export function sleep(clock: Clock, ms: number, options: { signal?: AbortSignal } = {}): Promise<void> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A clock that moves only when told, for tests of backoff, crash-loop windows and the
 * dispatcher's timeouts: timers fire in time order, each with the clock set to its due time,
 * as {@link ManualClock.advance} passes them.
 */
export class ManualClock implements Clock {
  #now: number;
  #next = 1;
  readonly #timers = new Map<number, { at: number; callback: () => void }>();

  /** `start` is the first reading of {@link ManualClock.now}. @default 1000 */
  constructor(start = 1_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): ClockTimer {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(timer: ClockTimer): void {
    this.#timers.delete(timer as number);
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Clock time at which the next timer is due; undefined when none is waiting. */
  get nextDue(): number | undefined {
    let next: number | undefined;
    for (const timer of this.#timers.values()) if (next === undefined || timer.at < next) next = timer.at;
    return next;
  }

  /** Moves time on by `ms`, firing every timer due by then (including ones those timers set). */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (let guard = 0; guard < 10_000; guard++) {
      let due: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.#timers) if (entry[1].at <= target && (!due || entry[1].at < due[1].at)) due = entry;
      if (!due) break;
      this.#timers.delete(due[0]);
      this.#now = due[1].at;
      due[1].callback();
    }
    this.#now = target;
  }
}
