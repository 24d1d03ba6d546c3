// Messages between a deploy and the worker thread that prepares a component off the caller's event loop.
import type { ErrorCode } from '../../errors/index.js';
import type { FunctionSpec } from '../../manifest/index.js';
import type { PreparedComponent } from './prepare-component.js';

/** Data the prepare worker starts with. */
export interface PrepareWorkerData {
  spec: FunctionSpec;
  /** sha256 of the component's bytes: the cache key. */
  digest: string;
  /** The per-user cache directory, or null for none. */
  cacheDir: string | null;
  /** The transpiler's version: part of the cache key. */
  jco: string;
}

/** The one message the caller sends: the component's bytes, when the worker asks for them. */
export interface ToPrepareWorker {
  bytes: Uint8Array;
}

/** What the prepare worker reports. */
export type FromPrepareWorker =
  | { t: 'need-bytes' }
  | { t: 'note'; text: string }
  | { t: 'done'; prepared: PreparedComponent; modules: Record<string, WebAssembly.Module>; cached: boolean }
  | { t: 'failed'; code: ErrorCode | undefined; message: string; detail: Record<string, unknown> | undefined };
