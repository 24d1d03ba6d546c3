// Sandbox worker thread: runs WAGI commands, each in a fresh WebAssembly instance, one at a time.
import { parentPort } from 'node:worker_threads';
import { newWasiRun, OutputLimitExceeded, WasiExit, WasiHost } from './wasi-host.js';
import type { WorkerRequest, WorkerResult } from './sandbox-protocol.js';

const port = parentPort;
if (!port) throw new Error('sandbox-worker must run in a worker thread');

/** Compiled modules lit on this worker, by key; dropped when their function is put out. */
const modules = new Map<string, WebAssembly.Module>();
const host = new WasiHost();
const importObject: WebAssembly.Imports = { wasi_snapshot_preview1: host.imports as WebAssembly.ModuleImports };

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function run(msg: Extract<WorkerRequest, { t: 'run' }>): WorkerResult {
  let module = modules.get(msg.key);
  if (msg.module) {
    module = msg.module;
    modules.set(msg.key, module);
  }
  if (!module) return { t: 'done', job: msg.job, exitCode: -1, stdout: new Uint8Array(0), stderr: new Uint8Array(0), error: { kind: 'internal', message: `module ${msg.key} is not loaded on this worker` } };

  const wasi = newWasiRun(msg.args, msg.env, msg.stdin, msg.maxStdout);
  let exitCode = 0;
  let error: WorkerResult['error'];
  try {
    const instance = new WebAssembly.Instance(module, importObject);
    host.begin(wasi, instance.exports.memory as WebAssembly.Memory);
    (instance.exports._start as () => void)();
  } catch (err) {
    if (err instanceof WasiExit) exitCode = err.code;
    else if (err instanceof OutputLimitExceeded) error = { kind: 'output-limit', message: err.message };
    else if (err instanceof WebAssembly.RuntimeError || err instanceof RangeError) error = { kind: 'trap', message: err.message };
    else error = { kind: 'trap', message: err instanceof Error ? err.message : String(err) };
  } finally {
    host.end();
  }
  return {
    t: 'done',
    job: msg.job,
    exitCode,
    stdout: concat(wasi.stdout, wasi.stdoutBytes),
    stderr: concat(wasi.stderr, wasi.stderrBytes),
    error,
  };
}

port.on('message', (msg: WorkerRequest) => {
  switch (msg.t) {
    case 'run': {
      const result = run(msg);
      const transfer: ArrayBuffer[] = [];
      if (result.stdout.byteLength > 0 && result.stdout.byteOffset === 0 && result.stdout.byteLength === result.stdout.buffer.byteLength) transfer.push(result.stdout.buffer as ArrayBuffer);
      port.postMessage(result, transfer);
      break;
    }
    case 'unload':
      modules.delete(msg.key);
      break;
  }
});
