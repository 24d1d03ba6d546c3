// Prepares a component on a worker thread, so a deploy never blocks the gateway's event loop.
import { Worker } from 'node:worker_threads';
import { ErrorCodes, LamplighterError, ManifestError, ModuleError } from '../../errors/index.js';
import type { FunctionSpec } from '../../manifest/index.js';
import { transpilerVersion } from './component-cache.js';
import type { PreparedComponent } from './prepare-component.js';
import type { FromPrepareWorker, PrepareWorkerData, ToPrepareWorker } from './prepare-protocol.js';

const WORKER_URL = new URL('./prepare-worker.js', import.meta.url);

/** Options for {@link prepareComponentOffThread}. */
export interface PrepareOffThreadOptions {
  /** sha256 of the component's bytes (hex): the cache key. */
  digest: string;
  /** Reads the component's bytes; called only when the cache has no usable entry. */
  read: () => Promise<Uint8Array>;
  /** Per-user cache directory (see componentCacheDir), or null to transpile every time. */
  cacheDir: string | null;
  /** Told about a damaged or unwritable cache entry (the deploy goes on). @default none */
  onNote?: (text: string) => void;
}

/** A component ready to light: its transpiled files and its core modules, compiled and memory-capped. */
export interface CompiledComponent {
  prepared: PreparedComponent;
  /** Core modules by file name, compiled with linear memory capped at the spec's limits.memory. */
  modules: Record<string, WebAssembly.Module>;
  /** True when the transpile came from the cache. */
  cached: boolean;
}

function errorFrom(message: Extract<FromPrepareWorker, { t: 'failed' }>): LamplighterError {
  const options = { detail: message.detail };
  if (message.code === ErrorCodes.MODULE_INVALID) return new ModuleError(message.message, options);
  if (message.code === ErrorCodes.MANIFEST_INVALID) return new ManifestError(message.message, options);
  if (message.code) return new LamplighterError(message.code, message.message, options);
  return new LamplighterError(ErrorCodes.INTERNAL, `preparing the component failed: ${message.message}`);
}

/**
 * Does prepareComponent's work (checks and transpile, or a verified per-user cache entry) and
 * compiles the core modules, all on a worker thread: jco and the compiler run for seconds on a
 * large component, and every request the node serves meanwhile needs this thread. Rejects with
 * ModuleError or ManifestError as prepareComponent does.
 */
export function prepareComponentOffThread(spec: FunctionSpec, options: PrepareOffThreadOptions): Promise<CompiledComponent> {
  // The transpiler's version is looked up here, once per process: each prepare worker is new.
  const workerData: PrepareWorkerData = { spec, digest: options.digest, cacheDir: options.cacheDir, jco: transpilerVersion() };
  const worker = new Worker(WORKER_URL, { workerData });
  return new Promise<CompiledComponent>((resolve, reject) => {
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      outcome();
      void worker.terminate();
    };
    worker.on('message', (message: FromPrepareWorker) => {
      switch (message.t) {
        case 'need-bytes':
          options.read().then(
            (bytes) => {
              const reply: ToPrepareWorker = { bytes };
              worker.postMessage(reply);
            },
            (err: unknown) => settle(() => reject(err)),
          );
          break;
        case 'note':
          options.onNote?.(message.text);
          break;
        case 'done':
          settle(() => resolve({ prepared: message.prepared, modules: message.modules, cached: message.cached }));
          break;
        case 'failed':
          settle(() => reject(errorFrom(message)));
          break;
      }
    });
    worker.on('error', (err) => settle(() => reject(new LamplighterError(ErrorCodes.INTERNAL, `preparing the component failed: ${err.message}`, { cause: err }))));
    worker.on('exit', (code) => settle(() => reject(new LamplighterError(ErrorCodes.INTERNAL, `the worker preparing the component exited with code ${code}`))));
  });
}
