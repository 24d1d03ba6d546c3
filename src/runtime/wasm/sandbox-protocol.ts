// Messages between the gateway thread and sandbox workers.

/** Gateway → worker. */
export type WorkerRequest =
  | {
      t: 'run';
      job: number;
      /** Which compiled module to run. */
      key: string;
      /** Sent only the first time this worker runs `key`; workers keep it until `unload`. */
      module?: WebAssembly.Module;
      /** With `module`: initial and maximum pages of the memory the module imports. */
      memoryPages?: [initial: number, maximum: number];
      /** argv as one NUL-separated UTF-8 block. */
      args: Uint8Array;
      /** environ (`NAME=value`) as one NUL-separated UTF-8 block. */
      env: Uint8Array;
      stdin: Uint8Array;
      maxStdout: number;
    }
  | { t: 'unload'; key: string };

/** Worker → gateway: the outcome of one run. */
export interface WorkerResult {
  t: 'done';
  job: number;
  exitCode: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** Set when the run did not end by returning or calling proc_exit. */
  error?: { kind: 'trap' | 'output-limit' | 'internal'; message: string };
}
