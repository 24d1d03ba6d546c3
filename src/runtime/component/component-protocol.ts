// Messages between a component instance (caller's thread) and its worker thread, and the wake-up signal.

/** A wasi:http error-code value as the component model lowers it: `{ tag, val? }`. */
export interface HttpErrorCode {
  tag: string;
  val?: unknown;
}

/**
 * The response header by which a handler built with `lamplighter build` says it produced no
 * response (the engine would answer a plain-text 500 of its own): the host answers
 * Lamplighter's JSON error instead, 502 LL_BAD_HANDLER_RESPONSE.
 */
export const NO_RESPONSE_HEADER = 'x-lamplighter-no-response';

/**
 * The custom section a component built for reuse (`lamplighter build --isolation instance`)
 * carries, naming its entry and the entry's version: the deploy allows `isolation = "instance"`
 * for a JS component only with the version this Lamplighter makes.
 */
export const HANDLER_ENTRY_SECTION = 'lamplighter:entry';
/** The reusable entry's name and version, the section's content. */
export const HANDLER_ENTRY_VERSION = 'incoming-handler/1';

/** Header list as `[name, value]` pairs; values carried as latin1 strings. */
export type WireHeaders = Array<[string, string]>;

/** Data a component worker starts with. */
export interface ComponentWorkerData {
  /** Compiled core modules by file name, shared with the caller (never recompiled). */
  modules: Record<string, WebAssembly.Module>;
  /** Source text of the instantiation module (ES module exporting `instantiate`). */
  bindings: string;
  /** The exported incoming-handler instance, e.g. `wasi:http/incoming-handler@0.2.10`. */
  handlerExport: string;
  /** Environment the handler sees: the manifest's `env`, nothing else. */
  env: Array<[string, string]>;
  /** Outbound allow-list entries as written in the manifest. */
  allowedOutboundHosts: string[];
  /** "request": each request on an instance as new (restored); "instance": one instance reused. */
  isolation: 'request' | 'instance';
  /** Requests one instance serves under isolation "instance" before it is replaced. */
  maxReuse: number;
  /** The function's shipped files, preopened read-only as `/`; none when absent. */
  filesDir?: string;
  /** The end of the channel the worker reads and writes. */
  port: MessagePort;
  /**
   * Three Int32 slots: 0 counts messages sent to the worker (it waits on it while blocked in wasm);
   * 1 stays 0 (for plain sleeps); {@link AHEAD_SLOT} holds the id of the request sent ahead.
   */
  signal: SharedArrayBuffer;
}

/**
 * The signal slot that holds the id of the request sent ahead, until one side claims it with a
 * compare-and-swap to 0: the worker, to start it; or the caller's thread, to take it back (the
 * run before it is slow, or the request was given up). Exactly one of them wins.
 */
export const AHEAD_SLOT = 2;

/**
 * One request to run. It goes to an idle worker, or to one whose run has just started: that
 * worker keeps it, and starts it once the run ends (so it never waits on the caller's thread
 * between requests). Only a request without a body is sent ahead like that.
 */
export interface RunRequest {
  t: 'request';
  id: number;
  method: string;
  pathWithQuery: string;
  scheme: 'http' | 'https';
  authority: string;
  headers: WireHeaders;
  /** Epoch milliseconds after which the worker gives up waiting in wasm. */
  deadline: number;
  /** The request has no body: its stream ends at once, and no body message follows. */
  bodyless?: boolean;
  /** Sent ahead: the worker starts it only if it claims it first (see {@link AHEAD_SLOT}). */
  ahead?: boolean;
}

/** Messages the caller's thread sends to a worker. */
export type ToWorker =
  | RunRequest
  | { t: 'body'; id: number; chunk: Uint8Array }
  | { t: 'body-end'; id: number }
  | { t: 'body-error'; id: number; message: string }
  /** The worker is parked for another instance: its instance must start over (isolation "instance"). */
  | { t: 'reset' }
  /** The caller gave up on the request (timeout, client gone): stop at the next wait. */
  | { t: 'stop'; id: number }
  /** The caller consumed `bytes` more of the response body; the handler may write that much more. */
  | { t: 'credit'; id: number; bytes: number }
  | { t: 'fetch-head'; oid: number; status: number; headers: WireHeaders }
  | { t: 'fetch-chunk'; oid: number; chunk: Uint8Array }
  | { t: 'fetch-end'; oid: number }
  | { t: 'fetch-error'; oid: number; code: HttpErrorCode }
  /** The outbound connection took `bytes` more of the outbound request body. */
  | { t: 'fetch-credit'; oid: number; bytes: number };

/** How a request ended without a complete response. */
export interface RunFailure {
  kind: 'trap' | 'no-response' | 'error-response' | 'exit' | 'incomplete-body';
  message: string;
}

/** Messages a worker sends to the caller's thread. */
export type FromWorker =
  | { t: 'ready' }
  | { t: 'load-failed'; message: string }
  | { t: 'head'; id: number; status: number; headers: WireHeaders }
  | { t: 'chunk'; id: number; chunk: Uint8Array }
  | { t: 'end'; id: number }
  /** The handler read `bytes` more of the request body. */
  | { t: 'ack'; id: number; bytes: number }
  | { t: 'log'; stream: 'stdout' | 'stderr'; text: string }
  | { t: 'done'; id: number; failure?: RunFailure; stats: WorkerStats; memoryBytes?: number }
  /** Several of the above, in order (one postMessage instead of several). */
  | { t: 'batch'; messages: FromWorker[] }
  | { t: 'fetch'; oid: number; id: number; method: string; url: string; headers: WireHeaders; timeouts: OutboundTimeouts }
  | { t: 'fetch-body'; oid: number; chunk: Uint8Array }
  | { t: 'fetch-body-end'; oid: number }
  | { t: 'fetch-ack'; oid: number; bytes: number }
  | { t: 'fetch-cancel'; oid: number };

/** What one worker has done since it started: counts, and time by part in nanoseconds. */
export interface WorkerStats {
  /** Requests run. */
  requests: number;
  /** Instances made (the first one, and each replacement). */
  instantiated: number;
  /** Instances put back to their first state after a request. */
  restored: number;
  /** Instances let go after a request (trap, growth, limit reached, restore refused). */
  replaced: number;
  /** Memory blocks copied back by restores. */
  dirtyBlocks: number;
  /** Handles requests left open, which the restores after them let go of. */
  leftHandles: number;
  /** Requests that were waiting in the worker, sent ahead, when the run before them ended. */
  ranAhead: number;
  /**
   * Wall time in the handler's export, bindings and host calls included (Node 20 has no cheap
   * per-thread CPU clock: /proc's schedstat leaves out the running slice). On a busy machine it
   * counts time the thread waited for a CPU too.
   */
  handlerNs: number;
  /** Wall time restoring (or judging) instances after their requests. */
  restoreNs: number;
  /** Wall time making new instances. */
  instantiateNs: number;
}

/** Stats of a worker that has done nothing yet. */
export function emptyWorkerStats(): WorkerStats {
  return { requests: 0, instantiated: 0, restored: 0, replaced: 0, dirtyBlocks: 0, leftHandles: 0, ranAhead: 0, handlerNs: 0, restoreNs: 0, instantiateNs: 0 };
}

/** Timeouts a handler set on an outbound request, in milliseconds. */
export interface OutboundTimeouts {
  connectMs?: number;
  firstByteMs?: number;
  betweenBytesMs?: number;
}

/** Bytes of a streamed body allowed in flight between the threads before the writer waits. */
export const STREAM_WINDOW = 256 * 1024;
