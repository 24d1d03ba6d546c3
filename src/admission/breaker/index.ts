// Circuit breakers per function and partition key: the admission pipeline's BreakerGate.
export { createBreakerGate, PartitionedBreakers, OVERFLOW_KEY } from './partitioned-breakers.js';
export type { BreakerGateOptions, OpenBreaker, BreakerCounts, RemoteVerdict, ProbeListener } from './partitioned-breakers.js';
export type { BucketCounts } from './key-breaker.js';
export { WHOLE_FUNCTION_KEY, MAX_KEY_LENGTH, describePartition } from './partition-key.js';
