// Messages between the gateway thread and sandbox workers.

/** One run asked of a worker. */
export interface WorkerRun {
  job: number;
  /** Which compiled module to run. */
  key: string;
  /** Sent only the first time this worker runs `key`; workers keep it until `unload`. */
  module?: WebAssembly.Module;
  /** With `module`: initial and maximum pages of the memory the module imports. */
  memoryPages?: [initial: number, maximum: number];
  /** argv, environ and stdin packed by {@link packRunInput}. */
  input: ArrayBuffer;
  maxStdout: number;
  /** Directory of the function's shipped files, preopened read-only as `/`. @default none */
  filesDir?: string;
}

/**
 * Gateway → worker. Runs travel in batches: every run the gateway decides on in one turn of its
 * event loop goes in one message, so a busy gateway wakes each worker once per turn, not per request.
 */
export type WorkerRequest = { t: 'runs'; runs: WorkerRun[] } | { t: 'unload'; key: string };

/** Worker → gateway: the outcome of one run, posted as soon as the run ends. */
export interface WorkerResult {
  job: number;
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** Set when the run did not end by returning or calling proc_exit. */
  error?: { kind: 'trap' | 'output-limit' | 'internal'; message: string };
  /**
   * Time the worker thread spent on the run, instantiation included, in ms. A run is synchronous
   * on its thread (WASI calls return at once), so this is the run's CPU time plus any time the
   * thread waited for a core. @default 0 (a run that never started)
   */
  runMs?: number;
  /** Size of the run's linear memory when it ended, in bytes. @default 0 */
  memoryBytes?: number;
}

/** What one run reads: argv and environ as NUL-terminated UTF-8 strings laid end to end, and stdin. */
export interface RunInput {
  args: Uint8Array;
  env: Uint8Array;
  stdin: Uint8Array;
}

const encoder = new TextEncoder();

/**
 * Packs a run's input into one ArrayBuffer of exactly its size. One buffer clones in a single
 * copy when posted to a worker; a Buffer from Node's shared pool would clone its whole 8 KiB slab.
 * `args` and `env` are NUL-terminated entries laid end to end.
 */
export function packRunInput(args: string, env: string, stdin: Uint8Array): ArrayBuffer {
  const argsLength = Buffer.byteLength(args, 'utf8');
  const envLength = Buffer.byteLength(env, 'utf8');
  const buffer = new ArrayBuffer(12 + argsLength + envLength + stdin.length);
  const header = new DataView(buffer);
  header.setUint32(0, argsLength, true);
  header.setUint32(4, envLength, true);
  header.setUint32(8, stdin.length, true);
  const bytes = new Uint8Array(buffer);
  encoder.encodeInto(args, bytes.subarray(12, 12 + argsLength));
  encoder.encodeInto(env, bytes.subarray(12 + argsLength, 12 + argsLength + envLength));
  bytes.set(stdin, 12 + argsLength + envLength);
  return buffer;
}

/** Views over a buffer made by {@link packRunInput} (no copies). */
export function unpackRunInput(buffer: ArrayBuffer): RunInput {
  const header = new DataView(buffer);
  const argsLength = header.getUint32(0, true);
  const envLength = header.getUint32(4, true);
  const stdinLength = header.getUint32(8, true);
  const envStart = 12 + argsLength;
  const stdinStart = envStart + envLength;
  return {
    args: new Uint8Array(buffer, 12, argsLength),
    env: new Uint8Array(buffer, envStart, envLength),
    stdin: new Uint8Array(buffer, stdinStart, stdinLength),
  };
}
