// A pool of sandbox worker threads shared by every WebAssembly function on the node.
//
// Workers start when the first WAGI function is deployed, so lighting a function costs a message,
// not a thread start; a node that hosts none runs none.
// Each worker runs one request at a time; a request past its deadline is stopped by terminating
// its worker (the only way to stop a wasm loop), which fails that request alone: runs that had
// not started go back to the pool's queue and on to the replacement or another worker.
//
// Fairness: a worker whose run has been going for `stealAfterMs` is *held*. While every worker is
// held, the pool starts an extra one (up to `maxWorkers`), stopped again once it has been idle for
// `retireAfterMs`. Any function may use the `size` base workers (a function alone keeps all of
// them), but one holding `maxHeldPerFunction` workers with long runs gets no extra worker: its
// further runs wait in the pool's queue (never inside a busy worker), and the extra workers stay
// free for the other functions. A run still going after
// `lowerPriorityAfterMs` has its thread's CPU priority lowered (nice 19, where the OS allows it),
// so long runs use what CPU the others leave; the thread is restored, or renewed, when it ends.
import { availableParallelism, setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { ErrorCodes, LamplighterError } from '../../errors/index.js';
import type { WorkerRequest, WorkerResult, WorkerRun } from './sandbox-protocol.js';

/** One command run requested of the pool. */
export interface SandboxJob {
  key: string;
  /**
   * Whose run this is (the function): an owner holding `maxHeldPerFunction` workers with long
   * runs gets no extra worker. @default key
   */
  owner?: string;
  module: WebAssembly.Module;
  /** Initial and maximum pages of the memory the module imports. */
  memoryPages: [initial: number, maximum: number];
  /** argv, environ and stdin, packed by packRunInput. */
  input: ArrayBuffer;
  maxStdout: number;
  /** Directory of the function's shipped files, preopened read-only as `/`. @default none */
  filesDir?: string;
  /** Monotonic deadline (performance.now() ms); past it the run is stopped and rejected. */
  deadline: number;
  /** The error a run past its deadline is rejected with. @default a TIMEOUT naming no function */
  timeoutError?: () => LamplighterError;
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
  /** Worker threads the pool keeps. @default max(2, availableParallelism()) */
  size?: number;
  /**
   * Runs sent to one worker before earlier ones have answered. More than one hides the message
   * round trip and lets a worker take several runs per wake-up.
   * @default 16
   */
  pipeline?: number;
  /**
   * A run that has held its worker this long makes the worker *held*: the runs queued behind it
   * are taken back and given to other workers, and it counts against its function's share.
   * @default 20
   */
  stealAfterMs?: number;
  /** Held workers past which a function's runs get no extra worker. @default ceil(size / 2) */
  maxHeldPerFunction?: number;
  /** Worker threads at most, extra ones included (started while every worker is held). @default 2 * size + 1 */
  maxWorkers?: number;
  /** An extra worker idle this long is stopped. @default 2000 */
  retireAfterMs?: number;
  /** A run going this long gets the lowest CPU priority for the rest of it. @default 100 */
  lowerPriorityAfterMs?: number;
}

/** The pool's state at one moment, for metrics. */
/** One sandbox worker as `inspect` shows it. */
export interface SandboxWorkerView {
  /** Its place in the pool. */
  index: number;
  /** Loaded its code and listens for runs. */
  ready: boolean;
  /** Runs sent to it and not yet answered. */
  runs: number;
  /** The function whose run it is on, and for how long (ms); none when idle. */
  current: { function: string; forMs: number } | undefined;
  /** Held by a long run (gets nothing more until it answers). */
  held: boolean;
  /** Runs at the lowest CPU priority (a long run holds it). */
  lowered: boolean;
  /** Started while every worker was held; stopped when idle. */
  extra: boolean;
}

export interface SandboxPoolFigures {
  /** Worker threads running. */
  workers: number;
  /** Workers with a run sent to them. */
  busy: number;
  /** Workers held by a run older than `stealAfterMs`. */
  held: number;
  /** Runs waiting in the pool for a worker. */
  queued: number;
  /** Worker threads started and not yet ready for runs (still loading their code). */
  starting: number;
  /** Workers whose thread runs at the lowest CPU priority (a long run holds it). */
  lowered: number;
  /** Workers stopped because a run passed its deadline. */
  replacedForTimeout: number;
  /** Workers that failed or exited on their own. */
  replacedForCrash: number;
  /** Extra workers started while every worker was held. */
  extraStarted: number;
}

interface Pending {
  /** Id of the latest send to a worker (0 before the first). */
  id: number;
  job: SandboxJob;
  owner: string;
  resolve: (result: SandboxResult) => void;
  reject: (err: LamplighterError) => void;
  /** Answered already (by a deadline, a crash or shutdown); a late result is dropped. */
  settled: boolean;
}

interface PoolWorker {
  thread: Worker;
  loaded: Set<string>;
  /** Runs sent to this worker and not yet answered, oldest first. */
  sent: Pending[];
  /**
   * Shared with the worker: the highest run id decided on, by either side. The worker claims a
   * run by raising it to the run's id (compare-and-swap) before starting it; the pool takes runs
   * back by raising it past them. One variable changed only by compare-and-swap means a run is
   * either started or taken back, never both. Runs with ids up to it have started (and all but
   * the last have ended: a worker claims its next run only after answering the one before).
   * Index 1 holds the worker's OS thread id (0 where unknown), index 2 becomes 1 once the worker
   * has loaded its code and listens for runs.
   */
  shared: Int32Array;
  /** When the current first run became first (it has been running since about then). */
  headSince: number;
  /** Owner of the long run holding this worker; a held worker gets nothing more until it answers. */
  heldBy: string | undefined;
  /** When the worker last had nothing sent (for retiring extra workers). */
  idleSince: number;
  /** Runs decided on in this turn of the event loop, posted together at its end. */
  outbox: WorkerRun[];
  /** Started while every worker was held (or replaces one that was); stopped when idle. */
  extra: boolean;
  /** Has loaded its code and listens for runs (index 2 of `shared`, cached once seen). */
  ready: boolean;
  /** Its thread runs at the lowest CPU priority (a long run holds it). */
  lowered: boolean;
  /** Stopped and out of the pool; still delivers what it posted before it stopped. */
  retired: boolean;
  /** Why it failed, if it did, for the exit that follows. */
  failure?: string;
}

const WORKER_URL = new URL('./sandbox-worker.js', import.meta.url);

/** Runs WAGI commands on worker threads, never on the caller's thread. */
export class SandboxPool {
  readonly #workers: PoolWorker[] = [];
  #queue: Pending[] = [];
  #nextJob = 1;
  #closed = false;
  readonly #size: number;
  readonly #depth: number;
  readonly #stealAfterMs: number;
  readonly #maxHeld: number;
  readonly #maxWorkers: number;
  readonly #retireAfterMs: number;
  readonly #lowerAfterMs: number;
  /** Workers held by each owner's long runs (only owners holding one or more). */
  readonly #held = new Map<string, number>();
  /** Armed only while a run is queued or sent, or an extra worker runs: an idle pool wakes nobody. */
  #watchdog: NodeJS.Timeout | undefined;
  #flushScheduled = false;
  /** Workers replaced after a deadline or crash, for tests and metrics. */
  replacements = 0;
  #replacedForTimeout = 0;
  #extraStarted = 0;
  /** Runs taken back from a busy worker and given to another. */
  stolen = 0;
  /** Users (lit functions) of each compiled module. */
  readonly #users = new Map<string, number>();

  constructor(options: SandboxPoolOptions = {}) {
    this.#size = Math.max(1, options.size ?? Math.max(2, availableParallelism()));
    this.#depth = Math.max(1, options.pipeline ?? 16);
    this.#stealAfterMs = options.stealAfterMs ?? 20;
    this.#maxHeld = Math.max(1, options.maxHeldPerFunction ?? Math.ceil(this.#size / 2));
    this.#maxWorkers = Math.max(this.#size, options.maxWorkers ?? 2 * this.#size + 1);
    this.#retireAfterMs = options.retireAfterMs ?? 2000;
    this.#lowerAfterMs = options.lowerPriorityAfterMs ?? 100;
  }

  /** Worker threads running (none until the pool is started). */
  get threads(): number {
    return this.#workers.length;
  }

  /** Whether the watchdog is armed (only while runs are outstanding or extra workers run). */
  get watching(): boolean {
    return this.#watchdog !== undefined;
  }

  /** The pool's state now: workers, busy and held ones, queued runs, replacements. */
  /** Every worker now: what it runs and for how long. */
  workerViews(now = performance.now()): SandboxWorkerView[] {
    return this.#workers.map((worker, index) => {
      const head = worker.sent[0];
      return {
        index,
        ready: this.#ready(worker),
        runs: worker.sent.length,
        current: head && { function: head.owner, forMs: Math.round(now - worker.headSince) },
        held: worker.heldBy !== undefined,
        lowered: worker.lowered,
        extra: worker.extra,
      };
    });
  }

  figures(): SandboxPoolFigures {
    let busy = 0;
    let held = 0;
    let starting = 0;
    let lowered = 0;
    for (const worker of this.#workers) {
      if (worker.sent.length > 0) busy++;
      if (worker.heldBy !== undefined) held++;
      if (!this.#ready(worker)) starting++;
      if (worker.lowered) lowered++;
    }
    return {
      workers: this.#workers.length,
      busy,
      held,
      queued: this.#queue.length,
      starting,
      lowered,
      replacedForTimeout: this.#replacedForTimeout,
      replacedForCrash: this.replacements - this.#replacedForTimeout,
      extraStarted: this.#extraStarted,
    };
  }

  /**
   * Starts the worker threads, if they are not running yet. Called when a WAGI function is
   * deployed, so its first request does not wait for threads; a node that hosts none has none.
   */
  start(): void {
    if (this.#closed || this.#workers.length > 0) return;
    for (let i = 0; i < this.#size; i++) this.#workers.push(this.#spawn());
  }

  /**
   * One interval for the whole pool enforces deadlines and takes runs back from busy workers:
   * no timer per run on the gateway's hot path; deadlines hold to within its period.
   */
  #armWatchdog(): void {
    if (this.#watchdog) return;
    this.#watchdog = setInterval(() => this.#tick(), Math.max(5, Math.min(10, this.#stealAfterMs / 2)));
    this.#watchdog.unref();
  }

  #disarmWatchdog(): void {
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
  }

  /** Number of workers holding the compiled module `key`. */
  holders(key: string): number {
    return this.#workers.filter((w) => w.loaded.has(key)).length;
  }

  #spawn(extra = false): PoolWorker {
    const shared = new Int32Array(new SharedArrayBuffer(12));
    const worker: PoolWorker = {
      thread: new Worker(WORKER_URL, { workerData: { shared } }),
      loaded: new Set(),
      sent: [],
      shared,
      headSince: 0,
      heldBy: undefined,
      idleSince: performance.now(),
      outbox: [],
      extra,
      ready: false,
      lowered: false,
      retired: false,
    };
    worker.thread.unref();
    worker.thread.on('message', (msg: WorkerResult) => this.#onResult(worker, msg));
    worker.thread.on('error', (err) => (worker.failure = `sandbox worker failed: ${err.message}`));
    worker.thread.on('exit', () => this.#onExit(worker));
    return worker;
  }

  /** Whether `owner` already holds its share of workers with long runs (and so gets no extra one). */
  #atShare(owner: string): boolean {
    return this.#held.size > 0 && (this.#held.get(owner) ?? 0) >= this.#maxHeld;
  }

  /** Whether the worker has loaded its code and listens for runs. */
  #ready(worker: PoolWorker): boolean {
    if (!worker.ready && Atomics.load(worker.shared, 2) === 1) worker.ready = true;
    return worker.ready;
  }

  /**
   * The worker with the fewest runs sent, if one has room (an extra one only while `owner` is
   * within its share). One still starting (a replacement, an extra) counts as full, so a run
   * waits for a thread start only when no started worker has room.
   */
  #leastLoaded(owner: string): PoolWorker | undefined {
    const baseOnly = this.#atShare(owner);
    let best: PoolWorker | undefined;
    let bestLoad = 0;
    for (const worker of this.#workers) {
      if (worker.sent.length >= this.#depth || worker.heldBy !== undefined || (baseOnly && worker.extra)) continue;
      const load = this.#ready(worker) ? worker.sent.length : this.#depth + worker.sent.length;
      if (!best || load < bestLoad) {
        best = worker;
        bestLoad = load;
      }
      if (bestLoad === 0) break;
    }
    return best;
  }

  /** Runs one command; resolves with its output, rejects with TIMEOUT past the deadline. */
  run(job: SandboxJob): Promise<SandboxResult> {
    if (this.#closed) return Promise.reject(new LamplighterError(ErrorCodes.SHUTTING_DOWN, 'The sandbox pool is closed'));
    return new Promise<SandboxResult>((resolve, reject) => {
      const pending: Pending = { id: 0, job, owner: job.owner ?? job.key, resolve, reject, settled: false };
      this.start();
      this.#armWatchdog();
      const worker = this.#leastLoaded(pending.owner);
      if (worker) this.#send(worker, pending);
      else this.#queue.push(pending);
    });
  }

  #send(worker: PoolWorker, pending: Pending): void {
    // A fresh id at every send: a run taken back from a busy worker is sent again under a new id,
    // above every id any worker has been told to skip.
    pending.id = this.#nextJob++;
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
      ...(job.filesDir === undefined ? {} : { filesDir: job.filesDir }),
    });
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flush);
    }
  }

  /** Posts each worker's batch of runs; runs once per event-loop turn that sent any. */
  readonly #flush = (): void => {
    this.#flushScheduled = false;
    for (const worker of this.#workers) {
      if (worker.outbox.length === 0) continue;
      const msg: WorkerRequest = { t: 'runs', runs: worker.outbox };
      worker.outbox = [];
      worker.thread.postMessage(msg);
    }
  };

  /**
   * Sends queued jobs to a worker with room; drops those whose client has gone. A worker still
   * starting takes none (the watchdog's next tick fills it once it is ready), so queued runs go to
   * whichever worker frees first rather than wait for a thread start.
   */
  #fill(worker: PoolWorker): void {
    if (!this.#ready(worker)) return;
    let i = 0;
    while (worker.sent.length < this.#depth && worker.heldBy === undefined && i < this.#queue.length) {
      const pending = this.#queue[i] as Pending;
      if (pending.job.signal?.aborted) {
        this.#queue.splice(i, 1);
        pending.settled = true;
        pending.reject(new LamplighterError(ErrorCodes.BAD_REQUEST, 'The client went away before the request ran'));
        continue;
      }
      // A function at its share waits for a base worker; others go past it to an extra one.
      if (worker.extra && this.#atShare(pending.owner)) {
        i++;
        continue;
      }
      if (i === 0) this.#queue.shift();
      else this.#queue.splice(i, 1);
      this.#send(worker, pending);
    }
  }

  #fillAll(): void {
    if (this.#queue.length === 0) return;
    for (const worker of this.#workers) this.#fill(worker);
  }

  #hold(worker: PoolWorker, owner: string): void {
    worker.heldBy = owner;
    this.#held.set(owner, (this.#held.get(owner) ?? 0) + 1);
  }

  #unhold(worker: PoolWorker): void {
    const owner = worker.heldBy;
    if (owner === undefined) return;
    worker.heldBy = undefined;
    const count = (this.#held.get(owner) ?? 1) - 1;
    if (count > 0) this.#held.set(owner, count);
    else this.#held.delete(owner);
  }

  #onResult(worker: PoolWorker, result: WorkerResult): void {
    // Answers come in the order the runs were sent, but a run taken back never answers.
    const index = worker.sent.findIndex((p) => p.id === result.job);
    if (index < 0) return;
    const [pending] = worker.sent.splice(index, 1) as [Pending];
    if (!pending.settled) {
      pending.settled = true;
      pending.resolve({ exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr, error: result.error, runMs: result.runMs, memoryBytes: result.memoryBytes });
    }
    if (worker.retired) return;
    const now = performance.now();
    worker.headSince = now;
    if (worker.sent.length === 0) worker.idleSince = now;
    const wasHeld = worker.heldBy !== undefined;
    this.#unhold(worker);
    if (worker.lowered && !this.#restorePriority(worker)) {
      // Without the right to raise a priority again, a fresh thread takes its place.
      this.#replace(worker, 'renew');
      return;
    }
    // A long run's end may let its function's waiting runs go anywhere, not only here.
    if (wasHeld) this.#fillAll();
    else this.#fill(worker);
  }

  /**
   * Takes back every run sent to `worker` that it has not started, returning them to the front of
   * the pool's queue (those already answered are dropped). Leaves `sent` holding only started runs.
   */
  #withdraw(worker: PoolWorker): void {
    const last = worker.sent[worker.sent.length - 1];
    if (!last) return;
    let decided: number;
    // The worker raises the shared id at most once per run sent, so this ends.
    for (;;) {
      decided = Atomics.load(worker.shared, 0);
      if (decided >= last.id) return;
      if (Atomics.compareExchange(worker.shared, 0, decided, last.id) === decided) break;
    }
    const first = worker.sent.findIndex((p) => p.id > decided);
    const taken = worker.sent.splice(first);
    this.stolen += taken.length;
    this.#queue.unshift(...taken.filter((p) => !p.settled));
    if (worker.sent.length === 0) worker.idleSince = performance.now();
  }

  /**
   * The run `worker` is executing (or has just ended, its answer on the way), if any: the last
   * started one. (The shared id may be past it, if runs behind it were taken back.)
   */
  #running(worker: PoolWorker): Pending | undefined {
    const decided = Atomics.load(worker.shared, 0);
    let running: Pending | undefined;
    for (const p of worker.sent) {
      if (p.id > decided) break;
      running = p;
    }
    return running;
  }

  /**
   * The watchdog's tick: deadlines, then runs stuck behind a long one, then the pool's size. A
   * run past its deadline is answered at once; if it has not started it is taken back, and if it
   * is running its worker is replaced, so no worker ever runs a run nobody waits for.
   */
  #tick(): void {
    const now = performance.now();
    const timeout = (): LamplighterError => new LamplighterError(ErrorCodes.TIMEOUT, 'The handler did not finish before its deadline (limits.timeout)');
    if (this.#queue.some((p) => now >= p.job.deadline)) {
      const overdue = this.#queue.filter((p) => now >= p.job.deadline);
      this.#queue = this.#queue.filter((p) => now < p.job.deadline);
      for (const p of overdue) {
        p.settled = true;
        p.reject(p.job.timeoutError?.() ?? timeout());
      }
    }
    for (const worker of [...this.#workers]) {
      let overdue = false;
      for (const p of worker.sent) {
        if (now < p.job.deadline) continue;
        overdue = true;
        if (!p.settled) {
          p.settled = true;
          p.reject(p.job.timeoutError?.() ?? timeout());
        }
      }
      if (!overdue) continue;
      this.#withdraw(worker);
      const running = this.#running(worker);
      // The only way to stop a wasm loop is to end its thread.
      if (running && now >= running.job.deadline) this.#replace(worker, 'timeout');
    }
    this.#stealFromBusyWorkers(now);
    this.#lowerLongRuns(now);
    this.#grow();
    this.#fillAll();
    this.#retireIdle(now);
    if (this.#queue.length === 0 && this.#workers.length <= this.#size && this.#workers.every((w) => w.sent.length === 0)) this.#disarmWatchdog();
  }

  /**
   * Marks workers whose first run has gone on past `stealAfterMs` as held, and takes back the runs
   * queued behind it for the other workers; the busy worker will skip them when it gets to them.
   */
  #stealFromBusyWorkers(now: number): void {
    for (const worker of this.#workers) {
      if (worker.heldBy !== undefined || worker.sent.length === 0 || now - worker.headSince < this.#stealAfterMs) continue;
      // Only a worker really executing its first run is held up by it; one that has not reached
      // it yet (a busy machine, a message in transit) is merely slow.
      const head = worker.sent[0] as Pending;
      if (Atomics.load(worker.shared, 0) < head.id) continue;
      this.#hold(worker, head.owner);
      this.#withdraw(worker);
    }
  }

  /** Gives the threads of runs going for lowerPriorityAfterMs the lowest CPU priority. */
  #lowerLongRuns(now: number): void {
    for (const worker of this.#workers) {
      if (worker.lowered || worker.heldBy === undefined || now - worker.headSince < this.#lowerAfterMs) continue;
      const tid = Atomics.load(worker.shared, 1);
      if (tid === 0) continue;
      try {
        setPriority(tid, 19);
        worker.lowered = true;
      } catch {
        // Not on this OS (per-thread priorities are a Linux feature); the share and growth still hold.
      }
    }
  }

  /** Gives a lowered worker's thread its normal priority back; false if the OS refuses. */
  #restorePriority(worker: PoolWorker): boolean {
    try {
      setPriority(Atomics.load(worker.shared, 1), 0);
      worker.lowered = false;
      return true;
    } catch {
      return false;
    }
  }

  /** While every worker is held by a long run, starts one more (up to maxWorkers) for the others. */
  #grow(): void {
    if (this.#closed || this.#workers.length >= this.#maxWorkers || this.#workers.length === 0) return;
    if (this.#workers.some((w) => w.heldBy === undefined)) return;
    this.#workers.push(this.#spawn(true));
    this.#extraStarted++;
  }

  /** Stops extra workers idle for retireAfterMs, keeping one free worker while others are held. */
  #retireIdle(now: number): void {
    if (this.#workers.length <= this.#size) return;
    for (let i = this.#workers.length - 1; i >= 0; i--) {
      const worker = this.#workers[i] as PoolWorker;
      if (!worker.extra || worker.sent.length > 0 || worker.outbox.length > 0 || now - worker.idleSince < this.#retireAfterMs) continue;
      const othersFree = this.#workers.some((w) => w !== worker && w.heldBy === undefined);
      if (!othersFree) return;
      this.#workers.splice(i, 1);
      worker.retired = true;
      worker.thread.removeAllListeners('exit');
      void worker.thread.terminate();
    }
  }

  /**
   * Stops `worker` and puts a fresh one in its place. Runs it had not started go back to the
   * queue; the old thread still delivers answers it posted before it stopped, and runs left
   * unanswered when it exits are failed then.
   */
  #replace(worker: PoolWorker, reason: 'timeout' | 'crash' | 'renew'): void {
    const index = this.#workers.indexOf(worker);
    if (index < 0) return;
    this.#withdraw(worker);
    this.#unhold(worker);
    worker.retired = true;
    void worker.thread.terminate();
    if (reason !== 'renew') this.replacements++;
    if (reason === 'timeout') this.#replacedForTimeout++;
    if (this.#closed) {
      this.#workers.splice(index, 1);
      return;
    }
    this.#workers[index] = this.#spawn(worker.extra);
    this.#fillAll();
  }

  #onExit(worker: PoolWorker): void {
    // Everything the thread posted has been delivered by now; what is left never ran to the end.
    if (!worker.retired) this.#replace(worker, 'crash');
    const reason = worker.failure ?? 'sandbox worker exited';
    for (const p of worker.sent.splice(0)) {
      if (p.settled) continue;
      p.settled = true;
      p.reject(new LamplighterError(ErrorCodes.HANDLER_TRAP, `The handler's sandbox failed: ${reason}`));
    }
  }

  /** Notes one more user of the compiled module `key` (modules are shared by identical bytes). */
  acquire(key: string): void {
    this.#users.set(key, (this.#users.get(key) ?? 0) + 1);
  }

  /**
   * One user of `key` is done; when none is left, every worker drops the module. Runs already
   * decided on go out first, so an unload never overtakes a run of the same module.
   */
  release(key: string): void {
    const users = (this.#users.get(key) ?? 1) - 1;
    if (users > 0) {
      this.#users.set(key, users);
      return;
    }
    this.#users.delete(key);
    this.#flush();
    for (const worker of this.#workers) {
      if (!worker.loaded.delete(key)) continue;
      const msg: WorkerRequest = { t: 'unload', key };
      worker.thread.postMessage(msg);
    }
  }

  /** Stops every worker; queued and running jobs are rejected. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#disarmWatchdog();
    const shuttingDown = (): LamplighterError => new LamplighterError(ErrorCodes.SHUTTING_DOWN, 'The node is shutting down');
    const workers = this.#workers.splice(0);
    const pending = [...this.#queue, ...workers.flatMap((w) => w.sent)];
    this.#queue = [];
    for (const p of pending) {
      if (p.settled) continue;
      p.settled = true;
      p.reject(shuttingDown());
    }
    await Promise.all(
      workers.map(async (worker) => {
        worker.retired = true;
        worker.thread.removeAllListeners('exit');
        worker.sent = [];
        await worker.thread.terminate();
      }),
    );
  }
}
