// Sandbox worker thread: runs WAGI commands, each in a fresh WebAssembly instance, one at a time.
//
// Every run gets a new instance. Its linear memory is the one thing reused: a memory that did not
// grow is zeroed after the run and handed to the next instance, which writes its data segments
// into it at instantiation — the same bytes a brand-new memory would hold, without the cost of
// mapping and faulting in fresh pages.
import { readlinkSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { unpackRunInput, type WorkerRequest, type WorkerResult, type WorkerRun } from './sandbox-protocol.js';
import { MEMORY_IMPORT } from './wasm-binary.js';
import { newWasiRun, OutputLimitExceeded, WasiExit, WasiHost } from './wasi-host.js';

const port = parentPort;
if (!port) throw new Error('sandbox-worker must run in a worker thread');

interface LoadedModule {
  module: WebAssembly.Module;
  initial: number;
  maximum: number;
  /** Zeroed memories of the initial size, ready for the next instance. */
  spare: WebAssembly.Memory[];
  /** Whether the module can read a clock (only then is the thread's CPU time noted at each run). */
  clocks: boolean;
}

function loadModule(module: WebAssembly.Module, pages: [number, number]): LoadedModule {
  const clocks = WebAssembly.Module.imports(module).some((i) => i.module === 'wasi_snapshot_preview1' && i.name === 'clock_time_get');
  return { module, initial: pages[0], maximum: pages[1], spare: [], clocks };
}

/** Modules lit on this worker, by key; dropped when their function is put out. */
const modules = new Map<string, LoadedModule>();
/**
 * [0]: the highest run id decided on, claimed here before running or raised by the pool to take
 * runs back; [1]: this thread's id, so the pool can lower its priority while a long run holds it;
 * [2]: 1 once this worker listens for runs.
 */
const shared = (workerData as { shared: Int32Array }).shared;
Atomics.store(shared, 1, threadId());

/** The OS thread id (Linux: /proc/thread-self links to <pid>/task/<tid>); 0 where unknown. */
function threadId(): number {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/')[2]) || 0;
  } catch {
    return 0;
  }
}

/** Claims run `job` for this worker; false when the pool has taken it back. */
function claim(job: number): boolean {
  for (;;) {
    const decided = Atomics.load(shared, 0);
    if (decided >= job) return false;
    if (Atomics.compareExchange(shared, 0, decided, job) === decided) return true;
  }
}
const host = new WasiHost();
const memoryImports: Record<string, WebAssembly.Memory> = {};
const importObject: WebAssembly.Imports = {
  wasi_snapshot_preview1: host.imports as WebAssembly.ModuleImports,
  [MEMORY_IMPORT.module]: memoryImports,
};
const EMPTY = new Uint8Array(0);

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 0) return EMPTY;
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function run(msg: WorkerRun): [WorkerResult, LoadedModule | undefined, WebAssembly.Memory | undefined] {
  let loaded = modules.get(msg.key);
  if (msg.module && msg.memoryPages) {
    loaded = loadModule(msg.module, msg.memoryPages);
    modules.set(msg.key, loaded);
  }
  if (!loaded) {
    return [{ job: msg.job, exitCode: -1, stdout: EMPTY, stderr: EMPTY, error: { kind: 'internal', message: `module ${msg.key} is not loaded on this worker` } }, undefined, undefined];
  }
  const input = unpackRunInput(msg.input);
  const wasi = newWasiRun(input.args, input.env, input.stdin, msg.maxStdout, msg.filesDir);
  let exitCode = 0;
  let error: WorkerResult['error'];
  let memory: WebAssembly.Memory | undefined;
  const started = performance.now();
  try {
    memory = loaded.spare.pop() ?? new WebAssembly.Memory({ initial: loaded.initial, maximum: loaded.maximum });
    memoryImports[MEMORY_IMPORT.name] = memory;
    const instance = new WebAssembly.Instance(loaded.module, importObject);
    host.begin(wasi, memory, loaded.clocks);
    (instance.exports._start as () => void)();
  } catch (err) {
    if (err instanceof WasiExit) exitCode = err.code;
    else if (err instanceof OutputLimitExceeded) error = { kind: 'output-limit', message: err.message };
    else error = { kind: 'trap', message: err instanceof Error ? err.message : String(err) };
  } finally {
    host.end();
    delete memoryImports[MEMORY_IMPORT.name];
  }
  const result: WorkerResult = {
    job: msg.job,
    exitCode,
    stdout: concat(wasi.stdout, wasi.stdoutBytes),
    stderr: concat(wasi.stderr, wasi.stderrBytes),
    error,
    runMs: performance.now() - started,
    memoryBytes: memory?.buffer.byteLength ?? 0,
  };
  return [result, loaded, memory];
}

/** Zeroes a memory that kept its initial size and keeps it for the next instance. */
function recycle(loaded: LoadedModule, memory: WebAssembly.Memory): void {
  if (loaded.spare.length > 0 || memory.buffer.byteLength !== loaded.initial * 65_536) return;
  new Uint8Array(memory.buffer).fill(0);
  loaded.spare.push(memory);
}

port.on('message', (msg: WorkerRequest) => {
  switch (msg.t) {
    case 'runs': {
      for (const runMsg of msg.runs) {
        if (!claim(runMsg.job)) {
          // Taken back: keep a module sent with it, since the pool counts it as loaded here.
          if (runMsg.module && runMsg.memoryPages && !modules.has(runMsg.key)) {
            modules.set(runMsg.key, loadModule(runMsg.module, runMsg.memoryPages));
          }
          continue;
        }
        const [result, loaded, memory] = run(runMsg);
        // Each answer goes out as soon as its run ends, so the pool always knows which run is
        // executing (the one after the last answer) and deadlines hold for every run of a batch.
        const out = result.stdout;
        const transfer: ArrayBuffer[] = out.byteLength > 0 && out.byteOffset === 0 && out.byteLength === out.buffer.byteLength ? [out.buffer as ArrayBuffer] : [];
        port.postMessage(result, transfer);
        // Zeroed after the answer is on its way, for the next run of this module.
        if (loaded && memory && modules.get(runMsg.key) === loaded) recycle(loaded, memory);
      }
      break;
    }
    case 'unload':
      modules.delete(msg.key);
      break;
  }
});
Atomics.store(shared, 2, 1);
