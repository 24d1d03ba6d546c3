// Deploy-time worker thread: takes a component from the per-user cache or transpiles it, then compiles its core modules.
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { LamplighterError } from '../../errors/index.js';
import { compileCoreModule } from './component-binary.js';
import { ComponentCache } from './component-cache.js';
import { prepareComponent, type PreparedComponent } from './prepare-component.js';
import type { PrepareWorkerData, FromPrepareWorker, ToPrepareWorker } from './prepare-protocol.js';

const data = workerData as PrepareWorkerData;
const port = parentPort!;

/**
 * Lowers this thread's scheduling priority (Linux gives each thread its own nice value): on a
 * machine with few cores, seconds of transpiling must not take CPU time from the gateway's
 * thread or the sandbox workers. Elsewhere the thread keeps the process's priority.
 */
function yieldToServing(): void {
  try {
    const tid = Number(path.basename(readlinkSync('/proc/thread-self')));
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, Math.min(19, getPriority(tid) + BACKGROUND_NICE));
  } catch {
    // Not Linux, or not allowed: run at the process's priority.
  }
}

/** How much lower than the process the prepare thread runs (nice steps). */
const BACKGROUND_NICE = 10;

yieldToServing();

function post(message: FromPrepareWorker, transfer?: ArrayBuffer[]): void {
  port.postMessage(message, transfer);
}

/** Asks the caller for the component's bytes: a cache hit never reads them. */
function requestBytes(): Promise<Uint8Array> {
  return new Promise((resolve) => {
    port.once('message', (message: ToPrepareWorker) => resolve(message.bytes));
    post({ t: 'need-bytes' });
  });
}

async function run(): Promise<void> {
  const cache = data.cacheDir === null ? undefined : new ComponentCache(data.cacheDir, data.jco);
  let prepared: PreparedComponent | undefined;
  let cached = false;
  if (cache) {
    const found = await cache.read(data.digest);
    if (found.kind === 'hit') {
      prepared = found.prepared;
      cached = true;
    } else if (found.kind === 'damaged') {
      post({ t: 'note', text: `cache entry ${cache.fileFor(data.digest)} is damaged (${found.reason}); transpiling again` });
    }
  }
  if (!prepared) {
    prepared = await prepareComponent(await requestBytes(), data.spec);
    if (cache) {
      try {
        await cache.write(data.digest, prepared);
      } catch (err) {
        post({ t: 'note', text: `could not write the cache entry ${cache.fileFor(data.digest)}: ${(err as Error).message}` });
      }
    }
  }
  const modules: Record<string, WebAssembly.Module> = {};
  for (const [name, bytes] of Object.entries(prepared.files)) {
    if (!name.endsWith('.wasm')) continue;
    modules[name] = await compileCoreModule(bytes, data.spec.limits.memory);
  }
  // Views of a buffer of their own, or of the one a cache entry was read into, move; a slice of
  // Buffer's shared pool (small files) is copied.
  const transfer = Object.values(prepared.files)
    .filter((f) => f.buffer.byteLength > Buffer.poolSize || (f.byteOffset === 0 && f.byteLength === f.buffer.byteLength))
    .map((f) => f.buffer)
    .filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
  post({ t: 'done', prepared, modules, cached }, [...new Set(transfer)]);
}

run().catch((err: unknown) => {
  if (err instanceof LamplighterError) post({ t: 'failed', code: err.code, message: err.message, detail: err.detail });
  else post({ t: 'failed', code: undefined, message: err instanceof Error ? err.message : String(err), detail: undefined });
});
