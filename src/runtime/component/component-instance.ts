// A component instance: worker threads that each serve one request at a time, with deadlines enforced here.
import { SLOW_RUN_MS, type WorkerBudget } from './worker-budget.js';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { ErrorCodes, functionTimeout, LamplighterError } from '../../errors/index.js';
import {
  HOP_BY_HOP_HEADERS,
  hasRequestBody,
  isAborted,
  listenForAbort,
  type HeaderPairs,
  type Instance,
  type InstanceExit,
  type InstanceState,
  type InvocationRequest,
  type InvocationResponse,
  type LogSink,
  SentBack,
} from '../../instance/index.js';
import { IsolationDefaults, type FunctionSpec } from '../../manifest/index.js';
import { traceOf, type TraceSpan } from '../../tracing/index.js';
import { OutboundClient } from './outbound-client.js';
import type { OutboundRule } from './outbound-policy.js';
import {
  AHEAD_SLOT,
  emptyWorkerStats,
  NO_RESPONSE_HEADER,
  STREAM_WINDOW,
  type ComponentWorkerData,
  type FromWorker,
  type RunFailure,
  type ToWorker,
  type WireHeaders,
  type WorkerStats,
} from './component-protocol.js';

/** What every instance of one component function shares: compiled modules, bindings, policy. */
export interface ComponentRuntime {
  readonly spec: FunctionSpec;
  readonly log: LogSink;
  /** Compiled core modules by file name, compiled once per factory. */
  readonly modules: Promise<Record<string, WebAssembly.Module>>;
  /** Source of the instantiation module. */
  readonly bindings: string;
  /** Name of the exported incoming-handler instance. */
  readonly handlerExport: string;
  readonly rules: readonly OutboundRule[];
  /** JS heap limit of each worker, in MiB. */
  readonly workerHeapMb: number;
  /** Worker threads an instance may run: limits.concurrency, capped. */
  readonly maxWorkers: number;
  /** The node's component workers: an instance starts none past its first while it is spent. */
  readonly budget: WorkerBudget;
  /** Told, after each request, the thread time its worker spent since the last one (handler, restore, instantiation), in seconds. @default not told */
  readonly onRun?: (seconds: number) => void;
  /** The function's shipped files, preopened read-only as `/`. @default none */
  readonly filesDir?: string;
}

const EMPTY = Buffer.alloc(0);

const WORKER_URL = new URL('./component-worker.js', import.meta.url);

let nextRequestId = 1;
const MAX_REQUEST_ID = 0x7fffffff;

interface Job {
  readonly request: InvocationRequest;
  readonly resolve: (response: InvocationResponse) => void;
  readonly reject: (err: unknown) => void;
  id: number;
  slot: WorkerSlot | undefined;
  /** When it was sent to its worker (performance.now()). */
  startedAt: number;
  body: Readable | undefined;
  /**
   * A head read in the delivery now being handled, held until the delivery's end: when the body
   * ended in the same delivery, the caller gets it whole (one write to the client, no stream).
   */
  head: { status: number; headers: HeaderPairs } | undefined;
  /** The held head's body so far. */
  pieces: Buffer[] | undefined;
  /** Response bytes received from the worker and not yet credited back. */
  uncredited: number;
  /** Request body bytes sent to the worker and not yet read by the handler. */
  inflight: number;
  bodyPaused: boolean;
  /** True once the whole response body has been pushed to the reader. */
  bodyEnded: boolean;
  settled: boolean;
  timer: NodeJS.Timeout | undefined;
  detach: () => void;
  /** Set once the caller gave up on the job: what to log if its worker must be stopped. */
  abandoned: string | undefined;
  /** Taken by handleAhead: given back to the caller (SentBack), not queued here, if taken back. */
  sendBack: boolean;
  /** The run's span, when the request is traced; outbound calls are its children. */
  span?: TraceSpan | undefined;
}

/** A job not yet sent to a worker. */
function newJob(request: InvocationRequest, resolve: (response: InvocationResponse) => void, reject: (err: unknown) => void, sendBack: boolean): Job {
  return {
    request,
    resolve,
    reject,
    id: 0,
    slot: undefined,
    startedAt: 0,
    body: undefined,
    head: undefined,
    pieces: undefined,
    uncredited: 0,
    inflight: 0,
    bodyPaused: false,
    bodyEnded: false,
    settled: false,
    timer: undefined,
    detach: () => undefined,
    abandoned: undefined,
    sendBack,
  };
}

/**
 * Time a handler the caller gave up on (timeout, client gone) has to unwind by itself before its
 * worker thread is terminated. A handler waiting on the host (a timer, a body, an outbound call)
 * stops at once and its worker stays, with a new instance; one busy computing cannot be
 * interrupted inside the thread, and its worker is replaced.
 */
export const STOP_GRACE_MS = 250;

/** A request is sent ahead only behind a run younger than this, and asked back once the run is older. */
const AHEAD_BEHIND_MS = 20;

/** Where a worker's messages and exit go: the instance that owns it, or the factory's standby. */
export interface SlotOwner {
  onMessage(slot: WorkerSlot, message: FromWorker): void;
  /** After each delivery from the worker (one message, or a batch of them). */
  onDelivered?(slot: WorkerSlot): void;
  onExit(slot: WorkerSlot, reason: string): void;
}

/** One worker thread and its channel. */
export class WorkerSlot {
  readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly signal: Int32Array;
  readonly ready: Promise<void>;
  readonly outbound: OutboundClient;
  /** The request it runs, or will run first. */
  job: Job | undefined;
  /** A request sent ahead, which the worker starts once `job` ends (see {@link ComponentInstance.pump}). */
  next: Job | undefined;
  loaded = false;
  dead = false;
  /** The worker's counters since its current owner took it, as its last answer carried them. */
  stats: WorkerStats | undefined;
  /** Linear memory its instance held at its last answer, in bytes. */
  memoryBytes = 0;
  /** The worker's own counters (since it started), as its last answer carried them. */
  private raw: WorkerStats | undefined;
  /** The worker's own counters when its current owner took it. */
  private baseline: WorkerStats | undefined;

  constructor(
    runtime: ComponentRuntime,
    modules: Record<string, WebAssembly.Module>,
    private owner: SlotOwner,
  ) {
    const { port1, port2 } = new MessageChannel();
    const signal = new SharedArrayBuffer(12);
    this.port = port1;
    this.signal = new Int32Array(signal);
    this.outbound = new OutboundClient({
      rules: runtime.rules,
      send: (m, t) => this.send(m, t),
      log: runtime.log,
      // One request at a time per worker: an outbound call belongs to the job it runs.
      traceOfCall: () => {
        const job = this.job;
        const trace = job && traceOf(job.request);
        return trace && job.span ? { trace, run: job.span } : undefined;
      },
    });
    const workerData: ComponentWorkerData = {
      modules,
      bindings: runtime.bindings,
      handlerExport: runtime.handlerExport,
      env: Object.entries(runtime.spec.env),
      allowedOutboundHosts: runtime.spec.allowedOutboundHosts,
      isolation: runtime.spec.isolation ?? IsolationDefaults.isolation,
      maxReuse: runtime.spec.maxReuse ?? IsolationDefaults.maxReuse,
      ...(runtime.filesDir === undefined ? {} : { filesDir: runtime.filesDir }),
      port: port2 as unknown as globalThis.MessagePort,
      signal,
    };
    this.worker = new Worker(WORKER_URL, {
      workerData,
      transferList: [port2],
      resourceLimits: { maxOldGenerationSizeMb: runtime.workerHeapMb },
    });
    this.worker.unref();
    this.port.unref();
    this.ready = new Promise<void>((resolve, reject) => {
      const onDelivery = (message: FromWorker): void => {
        onMessage(message);
        this.owner.onDelivered?.(this);
      };
      const onMessage = (message: FromWorker): void => {
        if (message.t === 'batch') {
          for (const each of message.messages) onMessage(each);
        } else if (message.t === 'ready') {
          this.loaded = true;
          resolve();
        } else if (message.t === 'load-failed') {
          reject(new Error(message.message));
          this.terminate();
        } else {
          if (message.t === 'done') {
            const busy = (s: WorkerStats | undefined): number => (s ? s.handlerNs + s.restoreNs + s.instantiateNs : 0);
            runtime.onRun?.((busy(message.stats) - busy(this.raw)) / 1e9);
            this.memoryBytes = message.memoryBytes ?? this.memoryBytes;
            this.raw = message.stats;
            this.stats = since(message.stats, this.baseline);
          }
          this.owner.onMessage(this, message);
        }
      };
      this.port.on('message', onDelivery);
      this.worker.on('error', (err) => {
        reject(err);
        this.exited(`worker failed: ${err.message}`);
      });
      this.worker.on('exit', (code) => {
        reject(new Error(`worker exited with code ${code} before it was ready`));
        this.exited(`worker exited with code ${code}`);
      });
    });
    this.ready.catch(() => undefined);
  }

  get idle(): boolean {
    return this.loaded && !this.dead && this.job === undefined;
  }

  /** Takes back `job`, sent ahead, if the worker has not started it; true when it had not (and now never will). */
  takeBack(job: Job): boolean {
    return Atomics.compareExchange(this.signal, AHEAD_SLOT, job.id, 0) === job.id;
  }

  /**
   * Whether a request may be sent ahead: the last one sent ahead was claimed or taken back. (One
   * taken for running here when the run before it answered may not be claimed yet: the worker
   * restores its instance first. Its id must stay until it is.)
   */
  get aheadFree(): boolean {
    return Atomics.load(this.signal, AHEAD_SLOT) === 0;
  }

  /** Marks `job` as the request sent ahead, before it is sent: the worker starts it only if it claims it first. */
  sendAhead(job: Job): void {
    this.next = job;
    Atomics.store(this.signal, AHEAD_SLOT, job.id);
  }

  /** Lets go of `job`, finished or taken back: the request sent ahead, if any, is the one running now. */
  unlink(job: Job): void {
    if (this.job === job) {
      this.job = this.next;
      this.next = undefined;
      if (this.job) this.job.startedAt = performance.now();
    } else if (this.next === job) this.next = undefined;
  }

  /** Hands the worker to a new owner; its counters start over for it. */
  adopt(owner: SlotOwner): void {
    this.owner = owner;
    this.baseline = this.raw;
    this.stats = undefined;
  }

  /** Sends a message and wakes the worker if it is blocked waiting in wasm. */
  send(message: ToWorker, transfer?: ArrayBuffer[]): void {
    if (this.dead) return;
    this.port.postMessage(message, transfer);
    Atomics.add(this.signal, 0, 1);
    Atomics.notify(this.signal, 0);
  }

  private exited(reason: string): void {
    if (this.dead) return;
    this.dead = true;
    this.outbound.cancelAll();
    this.port.close();
    this.owner.onExit(this, reason);
  }

  /** Stops the worker at once, whatever it is running. */
  terminate(): void {
    if (this.dead) return;
    this.dead = true;
    this.outbound.cancelAll();
    this.port.close();
    void this.worker.terminate();
  }
}

/** The request's headers for the handler; a traced run's own `traceparent` replaces the client's. */
function wireHeadersOf(request: InvocationRequest, traceparent: string | undefined): WireHeaders {
  const out: WireHeaders = [];
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined || HOP_BY_HOP_HEADERS.has(name) || (traceparent !== undefined && name === 'traceparent')) continue;
    if (Array.isArray(value)) for (const v of value) out.push([name, v]);
    else out.push([name, value]);
  }
  if (traceparent !== undefined) out.push(['traceparent', traceparent]);
  return out;
}

function responseHeadersOf(headers: WireHeaders): HeaderPairs {
  return headers.filter(([name]) => !HOP_BY_HOP_HEADERS.has(name.toLowerCase()));
}

function addStats(into: WorkerStats, from: WorkerStats): void {
  for (const key of Object.keys(into) as Array<keyof WorkerStats>) into[key] += from[key];
}

function since(now: WorkerStats, base: WorkerStats | undefined): WorkerStats {
  if (!base) return now;
  const out = { ...now };
  for (const key of Object.keys(out) as Array<keyof WorkerStats>) out[key] -= base[key];
  return out;
}

/** A parked worker with an instance ready, which a function lit from zero takes instead of starting one. */
export interface Standby {
  /** The parked worker, if there is one; it is the caller's from now on. */
  take(): WorkerSlot | undefined;
  /** Offers an idle worker to park; false when one is parked already (the caller stops it). */
  give(slot: WorkerSlot): boolean;
}

/** A lit component function: up to `limits.concurrency` workers (capped), each one request at a time. */
export class ComponentInstance implements Instance {
  state: InstanceState = 'starting';
  readonly ready: Promise<void>;
  readonly closed: Promise<InstanceExit>;
  private markClosed!: (exit: InstanceExit) => void;
  private readonly slots: WorkerSlot[] = [];
  private readonly queue: Job[] = [];
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];
  private stopping: Promise<void> | undefined;
  private modules: Record<string, WebAssembly.Module> | undefined;
  private readonly retired: WorkerStats = emptyWorkerStats();

  constructor(
    readonly id: string,
    private readonly runtime: ComponentRuntime,
    private readonly onClosed: (instance: ComponentInstance) => void,
    private readonly standby?: Standby,
  ) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    this.ready = this.start();
    this.ready.catch(() => undefined);
  }

  get functionName(): string {
    return this.runtime.spec.name;
  }

  /** Worker threads currently running (for tests and metrics). */
  get workers(): number {
    return this.slots.filter((s) => !s.dead).length;
  }

  /** Workers held by a run past SLOW_RUN_MS: waiting on I/O or looping, they leave the cores to others. */
  get slowWorkers(): number {
    const since = performance.now() - SLOW_RUN_MS;
    let n = 0;
    for (const slot of this.slots) if (!slot.dead && slot.job !== undefined && slot.job.startedAt < since) n++;
    return n;
  }

  /** Thread ids of the running workers (a worker kept across a failed request keeps its id). */
  get workerThreadIds(): number[] {
    return this.slots.filter((s) => !s.dead).map((s) => s.worker.threadId);
  }

  /** Memory its live workers' instances hold, for `inspect` and the function memory gauge. */
  figures(): Readonly<Record<string, number>> {
    let memoryBytes = 0;
    for (const slot of this.slots) if (!slot.dead) memoryBytes += slot.memoryBytes;
    return { workers: this.slots.filter((s) => !s.dead).length, memoryBytes };
  }

  /** What this instance's workers, gone ones included, have done (for tests, benches and metrics). */
  get stats(): WorkerStats {
    const total = { ...this.retired };
    for (const slot of this.slots) if (slot.stats) addStats(total, slot.stats);
    return total;
  }

  private async start(): Promise<void> {
    try {
      const parked = this.standby?.take();
      if (parked) {
        // Lit from zero without waiting: a worker, its bindings and a restored instance are ready.
        parked.adopt(this.owner);
        this.slots.push(parked);
      }
      this.modules = await this.runtime.modules;
      if (this.state !== 'starting') throw new Error(`instance is ${this.state}`);
      if (!parked) await this.spawn().ready;
    } catch (err) {
      const message = `Function '${this.functionName}' could not start: ${err instanceof Error ? err.message : String(err)}`;
      if (this.state === 'starting') {
        this.state = 'failed';
        this.terminateAll();
        this.onClosed(this);
        this.markClosed({ reason: 'failed', message });
      }
      throw new LamplighterError(ErrorCodes.FUNCTION_FAILED, message, { cause: err });
    }
    this.state = 'ready';
    this.pump();
  }

  private readonly owner: SlotOwner = {
    onMessage: (s, m) => this.onWorkerMessage(s, m),
    onDelivered: (s) => {
      const job = s.job;
      if (job?.head) this.deliverHead(job, s);
    },
    onExit: (s, reason) => this.onWorkerExit(s, reason),
  };

  private spawn(): WorkerSlot {
    const slot = new WorkerSlot(this.runtime, this.modules as Record<string, WebAssembly.Module>, this.owner);
    this.slots.push(slot);
    slot.ready.then(
      () => this.pump(),
      () => this.removeSlot(slot),
    );
    return slot;
  }

  private removeSlot(slot: WorkerSlot): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.slots.splice(i, 1);
    if (slot.stats) addStats(this.retired, slot.stats);
  }

  async handle(request: InvocationRequest): Promise<InvocationResponse> {
    if (this.state === 'starting') await this.ready;
    if (this.state !== 'ready') {
      throw new LamplighterError(ErrorCodes.SHUTTING_DOWN, `Instance ${this.id} of '${this.functionName}' is ${this.state}`);
    }
    return new Promise<InvocationResponse>((resolve, reject) => {
      this.inFlight++;
      this.queue.push(newJob(request, resolve, reject, false));
      this.pump();
    });
  }

  /** See Instance.handleAhead: sent ahead to a worker whose run has just started, or undefined. */
  handleAhead(request: InvocationRequest): Promise<InvocationResponse> | undefined {
    if (this.state !== 'ready' || this.queue.length > 0) return undefined;
    const slot = this.slotAhead(request);
    if (!slot) return undefined;
    return new Promise<InvocationResponse>((resolve, reject) => {
      this.inFlight++;
      this.run(newJob(request, resolve, reject, true), slot);
    });
  }

  private pump(): void {
    if (this.state !== 'ready' && this.state !== 'draining') return;
    let grown = false;
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => s.idle);
      if (!slot) {
        const live = this.slots.filter((s) => !s.dead).length;
        const starting = this.slots.some((s) => !s.dead && !s.loaded);
        if (live < this.runtime.maxWorkers && !starting && !grown) {
          grown = true;
          // Held back by the budget: another instance's idle worker gives its share up, or this
          // one looks again once its running requests may count as slow.
          if (live === 0 || !this.runtime.budget.full || this.runtime.budget.shedFor(this)) this.spawn();
          else this.repumpLater();
        }
        slot = this.slotAhead(this.queue[0]!.request);
        if (!slot) return;
      }
      const job = this.queue.shift() as Job;
      // A request given up while it waited for a worker (deadline passed, client gone) is not
      // sent: running it would only abandon it at once, and may cost the worker.
      const request = job.request;
      const aborted = isAborted(request);
      if (aborted || (request.deadline !== undefined && request.deadline <= performance.now())) {
        this.inFlight--;
        this.fail(job, aborted ? this.abortError(job) : functionTimeout(this.functionName, this.runtime.spec.limits.timeoutMs));
        this.wakeIdleWaiters();
        continue;
      }
      this.run(job, slot);
    }
  }

  /**
   * A busy worker that may take `request` ahead, to start it the moment its run ends: the worker
   * then never waits on this thread between requests (`npm run bench`, hello built for reuse:
   * 4,000 req/s against 2,828 without). Only a request without a body (the worker would have
   * to hold its body messages) and with a deadline of its own (its time then runs the same
   * whether it waits here or there; one without runs limits.timeout from its start), behind a
   * run younger than {@link AHEAD_BEHIND_MS}.
   */
  private slotAhead(request: InvocationRequest): WorkerSlot | undefined {
    if (request.deadline === undefined || hasRequestBody(request)) return undefined;
    const young = performance.now() - AHEAD_BEHIND_MS;
    for (const slot of this.slots) {
      const running = slot.job;
      if (slot.loaded && !slot.dead && running && !slot.next && !running.abandoned && running.startedAt > young && slot.aheadFree) return slot;
    }
    return undefined;
  }

  private aheadTimer: NodeJS.Timeout | undefined;

  /** Takes back each request sent ahead of a run that has gone on past AHEAD_BEHIND_MS, if not started; one timer for the instance. */
  private watchAheadLater(): void {
    if (this.aheadTimer) return;
    this.aheadTimer = setTimeout(() => {
      this.aheadTimer = undefined;
      const slow = performance.now() - AHEAD_BEHIND_MS;
      let waiting = false;
      for (const slot of [...this.slots]) {
        const ahead = slot.next;
        if (!ahead || ahead.abandoned) continue;
        if (!slot.job || slot.job.startedAt > slow) waiting = true;
        // Not started: it never will be there. Started: the worker answered the run before it,
        // and its 'done' is on the way.
        else if (slot.takeBack(ahead)) this.onTakenBack(ahead, slot);
      }
      if (waiting) this.watchAheadLater();
    }, AHEAD_BEHIND_MS);
    this.aheadTimer.unref();
  }

  /**
   * `job`, sent ahead, was taken back unstarted (or its worker is gone): it goes back to the front
   * of the queue, or to the caller that gave it through handleAhead (who sends it again); given
   * up meanwhile, it ends.
   */
  private onTakenBack(job: Job, slot: WorkerSlot): void {
    slot.unlink(job);
    if (job.abandoned) {
      this.release(job, slot);
      return;
    }
    if (job.sendBack) {
      job.settled = true;
      this.release(job, slot);
      job.reject(new SentBack(this.id));
      return;
    }
    clearTimeout(job.timer);
    job.detach();
    job.detach = () => undefined;
    job.span?.end();
    job.span = undefined;
    job.slot = undefined;
    this.queue.unshift(job);
    this.pump();
  }

  private repumpTimer: NodeJS.Timeout | undefined;

  private repumpLater(): void {
    if (this.repumpTimer) return;
    this.repumpTimer = setTimeout(() => {
      this.repumpTimer = undefined;
      this.pump();
    }, SLOW_RUN_MS);
    this.repumpTimer.unref();
  }

  private run(job: Job, slot: WorkerSlot): void {
    const { request } = job;
    const { spec } = this.runtime;
    // Within 1..2^31-1: an id sent ahead is compared in a signed 32-bit shared word.
    job.id = nextRequestId;
    nextRequestId = nextRequestId >= MAX_REQUEST_ID ? 1 : nextRequestId + 1;
    job.startedAt = performance.now();
    job.slot = slot;
    const ahead = slot.job !== undefined;
    if (ahead) {
      slot.sendAhead(job);
      this.watchAheadLater();
    } else slot.job = job;
    job.span = traceOf(request)?.startRun('component', this.id);
    const deadline = request.deadline ?? performance.now() + spec.limits.timeoutMs;
    const left = Math.max(0, deadline - performance.now());
    const bodyless = !hasRequestBody(request);
    slot.send({
      t: 'request',
      id: job.id,
      method: request.method,
      pathWithQuery: request.url,
      scheme: request.scheme ?? 'http',
      authority: typeof request.headers.host === 'string' ? request.headers.host : `${request.host}:${request.serverPort}`,
      headers: wireHeadersOf(request, job.span?.traceparent),
      deadline: Date.now() + left,
      ...(bodyless ? { bodyless } : {}),
      ...(ahead ? { ahead } : {}),
    });
    job.timer = setTimeout(() => this.onTimeout(job), left);
    const stopListening = listenForAbort(request, () => this.onAbort(job));
    if (bodyless) {
      // The worker was told there is no body: the request's (empty) stream is never made.
      job.detach = stopListening;
      return;
    }

    const body = request.body;
    const onData = (data: Buffer | string): void => {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      const chunk = new Uint8Array(bytes.byteLength);
      chunk.set(bytes);
      job.inflight += chunk.byteLength;
      slot.send({ t: 'body', id: job.id, chunk }, [chunk.buffer]);
      if (job.inflight > STREAM_WINDOW && !job.bodyPaused) {
        job.bodyPaused = true;
        body.pause();
      }
    };
    const onEnd = (): void => slot.send({ t: 'body-end', id: job.id });
    const onError = (err: Error): void => slot.send({ t: 'body-error', id: job.id, message: err.message });
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    job.detach = () => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      stopListening();
      // Whatever the handler did not read is discarded.
      if (!body.readableEnded && !body.destroyed) body.resume();
    };
  }


  private onWorkerMessage(slot: WorkerSlot, message: FromWorker): void {
    if (message.t === 'log') {
      this.runtime.log(message.stream, message.text);
      return;
    }
    if ('oid' in message) {
      slot.outbound.onMessage(message);
      return;
    }
    if (!('id' in message)) return;
    const job = slot.job?.id === message.id ? slot.job : slot.next?.id === message.id ? slot.next : undefined;
    if (!job) return;
    switch (message.t) {
      case 'head':
        this.onHead(job, message.status, message.headers);
        break;
      case 'chunk':
        if (job.pieces) {
          job.uncredited += message.chunk.byteLength;
          job.pieces.push(Buffer.from(message.chunk.buffer, message.chunk.byteOffset, message.chunk.byteLength));
        } else if (job.body && !job.body.destroyed) {
          job.uncredited += message.chunk.byteLength;
          job.body.push(Buffer.from(message.chunk.buffer, message.chunk.byteOffset, message.chunk.byteLength));
        }
        break;
      case 'end':
        job.bodyEnded = true;
        if (job.body && !job.body.destroyed) job.body.push(null);
        break;
      case 'ack':
        job.inflight -= message.bytes;
        if (job.bodyPaused && job.inflight <= STREAM_WINDOW / 2) {
          job.bodyPaused = false;
          job.request.body.resume();
        }
        break;
      case 'done':
        slot.stats = message.stats;
        // A held head goes to the caller now, whole when its body ended. A failure before the
        // body's end leaves it held, and the caller gets the error instead of a broken body.
        if (job.head && (!message.failure || job.bodyEnded)) this.deliverHead(job, slot);
        this.onDone(job, slot, message.failure);
        break;
      default:
        break;
    }
  }

  private onHead(job: Job, status: number, headers: WireHeaders): void {
    if (job.settled) return;
    const noResponse = headers.find(([name]) => name.toLowerCase() === NO_RESPONSE_HEADER);
    if (noResponse) {
      // A built handler that produced no response: answered like every other error (its body, if any, is dropped).
      this.runtime.log('stderr', `no-response: ${noResponse[1]} (request ${job.request.id})\n`);
      this.fail(job, new LamplighterError(ErrorCodes.BAD_HANDLER_RESPONSE, `Function '${this.functionName}' returned no response: ${noResponse[1]}`));
      return;
    }
    job.settled = true;
    job.span?.setStatus(status);
    job.head = { status, headers: responseHeadersOf(headers) };
    job.pieces = [];
  }

  /** Hands the held head to the caller: with the whole body when it has ended, else a stream of it. */
  private deliverHead(job: Job, slot: WorkerSlot): void {
    const { status, headers } = job.head!;
    const pieces = job.pieces!;
    job.head = undefined;
    job.pieces = undefined;
    if (job.bodyEnded) {
      job.uncredited = 0;
      job.resolve({ status, headers, body: pieces.length === 1 ? pieces[0]! : pieces.length === 0 ? EMPTY : Buffer.concat(pieces) });
      return;
    }
    job.body = new Readable({
      read: () => {
        if (job.uncredited > 0 && slot.job === job) {
          slot.send({ t: 'credit', id: job.id, bytes: job.uncredited });
          job.uncredited = 0;
        }
      },
      destroy: (err, callback) => {
        // The reader went away while the handler still writes: stop it.
        if (slot.job === job && !job.bodyEnded && !job.abandoned) {
          this.abandon(slot, job, new LamplighterError(ErrorCodes.BAD_REQUEST, 'The response body was abandoned by its reader'), `abandoned: request ${job.request.id} lost its reader`);
        }
        callback(err);
      },
    });
    // A body that breaks off in the same batch as its head is destroyed before the caller, a
    // promise later, listens: its error must not reach the process as an unhandled event (the
    // caller still sees it, and the failure is logged).
    job.body.on('error', () => undefined);
    for (const piece of pieces) job.body.push(piece);
    job.resolve({ status, headers, body: job.body });
  }

  private onDone(job: Job, slot: WorkerSlot, failure: RunFailure | undefined): void {
    this.release(job, slot);
    if (job.abandoned) {
      this.runtime.log('stderr', `${job.abandoned}; the handler stopped at its next wait (the worker stays)\n`);
    } else if (failure) {
      this.runtime.log('stderr', `${failure.kind}: ${failure.message} (request ${job.request.id})\n`);
      this.fail(job, this.errorFor(failure));
    } else if (job.body && !job.bodyEnded) {
      job.bodyEnded = true;
      job.body.push(null);
    }
  }

  private errorFor(failure: RunFailure): LamplighterError {
    const name = this.functionName;
    switch (failure.kind) {
      case 'no-response':
        return new LamplighterError(ErrorCodes.BAD_HANDLER_RESPONSE, `Function '${name}' returned without setting a response`);
      case 'incomplete-body':
        return new LamplighterError(ErrorCodes.BAD_HANDLER_RESPONSE, `Function '${name}' sent an incomplete response: ${failure.message}`);
      case 'error-response':
        return new LamplighterError(ErrorCodes.HANDLER_TRAP, `Function '${name}' failed: ${failure.message}`);
      case 'exit':
        return new LamplighterError(ErrorCodes.HANDLER_TRAP, `Function '${name}' ${failure.message}`);
      default:
        return new LamplighterError(ErrorCodes.HANDLER_TRAP, `Function '${name}' trapped: ${failure.message}`);
    }
  }

  /** Hands the outcome to the caller: a rejection before the head, a broken body after it. */
  private fail(job: Job, err: LamplighterError): void {
    job.span?.fail(err);
    if (job.head) {
      // A head held within a delivery has not reached the caller: it is given up with its body.
      job.head = undefined;
      job.pieces = undefined;
      job.reject(err);
    } else if (!job.settled) {
      job.settled = true;
      job.reject(err);
    } else if (job.body && !job.body.destroyed && !job.body.readableEnded) {
      job.body.destroy(err);
    }
  }

  /** Wakes those waiting for the instance to have nothing in flight (a drain). */
  private wakeIdleWaiters(): void {
    if (this.inFlight !== 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Frees the slot of a finished job and moves the queue on. */
  private release(job: Job, slot: WorkerSlot): void {
    job.span?.end();
    clearTimeout(job.timer);
    job.detach();
    job.detach = () => undefined;
    slot.unlink(job);
    this.inFlight--;
    this.pump();
    this.wakeIdleWaiters();
  }

  /**
   * Stops one idle worker past this instance's first, so that another instance of the node can
   * start one within the budget; false when it has none to give. Kept otherwise: a worker stopped
   * on a timer would start cold (and warm up again) at the next burst.
   */
  shedIdleWorker(): boolean {
    if (this.state !== 'ready' || this.workers <= 1) return false;
    const slot = this.slots.find((s) => s.idle);
    if (!slot) return false;
    slot.terminate();
    this.removeSlot(slot);
    return true;
  }

  /**
   * Gives up on `job`: fails it now, asks its handler to stop, and terminates the worker (starting
   * a replacement) if the handler has not come back within STOP_GRACE_MS.
   */
  private abandon(slot: WorkerSlot, job: Job, err: LamplighterError, note: string): void {
    if (job.abandoned) return;
    job.abandoned = note;
    this.fail(job, err);
    job.detach();
    job.detach = () => undefined;
    clearTimeout(job.timer);
    // Sent ahead and not started (still behind a run, or taken for running here but not yet
    // claimed by the worker): it never will be.
    if (slot.takeBack(job)) {
      this.onTakenBack(job, slot);
      return;
    }
    slot.send({ t: 'stop', id: job.id });
    this.graceFor(slot, job, note);
  }

  /** Stops `job`'s worker if its handler has not come back STOP_GRACE_MS after it was told to stop. */
  private graceFor(slot: WorkerSlot, job: Job, note: string): void {
    job.timer = setTimeout(() => {
      // Started behind a run whose answer is not in yet: its grace starts again.
      if (slot.next === job) {
        this.graceFor(slot, job, note);
        return;
      }
      if (slot.job !== job) return;
      this.runtime.log('stderr', `${note}; worker stopped\n`);
      slot.terminate();
      this.removeSlot(slot);
      this.settleAhead(slot, 'worker stopped');
      this.release(job, slot);
      this.replace();
    }, STOP_GRACE_MS);
  }

  /**
   * `slot`'s worker is gone: its request sent ahead goes to another worker if it never started,
   * and fails with `reason` if the worker had started it (its answer to the run before was not
   * read yet): a request that may have run is never run again.
   */
  private settleAhead(slot: WorkerSlot, reason: string): void {
    const ahead = slot.next;
    if (!ahead) return;
    if (slot.takeBack(ahead)) {
      this.onTakenBack(ahead, slot);
      return;
    }
    this.failTrapped(ahead, slot, reason);
  }

  /** Ends `job`, whose worker is gone while it ran: logged and failed as a trap. */
  private failTrapped(job: Job, slot: WorkerSlot, reason: string): void {
    this.release(job, slot);
    this.runtime.log('stderr', `trap: ${reason} (request ${job.request.id})\n`);
    this.fail(job, new LamplighterError(ErrorCodes.HANDLER_TRAP, `Function '${this.functionName}' trapped: ${reason}`));
  }

  private replace(): void {
    if ((this.state === 'ready' || this.state === 'draining') && this.workers === 0) this.spawn();
    this.pump();
  }

  private onTimeout(job: Job): void {
    const slot = job.slot;
    if (!slot || (slot.job !== job && slot.next !== job)) return;
    const { timeoutMs } = this.runtime.spec.limits;
    const err = functionTimeout(this.functionName, timeoutMs);
    this.abandon(slot, job, err, `timeout: request ${job.request.id} still running after ${timeoutMs} ms`);
  }

  private onAbort(job: Job): void {
    // The whole response is already with the reader; the worker is only reporting back.
    if (job.bodyEnded) return;
    const slot = job.slot;
    const err = this.abortError(job);
    if (slot && (slot.job === job || slot.next === job)) this.abandon(slot, job, err, `abort: request ${job.request.id} was given up by its caller`);
    else this.fail(job, err);
  }

  /** Why the caller gave `job` up: its own error (a deadline), a timeout, or a client that left. */
  private abortError(job: Job): LamplighterError {
    const reason: unknown = job.request.signal.reason;
    if (reason instanceof LamplighterError) return reason;
    if ((reason as Error | undefined)?.name === 'TimeoutError') return new LamplighterError(ErrorCodes.TIMEOUT, `Function '${this.functionName}' did not answer before the request deadline`);
    return new LamplighterError(ErrorCodes.BAD_REQUEST, 'The client went away before the response was complete');
  }

  private onWorkerExit(slot: WorkerSlot, reason: string): void {
    this.removeSlot(slot);
    this.settleAhead(slot, reason);
    const job = slot.job;
    if (job) this.failTrapped(job, slot, reason);
    if (slot.loaded) this.replace();
  }

  async drain(): Promise<void> {
    if (this.state === 'ready' || this.state === 'starting') this.state = 'draining';
    if (this.inFlight === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.runtime.spec.drainTimeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }

  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    if (this.state !== 'failed') {
      await this.drain();
      this.state = 'stopped';
    }
    const err = new LamplighterError(ErrorCodes.SHUTTING_DOWN, `Instance ${this.id} of '${this.functionName}' stopped`);
    for (const job of this.queue.splice(0)) {
      this.inFlight--;
      this.fail(job, err);
    }
    for (const slot of this.slots) {
      const job = slot.job;
      // A function going to zero leaves one worker parked, so that it lights again without waiting.
      if (!job && slot.idle && this.standby?.give(slot)) continue;
      slot.terminate();
      for (const left of [slot.next, job]) {
        if (!left) continue;
        this.release(left, slot);
        this.fail(left, err);
      }
    }
    this.slots.length = 0;
    if (this.state === 'stopped') {
      this.onClosed(this);
      this.markClosed({ reason: 'stopped' });
    }
  }

  private terminateAll(): void {
    for (const slot of this.slots) slot.terminate();
    this.slots.length = 0;
  }
}
