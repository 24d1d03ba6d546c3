// Platform-wide defaults, exported so docs, CLI help and tests quote the same numbers.

/** Defaults for a node; every manifest field without a value takes its default from here. */
export const PlatformDefaults = {
  /** Gateway port. */
  port: 8080,
  /** Admin API and /metrics port. */
  adminPort: 8081,
  /** Gateway bind address; loopback unless told otherwise. */
  host: '127.0.0.1',
  /** Admin API and /metrics bind address; loopback unless told otherwise, whatever `host` is. */
  adminHost: '127.0.0.1',
  /** Memory a WebAssembly function may use. */
  memory: 64 * 1024 * 1024,
  /** Hard ceiling for `limits.memory`. */
  maxMemory: 4 * 1024 ** 3,
  /** Time a request may take before it is answered 504. */
  timeoutMs: 30_000,
  /** Requests one WebAssembly instance takes at a time. */
  wasmConcurrency: 16,
  /** Requests one process instance takes at a time. */
  processConcurrency: 100,
  /** Requests held per function while no instance is free; past it, 503. */
  maxPending: 1000,
  /** Time a request may wait for a cold instance before it is answered 504. */
  coldStartTimeoutMs: 10_000,
  /** Largest response a WAGI handler may write. */
  maxResponseBytes: 16 * 1024 * 1024,
  /** Largest request body buffered for a WAGI handler. */
  maxBodyBytes: 16 * 1024 * 1024,
  /** Instances kept lit when idle. */
  scaleMin: 0,
  /** Most instances of one function. */
  scaleMax: 50,
  /** Time without requests after which a function is put out. */
  idleMs: 30_000,
  /** Window over which demand is averaged. */
  windowMs: 10_000,
  /** Process functions: time to pass the readiness probe. */
  startupTimeoutMs: 30_000,
  /** Process functions: time in-flight requests get to finish on stop. */
  drainTimeoutMs: 10_000,
} as const;
