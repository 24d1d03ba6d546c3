// The contract between the scaler and the KEDA server: per-function demand and activity changes.

/** What the KEDA server reads from the scaler, per function. */
export interface DemandSource {
  /** The figures for one function, or undefined when no such function is deployed. */
  demand(functionName: string): FunctionDemand | undefined;
  /** Called whenever a function's active state may have changed; returns an unsubscribe function. */
  onActivityChange(listener: (functionName: string, active: boolean) => void): () => void;
}

/** One function's demand as the scaler currently sees it. */
export interface FunctionDemand {
  /** True while the function has demand or has not yet been idle for its `idle` period. */
  active: boolean;
  /** 'concurrency' or 'rate' — which figure scales the function. */
  metric: 'concurrency' | 'rate';
  /** scale.target (concurrency per instance) or scale.rate (requests/s per instance). */
  target: number;
  /** Current time-weighted value of that metric (in-flight requests, or requests/s). */
  value: number;
}
