// Default settings of the load generator, shared by the library, the CLI help and the docs.

/** Defaults for `lamplighter bench`; every option without a value takes its default from here. */
export const LoadDefaults = {
  /** Requests kept in flight at once. */
  concurrency: 10,
  /** Length of a run when no request count is given. */
  durationMs: 10_000,
  /** Requests a connection may have in flight (1: no pipelining). */
  pipelining: 1,
  /** HTTP method. */
  method: 'GET',
  /** Time to connect, to receive headers, or between body chunks before a request counts as `timeout`. */
  timeoutMs: 10_000,
  /** Length of one throughput sample. */
  sampleIntervalMs: 1000,
  /** Squeeze: lowest concurrency tried. */
  squeezeMin: 1,
  /** Squeeze: highest concurrency tried. */
  squeezeMax: 64,
  /** Squeeze: length of each step when `-d` is not given. */
  squeezeStepMs: 2000,
  /** Squeeze: steps in a row without a new best throughput after which the squeeze stops. */
  squeezePatience: 3,
  /** Squeeze: the knee is the smallest concurrency within this fraction of the best throughput. */
  squeezeTolerance: 0.05,
  /** Significance level of the comparison between URLs. */
  alpha: 0.05,
} as const;
