// A pool of sandbox worker threads shared by every WebAssembly function on the node.
//
// Workers start when the first WAGI function is deployed, so lighting a function costs a message,
// not a thread start; a node that hosts none runs none.
// Each worker runs one request at a time; a request past its deadline is stopped by terminating
// its worker (the only way to stop a wasm loop), which fails that request alone: queued requests
// stay in the pool's queue and go to the replacement or another worker.
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { ErrorCodes, LamplighterError } from '../../errors/index.js';
import type { WorkerRequest, WorkerResult, WorkerRun } from './sandbox-protocol.js';

/** One command run requested of the pool. */
export interface SandboxJob {
  key: string;
  module: WebAssembly.Module;
  /** Initial and maximum pages of the memory the module imports. */
  memoryPages: [initial: number, maximum: number];
  /** argv, environ and stdin, packed by packRunInput. */
  input: ArrayBuffer;
  maxStdout: number;
  /** Monotonic deadline (performance.now() ms); past it the run is stopped and rejected. */
  deadline: number;
  /**
   * Checked when the job leaves the pool's queue: a job whose client has gone is dropped
   * instead of run. Anything with `aborted` works (an AbortSignal, or a lazy view of one).
   */
  signal?: { readonly aborted: boolean };
}

/** What a run produced. */
export type SandboxResult = Omit<WorkerResult, 'job'>;

/** Options for {@link SandboxPool}. */
export interface SandboxPoolOptions {
  /** Worker threads in the pool. @default max(2, availableParallelism()) */
  size?: number;
  /**
   * Runs sent to one worker before earlier ones have answered. More than one hides the message
   * round trip and lets a worker take several runs per wake-up.
   * @default 16
   */
  pipeline?: number;
  /**
   * A run that has held its worker this long has the runs queued behind it taken back and
   * given to other workers, so a slow or runaway handler delays no other request. @default 20
   */
  stealAfterMs?: number;
}

interface Pending {
  /** Id of the latest send to a worker (0 before the first). */
  id: number;
  job: SandboxJob;
  resolve: (result: SandboxResult) => void;
  reject: (err: LamplighterError) => void;
  /** Answered already (deadline passed while it waited inside a worker); its result is dropped. */
  settled: boolean;
}

interface PoolWorker {
  thread: Worker;
  loaded: Set<string>;
  /** Runs sent to this worker, oldest first; the first is the one running. */
  sent: Pending[];
  /**
   * Shared with the worker: the highest run id decided on, by either side. The worker claims a
   * run by raising it to the run's id (compare-and-swap) before starting it; the pool takes runs
   * back by raising it past them, but only while it still equals the run the worker is executing.
   * One variable changed only by compare-and-swap means a run is either started or taken back,
   * never both.
   */
  shared: Int32Array;
  /** When the current first run became first (it has been running since about then). */
  headSince: number;
  /** Running one run for long: gets nothing more until it answers. */
  stuck: boolean;
  /** Runs decided on in this turn of the event loop, posted together at its end. */
  outbox: WorkerRun[];
}

const WORKER_URL = new URL('./sandbox-worker.js', import.meta.url);

/** Runs WAGI commands on a fixed set of worker threads, never on the caller's thread. */
export class SandboxPool {
  private readonly workers: PoolWorker[] = [];
  private queue: Pending[] = [];
  private nextJob = 1;
  private closed = false;
  private readonly size: number;
  private readonly depth: number;
  private readonly stealAfterMs: number;
  /** Armed only while a run is queued or sent: an idle pool wakes nobody. */
  private watchdog: NodeJS.Timeout | undefined;
  /** Workers replaced after a deadline or crash, for tests and metrics. */
  replacements = 0;
  /** Runs taken back from a busy worker and given to another. */
  stolen = 0;
  /** Users (lit functions) of each compiled module. */
  private readonly users = new Map<string, number>();

  constructor(options: SandboxPoolOptions = {}) {
    this.size = options.size ?? Math.max(2, availableParallelism());
    this.depth = Math.max(1, options.pipeline ?? 16);
    this.stealAfterMs = options.stealAfterMs ?? 20;
  }

  /** Worker threads running (none until the pool is started). */
  get threads(): number {
    return this.workers.length;
  }

  /** Whether the watchdog is armed (only while runs are outstanding). */
  get watching(): boolean {
    return this.watchdog !== undefined;
  }

  /**
   * Starts the worker threads, if they are not running yet. Called when a WAGI function is
   * deployed, so its first request does not wait for threads; a node that hosts none has none.
   */
  start(): void {
    if (this.closed || this.workers.length > 0) return;
    for (let i = 0; i < this.size; i++) this.workers.push(this.spawn());
  }

  /**
   * One interval for the whole pool enforces deadlines and takes runs back from busy workers:
   * no timer per run on the gateway's hot path; deadlines hold to within its period.
   */
  private armWatchdog(): void {
    if (this.watchdog) return;
    this.watchdog = setInterval(() => this.tick(), Math.max(5, Math.min(10, this.stealAfterMs / 2)));
    this.watchdog.unref();
  }

  /** Number of workers holding the compiled module `key`. */
  holders(key: string): number {
    return this.workers.filter((w) => w.loaded.has(key)).length;
  }

  private spawn(): PoolWorker {
    const shared = new Int32Array(new SharedArrayBuffer(4));
    const worker: PoolWorker = { thread: new Worker(WORKER_URL, { workerData: { shared } }), loaded: new Set(), sent: [], shared, headSince: 0, stuck: false, outbox: [] };
    worker.thread.unref();
    worker.thread.on('message', (msg: WorkerResult) => this.onResult(worker, msg));
    worker.thread.on('error', (err) => this.onWorkerGone(worker, `sandbox worker failed: ${err.message}`));
    worker.thread.on('exit', () => this.onWorkerGone(worker, 'sandbox worker exited'));
    return worker;
  }

  /** The worker with the fewest runs sent, if it has room. */
  private leastLoaded(): PoolWorker | undefined {
    let best: PoolWorker | undefined;
    for (const worker of this.workers) {
      if (worker.sent.length >= this.depth || worker.stuck) continue;
      if (!best || worker.sent.length < best.sent.length) best = worker;
      if (best.sent.length === 0) break;
    }
    return best;
  }

  /** Runs one command; resolves with its output, rejects with TIMEOUT past the deadline. */
  run(job: SandboxJob): Promise<SandboxResult> {
    if (this.closed) return Promise.reject(new LamplighterError(ErrorCodes.SHUTTING_DOWN, 'The sandbox pool is closed'));
    return new Promise<SandboxResult>((resolve, reject) => {
      const pending: Pending = {
        id: 0,
        job,
        resolve,
        reject,
        settled: false,
      };
      this.start();
      this.armWatchdog();
      const worker = this.leastLoaded();
      if (worker) this.send(worker, pending);
      else this.queue.push(pending);
    });
  }

  private send(worker: PoolWorker, pending: Pending): void {
    // A fresh id at every send: a run taken back from a busy worker is sent again under a new id,
    // above every id any worker has been told to skip.
    pending.id = this.nextJob++;
    if (worker.sent.length === 0) worker.headSince = performance.now();
    worker.sent.push(pending);
    const { job } = pending;
    const first = !worker.loaded.has(job.key);
    if (first) worker.loaded.add(job.key);
    worker.outbox.push({
      job: pending.id,
      key: job.key,
      module: first ? job.module : undefined,
      memoryPages: first ? job.memoryPages : undefined,
      input: job.input,
      maxStdout: job.maxStdout,
    });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private flushScheduled = false;

  /** Posts each worker's batch of runs; runs once per event-loop turn that sent any. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    for (const worker of this.workers) {
      if (worker.outbox.length === 0) continue;
      const msg: WorkerRequest = { t: 'runs', runs: worker.outbox };
      worker.outbox = [];
      worker.thread.postMessage(msg);
    }
  };

  private settle(pending: Pending): void {
    pending.settled = true;
  }

  /** Sends queued jobs to a worker with room; drops those whose client has gone. */
  private fill(worker: PoolWorker): void {
    while (worker.sent.length < this.depth && !worker.stuck) {
      const pending = this.queue.shift();
      if (!pending) return;
      if (pending.job.signal?.aborted) {
        this.settle(pending);
        pending.reject(new LamplighterError(ErrorCodes.BAD_REQUEST, 'The client went away before the request ran'));
        continue;
      }
      this.send(worker, pending);
    }
  }

  private onResult(worker: PoolWorker, result: WorkerResult): void {
    // A worker being replaced may still deliver what it posted before it was stopped.
    if (!this.workers.includes(worker)) return;
    const pending = worker.sent[0];
    if (pending && pending.id === result.job) {
      worker.sent.shift();
      if (!pending.settled) {
        this.settle(pending);
        pending.resolve({ exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr, error: result.error });
      }
    }
    worker.headSince = performance.now();
    worker.stuck = false;
    this.fill(worker);
  }

  /** True once the worker has claimed `pending` (it is running, or ran and its answer is on the way). */
  private started(worker: PoolWorker, pending: Pending): boolean {
    return Atomics.load(worker.shared, 0) >= pending.id;
  }

  /**
   * The watchdog's tick: deadlines first, then runs stuck behind a long one. Every overdue run is
   * answered before any worker is replaced, so runs handed on by a replacement are never overdue.
   */
  private tick(): void {
    const now = performance.now();
    const timeout = (): LamplighterError => new LamplighterError(ErrorCodes.TIMEOUT, 'The handler did not finish before its deadline (limits.timeout)');
    const overdueQueued = this.queue.filter((p) => now >= p.job.deadline);
    if (overdueQueued.length > 0) {
      this.queue = this.queue.filter((p) => now < p.job.deadline);
      for (const p of overdueQueued) {
        this.settle(p);
        p.reject(timeout());
      }
    }
    for (const worker of [...this.workers]) {
      const overdue = worker.sent.filter((p) => !p.settled && now >= p.job.deadline);
      if (overdue.length === 0) continue;
      for (const p of overdue) {
        this.settle(p);
        p.reject(timeout());
      }
      const head = worker.sent[0];
      if (!head || !overdue.includes(head)) continue;
      // Not started yet: take it back so the worker skips it. Running: the only way to stop a
      // wasm loop is to end its thread. (A run further back just has its late answer dropped.)
      const decided = Atomics.load(worker.shared, 0);
      if (decided < head.id && Atomics.compareExchange(worker.shared, 0, decided, head.id) === decided) {
        worker.sent.shift();
        worker.headSince = now;
        this.fill(worker);
      } else {
        this.replace(worker);
      }
    }
    this.stealFromBusyWorkers();
    if (this.queue.length === 0 && this.workers.every((w) => w.sent.length === 0)) this.disarmWatchdog();
  }

  private disarmWatchdog(): void {
    clearInterval(this.watchdog);
    this.watchdog = undefined;
  }

  /**
   * Takes back the runs queued behind one that has held its worker past `stealAfterMs` and
   * gives them to the other workers; the busy worker will skip them when it gets to them.
   */
  private stealFromBusyWorkers(): void {
    const now = performance.now();
    let moved = false;
    for (const worker of this.workers) {
      if (worker.sent.length === 0 || now - worker.headSince < this.stealAfterMs) continue;
      // Only a worker really executing its first run is held up by it; one that has not reached
      // it yet (a busy machine, a message in transit) is merely slow, and skipping would lose it.
      const head = worker.sent[0]!;
      if (!this.started(worker, head)) continue;
      worker.stuck = true;
      if (worker.sent.length < 2) continue;
      const last = worker.sent[worker.sent.length - 1]!;
      // Fails if the worker has just claimed its next run: then it is no longer held up.
      if (Atomics.compareExchange(worker.shared, 0, head.id, last.id) !== head.id) continue;
      const taken = worker.sent.splice(1);
      this.stolen += taken.length;
      this.queue.unshift(...taken.filter((p) => !p.settled));
      moved = true;
    }
    if (moved) for (const worker of this.workers) this.fill(worker);
  }

  private replace(worker: PoolWorker): void {
    const index = this.workers.indexOf(worker);
    if (index < 0) return;
    worker.thread.removeAllListeners('message');
    worker.thread.removeAllListeners('exit');
    worker.thread.removeAllListeners('error');
    worker.thread.on('error', () => {});
    void worker.thread.terminate();
    this.replacements++;
    // Runs that were waiting behind the stopped one never started: they go first to the others.
    const waiting = worker.sent.slice(1).filter((p) => !p.settled);
    worker.sent = [];
    this.queue.unshift(...waiting);
    if (this.closed) {
      this.workers.splice(index, 1);
      return;
    }
    const fresh = this.spawn();
    this.workers[index] = fresh;
    for (const w of this.workers) this.fill(w);
  }

  private onWorkerGone(worker: PoolWorker, reason: string): void {
    const running = worker.sent[0];
    this.replace(worker);
    if (running && !running.settled) {
      this.settle(running);
      running.reject(new LamplighterError(ErrorCodes.HANDLER_TRAP, `The handler's sandbox failed: ${reason}`));
    }
  }

  /** Notes one more user of the compiled module `key` (modules are shared by identical bytes). */
  acquire(key: string): void {
    this.users.set(key, (this.users.get(key) ?? 0) + 1);
  }

  /**
   * One user of `key` is done; when none is left, every worker drops the module. Runs already
   * decided on go out first, so an unload never overtakes a run of the same module.
   */
  release(key: string): void {
    const users = (this.users.get(key) ?? 1) - 1;
    if (users > 0) {
      this.users.set(key, users);
      return;
    }
    this.users.delete(key);
    this.flush();
    for (const worker of this.workers) {
      if (!worker.loaded.delete(key)) continue;
      const msg: WorkerRequest = { t: 'unload', key };
      worker.thread.postMessage(msg);
    }
  }

  /** Stops every worker; queued and running jobs are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.disarmWatchdog();
    const shuttingDown = (): LamplighterError => new LamplighterError(ErrorCodes.SHUTTING_DOWN, 'The node is shutting down');
    const workers = this.workers.splice(0);
    const pending = [...this.queue, ...workers.flatMap((w) => w.sent)];
    this.queue = [];
    for (const p of pending) {
      if (p.settled) continue;
      this.settle(p);
      p.reject(shuttingDown());
    }
    await Promise.all(
      workers.map(async (worker) => {
        worker.thread.removeAllListeners('exit');
        worker.sent = [];
        await worker.thread.terminate();
      }),
    );
  }
}
