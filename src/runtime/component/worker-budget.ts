// The component worker threads one node runs, across all its component functions. A component
// request runs to completion on a worker thread, so workers past the cores only take turns, and
// each one restores its own 9 MiB snapshot into a cache the others then miss: measured on this
// 2-core machine (up and wrk -c32, 2026-12-03), the TypeScript hello served 1,916 req/s with one
// instance of 2 workers and 186 with 10 instances of 4. So a node lights no component instance
// past the first of a function once the budget is spent, and an instance starts no worker past its first (workers held by slow runs
// aside, see SLOW_RUN_MS); requests wait for the workers there are (or go to a node with room).
import { availableParallelism } from 'node:os';

/**
 * A run older than this holds its worker without, as a rule, holding a core: it waits on an
 * outbound call or loops until its deadline (the OS then shares the cores among the threads).
 * Such workers do not count against the budget, so that a function's other requests, and other
 * functions, are not made to wait behind them.
 */
export const SLOW_RUN_MS = 100;

/** Something that runs component workers: a lit instance. */
export interface WorkerHolder {
  /** Worker threads it runs now. */
  readonly workers: number;
  /** Of them, those held by a run past SLOW_RUN_MS. */
  readonly slowWorkers: number;
  /** Stops one of its idle workers past its first; false when it has none. */
  shedIdleWorker(): boolean;
}

/** Worker threads a node's component instances may run between them, beyond one per instance. */
export class WorkerBudget {
  readonly #holders = new Set<WorkerHolder>();
  /** Workers at most, slow ones included (each function's first instance and worker aside). */
  readonly hardLimit: number;

  constructor(readonly limit: number) {
    this.hardLimit = 4 * limit;
  }

  /** Counts `holder`'s workers from now on (an instance being lit counts as one). */
  join(holder: WorkerHolder): void {
    this.#holders.add(holder);
  }

  /** Stops counting `holder` (its instance closed). */
  leave(holder: WorkerHolder): void {
    this.#holders.delete(holder);
  }

  /** Workers running or about to: each holder counts at least one, its first being on its way. */
  get live(): number {
    return this.#count().all;
  }

  /**
   * True when no more workers should start here, beyond an instance's first: the workers that
   * are not held by slow runs fill the budget, or all of them reach the hard limit.
   */
  get full(): boolean {
    const { all, busy } = this.#count();
    return busy >= this.limit || all >= this.hardLimit;
  }

  /**
   * Makes room for `asker`, whose requests wait, by having another holder stop an idle worker
   * past its first: a function that was busy a while ago does not keep its share from one busy
   * now. True when one was stopped (the budget then has room).
   */
  shedFor(asker: WorkerHolder): boolean {
    for (const holder of this.#holders) if (holder !== asker && holder.shedIdleWorker()) return !this.full;
    return false;
  }

  /** All workers, and those not held by a slow run (each holder at least one of each). */
  #count(): { all: number; busy: number } {
    let all = 0;
    let busy = 0;
    for (const holder of this.#holders) {
      const workers = Math.max(1, holder.workers);
      all += workers;
      busy += Math.max(1, workers - holder.slowWorkers);
    }
    return { all, busy };
  }
}

/**
 * Default worker threads for all component instances of a node: one a core. With `up` and
 * `wrk -c32` on the TypeScript hello (2 cores, 2026-12-03): 2 workers 2,005-2,064 req/s, p99
 * 31-32 ms; 3 workers 1,916, p99 32; 4 workers 1,615-1,657, p99 40-44 (the gateway's thread
 * shares the cores). Handlers that mostly wait on outbound calls want more (`component_workers`).
 */
export const DEFAULT_NODE_COMPONENT_WORKERS = availableParallelism();
