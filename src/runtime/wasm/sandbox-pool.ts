// A pool of pre-started sandbox worker threads shared by every WebAssembly function on the node.
//
// Workers start with the platform, so lighting a function costs a message, not a thread start.
// Each worker runs one request at a time; a request past its deadline is stopped by terminating
// its worker (the only way to stop a wasm loop), which fails that request alone: queued requests
// stay in the pool's queue and go to the replacement or another worker.
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { ErrorCodes, LamplighterError } from '../../errors/index.js';
import type { WorkerRequest, WorkerResult } from './sandbox-protocol.js';

/** One command run requested of the pool. */
export interface SandboxJob {
  key: string;
  module: WebAssembly.Module;
  args: string[];
  env: string[];
  stdin: Uint8Array;
  maxStdout: number;
  /** Monotonic deadline (performance.now() ms); past it the run is stopped and rejected. */
  deadline: number;
  /** Cancels the job while it is still queued. */
  signal?: AbortSignal;
}

/** What a run produced. */
export type SandboxResult = Omit<WorkerResult, 't' | 'job'>;

/** Options for {@link SandboxPool}. */
export interface SandboxPoolOptions {
  /** Worker threads in the pool. @default max(2, availableParallelism()) */
  size?: number;
}

interface Pending {
  id: number;
  job: SandboxJob;
  resolve: (result: SandboxResult) => void;
  reject: (err: LamplighterError) => void;
  timer: NodeJS.Timeout;
  worker: PoolWorker | undefined;
  onAbort: (() => void) | undefined;
}

interface PoolWorker {
  thread: Worker;
  loaded: Set<string>;
  busy: Pending | undefined;
}

const WORKER_URL = new URL('./sandbox-worker.js', import.meta.url);

/** Runs WAGI commands on a fixed set of worker threads, never on the caller's thread. */
export class SandboxPool {
  private readonly workers: PoolWorker[] = [];
  private queue: Pending[] = [];
  private nextJob = 1;
  private closed = false;
  /** Workers replaced after a deadline or crash, for tests and metrics. */
  replacements = 0;

  constructor(options: SandboxPoolOptions = {}) {
    const size = options.size ?? Math.max(2, availableParallelism());
    for (let i = 0; i < size; i++) this.workers.push(this.spawn());
  }

  /** Worker threads in the pool. */
  get size(): number {
    return this.workers.length;
  }

  /** Jobs waiting for a free worker. */
  get queued(): number {
    return this.queue.length;
  }

  /** Number of workers holding the compiled module `key`. */
  holders(key: string): number {
    return this.workers.filter((w) => w.loaded.has(key)).length;
  }

  private spawn(): PoolWorker {
    const worker: PoolWorker = { thread: new Worker(WORKER_URL), loaded: new Set(), busy: undefined };
    worker.thread.unref();
    worker.thread.on('message', (msg: WorkerResult) => this.onResult(worker, msg));
    worker.thread.on('error', (err) => this.onWorkerGone(worker, `sandbox worker failed: ${err.message}`));
    worker.thread.on('exit', () => this.onWorkerGone(worker, 'sandbox worker exited'));
    return worker;
  }

  /** Runs one command; resolves with its output, rejects with TIMEOUT past the deadline. */
  run(job: SandboxJob): Promise<SandboxResult> {
    if (this.closed) return Promise.reject(new LamplighterError(ErrorCodes.SHUTTING_DOWN, 'The sandbox pool is closed'));
    return new Promise<SandboxResult>((resolve, reject) => {
      const pending: Pending = {
        id: this.nextJob++,
        job,
        resolve,
        reject,
        worker: undefined,
        onAbort: undefined,
        timer: setTimeout(() => this.expire(pending), Math.max(0, job.deadline - performance.now())),
      };
      if (job.signal) {
        pending.onAbort = () => this.cancel(pending);
        job.signal.addEventListener('abort', pending.onAbort, { once: true });
      }
      const free = this.workers.find((w) => w.busy === undefined);
      if (free) this.start(free, pending);
      else this.queue.push(pending);
    });
  }

  private start(worker: PoolWorker, pending: Pending): void {
    worker.busy = pending;
    pending.worker = worker;
    const { job } = pending;
    const first = !worker.loaded.has(job.key);
    if (first) worker.loaded.add(job.key);
    const msg: WorkerRequest = {
      t: 'run',
      job: pending.id,
      key: job.key,
      module: first ? job.module : undefined,
      args: job.args,
      env: job.env,
      stdin: job.stdin,
      maxStdout: job.maxStdout,
    };
    worker.thread.postMessage(msg);
  }

  private settle(pending: Pending): void {
    clearTimeout(pending.timer);
    if (pending.onAbort) pending.job.signal?.removeEventListener('abort', pending.onAbort);
  }

  private next(worker: PoolWorker): void {
    worker.busy = undefined;
    const pending = this.queue.shift();
    if (pending) this.start(worker, pending);
  }

  private onResult(worker: PoolWorker, msg: WorkerResult): void {
    const pending = worker.busy;
    if (!pending || pending.id !== msg.job) return;
    this.settle(pending);
    this.next(worker);
    pending.resolve({ exitCode: msg.exitCode, stdout: msg.stdout, stderr: msg.stderr, error: msg.error });
  }

  private cancel(pending: Pending): void {
    // A running job finishes on its own (it is bounded by its deadline); only queued ones leave.
    const index = this.queue.indexOf(pending);
    if (index < 0) return;
    this.queue.splice(index, 1);
    this.settle(pending);
    pending.reject(new LamplighterError(ErrorCodes.BAD_REQUEST, 'The client went away before the request ran'));
  }

  private expire(pending: Pending): void {
    const timeout = new LamplighterError(ErrorCodes.TIMEOUT, 'The handler did not finish before its deadline (limits.timeout)');
    const index = this.queue.indexOf(pending);
    if (index >= 0) {
      this.queue.splice(index, 1);
      this.settle(pending);
      pending.reject(timeout);
      return;
    }
    const worker = pending.worker;
    if (!worker || worker.busy !== pending) return;
    // Still running: the only way to stop a wasm loop is to end its thread.
    this.settle(pending);
    this.replace(worker);
    pending.reject(timeout);
  }

  private replace(worker: PoolWorker): void {
    const index = this.workers.indexOf(worker);
    if (index < 0) return;
    worker.busy = undefined;
    worker.thread.removeAllListeners('exit');
    worker.thread.removeAllListeners('error');
    worker.thread.on('error', () => {});
    void worker.thread.terminate();
    this.replacements++;
    if (this.closed) {
      this.workers.splice(index, 1);
      return;
    }
    const fresh = this.spawn();
    this.workers[index] = fresh;
    this.next(fresh);
  }

  private onWorkerGone(worker: PoolWorker, reason: string): void {
    const pending = worker.busy;
    this.replace(worker);
    if (pending) {
      this.settle(pending);
      pending.reject(new LamplighterError(ErrorCodes.HANDLER_TRAP, `The handler's sandbox failed: ${reason}`));
    }
  }

  /** Drops the compiled module `key` from every worker that holds it. */
  release(key: string): void {
    for (const worker of this.workers) {
      if (!worker.loaded.delete(key)) continue;
      const msg: WorkerRequest = { t: 'unload', key };
      worker.thread.postMessage(msg);
    }
  }

  /** Stops every worker; queued jobs are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const queued = this.queue;
    this.queue = [];
    for (const pending of queued) {
      this.settle(pending);
      pending.reject(new LamplighterError(ErrorCodes.SHUTTING_DOWN, 'The node is shutting down'));
    }
    const workers = this.workers.splice(0);
    await Promise.all(
      workers.map(async (worker) => {
        worker.thread.removeAllListeners('exit');
        const pending = worker.busy;
        await worker.thread.terminate();
        if (pending) {
          this.settle(pending);
          pending.reject(new LamplighterError(ErrorCodes.SHUTTING_DOWN, 'The node is shutting down'));
        }
      }),
    );
  }
}
