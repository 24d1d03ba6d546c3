// The clock the process runtime reads for restart backoff and crash-loop windows; tests inject their own.

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
