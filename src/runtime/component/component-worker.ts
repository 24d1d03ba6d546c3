// Component worker thread: serves one request at a time, each in an instance as new (restored) or, by choice, a reused one.
import { performance } from 'node:perf_hooks';
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { parseOutboundRules } from './outbound-policy.js';
import { ComponentHost, DeadlineExceeded, GuestExit, type HostChannel } from './wasi-host.js';
import { BINDINGS_STATE_EXPORT, type BindingsState } from './bindings-hooks.js';
import { InstanceSnapshot, UnrestorableInstance, type CoreInstance } from './instance-snapshot.js';
import { AHEAD_SLOT, emptyWorkerStats, type ComponentWorkerData, type FromWorker, type RunFailure, type RunRequest, type ToWorker, type WorkerStats } from './component-protocol.js';

type HandlerExport = { handle(request: unknown, responseOut: unknown): void };
type Root = Record<string, HandlerExport | undefined>;
type Instantiate = (
  getCoreModule: (path: string) => WebAssembly.Module,
  imports: Record<string, unknown>,
  instantiateCore: (module: WebAssembly.Module, imports: WebAssembly.Imports) => WebAssembly.Instance,
) => Root;

/**
 * Under instance reuse, an instance whose linear memory has grown past this multiple of its first
 * size is replaced: memory never shrinks, and a handler that hoards would otherwise keep it all.
 */
const INSTANCE_MEMORY_GROWTH = 2;

// Node 20 has no JSPI. The bindings probe for WebAssembly.promising in a try/catch on every
// instantiation, and V8 words the resulting "is not a function" error by re-parsing the whole
// bindings function: about 7 ms per probe, twice per request. A stub that throws a ready-made
// error keeps the same fallback at no cost.
const wasm = WebAssembly as unknown as { promising?: unknown };
if (wasm.promising === undefined) {
  const unsupported = new TypeError('WebAssembly.promising is not supported in this Node.js');
  wasm.promising = (): never => {
    throw unsupported;
  };
}

const data = workerData as ComponentWorkerData;
const port = data.port as unknown as MessagePort;
const signal = new Int32Array(data.signal);

/**
 * Messages of the request in progress not yet sent. Each postMessage costs both threads tens of
 * microseconds, and a small response is four or five messages (head, chunk, end, logs, done): they
 * go as one batch when the handler ends, blocks, or has held them for {@link BATCH_MS}, or once
 * {@link BATCH_BYTES} of body are waiting.
 */
const outbox: FromWorker[] = [];
const outboxTransfer: ArrayBuffer[] = [];
let outboxBytes = 0;
let outboxSince = 0;
let batching = false;
const BATCH_MS = 1;
const BATCH_BYTES = 64 * 1024;

function flush(): void {
  if (outbox.length === 0) return;
  const transfer = outboxTransfer.splice(0);
  const messages = outbox.splice(0);
  outboxBytes = 0;
  port.postMessage(messages.length === 1 ? messages[0] : { t: 'batch', messages }, transfer);
}

const channel: HostChannel = {
  post(message: FromWorker, transfer?: ArrayBuffer[]): void {
    if (!batching) {
      port.postMessage(message, transfer);
      return;
    }
    if (outbox.length === 0) outboxSince = performance.now();
    outbox.push(message);
    if (transfer) outboxTransfer.push(...transfer);
    if (message.t === 'chunk' || message.t === 'fetch-body') outboxBytes += message.chunk.byteLength;
    if (outboxBytes >= BATCH_BYTES || performance.now() - outboxSince >= BATCH_MS) flush();
  },
  pump(): boolean {
    // Messages are taken only while a request runs; outside one (e.g. while the next instance is
    // being lit) they wait in the port and arrive as events once the worker is idle again.
    if (!host.active) return false;
    let any = false;
    for (let i = 0; i < 10_000; i++) {
      const received = receiveMessageOnPort(port);
      if (!received) break;
      any = true;
      onMessage(received.message as ToWorker);
    }
    return any;
  },
  wait(ms: number): void {
    // Whatever the handler is waiting for may depend on what it has said so far.
    flush();
    const seen = Atomics.load(signal, 0);
    if (this.pump()) return;
    if (!host.active) {
      Atomics.wait(signal, 1, 0, Math.max(0, ms));
      return;
    }
    Atomics.wait(signal, 0, seen, Math.max(0, ms));
    this.pump();
  },
};

const host = new ComponentHost({ channel, env: data.env, outbound: parseOutboundRules(data.allowedOutboundHosts), filesDir: data.filesDir });

type Bindings = { instantiate?: Instantiate; [BINDINGS_STATE_EXPORT]?: () => BindingsState | undefined };

/** A component instance and how it may be reused. */
interface Lit {
  root: Root;
  /** Its post-initialisation state, when it could be captured. */
  snapshot: InstanceSnapshot | undefined;
  /** Its linear memories. */
  memories: WebAssembly.Memory[];
  /** Linear memory right after instantiation, in bytes (for the growth bound of instance reuse). */
  initialMemory: number;
  /** Requests it has served. */
  served: number;
}

let bindings: Bindings | undefined;
let warm: Lit | undefined;
let busy = false;
/** Requests sent ahead while one ran, in the order they came. */
const queued: RunRequest[] = [];
/** Notes already logged, by their text without numbers: each kind is logged once per worker. */
const noted = new Set<string>();

function note(text: string): void {
  const kind = text.replace(/\d+/g, '#');
  if (noted.has(kind) || noted.size > 32) return;
  noted.add(kind);
  channel.post({ t: 'log', stream: 'stderr', text: `component worker: ${text}\n` });
}

const stats: WorkerStats = emptyWorkerStats();

function nsSince(started: number): number {
  return Math.round((performance.now() - started) * 1e6);
}

function fresh(): Lit {
  const started = performance.now();
  try {
    return instantiateLit();
  } finally {
    stats.instantiated++;
    stats.instantiateNs += nsSince(started);
  }
}

function instantiateLit(): Lit {
  const instantiate = bindings?.instantiate;
  if (!instantiate) throw new Error('component bindings are not loaded');
  const cores: CoreInstance[] = [];
  const root = instantiate(
    (path) => {
      const module = data.modules[path];
      if (!module) throw new Error(`component core module ${path} is missing`);
      return module;
    },
    host.imports,
    (module, imports) => {
      const instance = new WebAssembly.Instance(module, imports);
      cores.push({ module, instance });
      return instance;
    },
  );
  const state = bindings?.[BINDINGS_STATE_EXPORT]?.();
  const memories = [...new Set(cores.flatMap((core) => Object.values(core.instance.exports).filter((v): v is WebAssembly.Memory => v instanceof WebAssembly.Memory)))];
  const lit: Lit = { root, snapshot: undefined, memories, initialMemory: 0, served: 0 };
  lit.initialMemory = currentMemory(lit);
  // Under reuse too: an instance that reached max_reuse starts over by a restore, which keeps the
  // bindings' code warm in V8 (a new instance runs its first hundred requests or so at half speed).
  try {
    lit.snapshot = new InstanceSnapshot(cores, state);
  } catch (err) {
    if (!(err instanceof UnrestorableInstance)) throw err;
    note(`instances cannot be restored (${err.message}); each request gets a new one`);
  }
  return lit;
}

/** Decides whether `lit` may serve the next request, restoring it first when isolation asks for it. */
function keep(lit: Lit, failed: boolean): boolean {
  const started = performance.now();
  const outcome = reusable(lit, failed);
  stats.restoreNs += nsSince(started);
  if (outcome === 'restored') stats.restored++;
  if (outcome === 'replaced') stats.replaced++;
  return outcome !== 'replaced';
}

function reusable(lit: Lit, failed: boolean): 'kept' | 'restored' | 'replaced' {
  if (failed) return 'replaced';
  if (data.isolation === 'instance') {
    if (currentMemory(lit) > lit.initialMemory * INSTANCE_MEMORY_GROWTH) return 'replaced';
    if (lit.served < data.maxReuse) return 'kept';
  }
  if (!lit.snapshot) return 'replaced';
  const outcome = lit.snapshot.restore();
  if (!outcome.restored) {
    if (data.isolation === 'request') note(`an instance was replaced: ${outcome.reason}`);
    return 'replaced';
  }
  stats.dirtyBlocks += outcome.dirtyBlocks;
  stats.leftHandles += outcome.droppedHandles;
  lit.served = 0;
  return 'restored';
}

function currentMemory(lit: Lit): number {
  return lit.memories.reduce((sum, memory) => sum + memory.buffer.byteLength, 0);
}

function describe(err: unknown): RunFailure {
  if (err instanceof GuestExit) return { kind: 'exit', message: err.message };
  if (err instanceof DeadlineExceeded) return { kind: 'trap', message: err.message };
  if (err instanceof WebAssembly.RuntimeError) return { kind: 'trap', message: `wasm trap: ${err.message}` };
  if (err instanceof Error) return { kind: 'trap', message: `${err.name}: ${err.message}` };
  return { kind: 'trap', message: String(err) };
}

function run(request: RunRequest): void {
  busy = true;
  batching = true;
  let thrown: RunFailure | undefined;
  let lit: Lit | undefined;
  stats.requests++;
  try {
    lit = warm ?? fresh();
    warm = undefined;
    lit.served++;
    const started = performance.now();
    const handler = lit.root[data.handlerExport] ?? lit.root.incomingHandler;
    if (!handler) throw new Error(`the component has no export ${data.handlerExport}`);
    const { request: incoming, responseOut } = host.begin(request);
    try {
      handler.handle(incoming, responseOut);
    } finally {
      stats.handlerNs += nsSince(started);
    }
  } catch (err) {
    thrown = describe(err);
  }
  const failure = host.end(thrown);
  // The memory the instance holds now: what the function costs while this worker keeps it.
  const memoryBytes = lit ? currentMemory(lit) : 0;
  channel.post(failure ? { t: 'done', id: request.id, failure, stats, memoryBytes } : { t: 'done', id: request.id, stats, memoryBytes });
  batching = false;
  flush();
  // After the answer is on its way: put the instance back as new, or let it go and light another
  // while idle, so the next request does not wait for it.
  if (lit && keep(lit, thrown !== undefined)) warm = lit;
  busy = false;
  if (!warm) setImmediate(prewarm);
}

function prewarm(): void {
  if (busy || warm) return;
  try {
    warm = fresh();
  } catch {
    warm = undefined;
  }
}

/** Puts the kept instance back to its first state, or lets it go, before another owner uses the worker. */
function reset(): void {
  if (busy || !warm || warm.served === 0) return;
  const outcome = warm.snapshot?.restore();
  if (outcome?.restored) warm.served = 0;
  else warm = undefined;
  if (!warm) setImmediate(prewarm);
}

function onMessage(message: ToWorker): void {
  if (message.t === 'reset') {
    reset();
    return;
  }
  if (message.t === 'request') {
    if (busy) {
      queued.push(message);
      return;
    }
    if (claimed(message)) run(message);
    runQueued();
    return;
  }
  host.dispatch(message);
}

/** Whether `request` may start: one sent ahead only if the caller's thread has not taken it back. */
function claimed(request: RunRequest): boolean {
  if (!request.ahead) return true;
  if (Atomics.compareExchange(signal, AHEAD_SLOT, request.id, 0) !== request.id) return false;
  stats.ranAhead++;
  return true;
}

/** Runs the requests that came while the last one ran, in order, each if it is still this worker's. */
function runQueued(): void {
  for (let next = queued.shift(); next; next = queued.shift()) if (claimed(next)) run(next);
}

async function load(): Promise<void> {
  try {
    const url = `data:text/javascript;base64,${Buffer.from(data.bindings, 'utf8').toString('base64')}`;
    bindings = (await import(url)) as Bindings;
    if (typeof bindings.instantiate !== 'function') throw new Error('the component bindings do not export instantiate()');
    warm = fresh();
  } catch (err) {
    channel.post({ t: 'load-failed', message: err instanceof Error ? err.message : String(err) });
    return;
  }
  port.on('message', onMessage);
  channel.post({ t: 'ready' });
}

void load();
