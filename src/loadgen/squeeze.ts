// Concurrency squeeze: raises concurrency one step at a time and finds where throughput stops growing.
import { LamplighterError, ErrorCodes } from '../errors/index.js';
import { LoadDefaults } from './load-defaults.js';
import { runLoad, type LoadOptions, type LoadResult } from './load-runner.js';

/** Throughput measured at one concurrency. */
export interface SqueezePoint {
  /** Requests kept in flight. */
  concurrency: number;
  /** Successful responses per second over the step (see {@link stepThroughput}). */
  rps: number;
}

/** Outcome of {@link squeeze}. */
export interface SqueezeResult {
  /** The target. */
  url: string;
  /** The knee: the smallest concurrency whose throughput is within the tolerance of the peak. */
  best: SqueezePoint;
  /** The step with the highest throughput. */
  peak: SqueezePoint;
  /** Every step, in the order run (concurrency ascending). */
  curve: SqueezePoint[];
  /** The full measurement of the knee step. */
  result: LoadResult;
}

/** Options for {@link squeeze}; the load options apply to every step. */
export interface SqueezeOptions extends Omit<LoadOptions, 'concurrency' | 'requests' | 'durationMs' | 'onSample'> {
  /** Lowest concurrency tried. @default LoadDefaults.squeezeMin (1) */
  min?: number;
  /** Highest concurrency tried. @default LoadDefaults.squeezeMax (64) */
  max?: number;
  /** Length of each step. @default LoadDefaults.squeezeStepMs (2 s) */
  stepMs?: number;
  /** Stop after this many steps in a row without a new peak. @default LoadDefaults.squeezePatience (3) */
  patience?: number;
  /** The knee is the smallest concurrency reaching (1 - tolerance) × peak. @default LoadDefaults.squeezeTolerance (0.05) */
  tolerance?: number;
  /** Called after each step. @default undefined */
  onStep?: (point: SqueezePoint, result: LoadResult) => void;
}

/**
 * Runs one step at every integer concurrency from `min` upwards, stopping at `max` or once `patience`
 * steps in a row set no new peak, and reports the curve and its knee.
 */
export async function squeeze(url: string, options: SqueezeOptions = {}): Promise<SqueezeResult> {
  const {
    onStep,
    min = LoadDefaults.squeezeMin,
    max = LoadDefaults.squeezeMax,
    stepMs = LoadDefaults.squeezeStepMs,
    patience = LoadDefaults.squeezePatience,
    tolerance = LoadDefaults.squeezeTolerance,
    ...load
  } = options;
  if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max < min) {
    throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Cannot squeeze '${url}': need integers 1 ≤ min ≤ max, got min ${min} and max ${max}`);
  }
  const curve: SqueezePoint[] = [];
  const results: LoadResult[] = [];
  let peak = -1;
  let sincePeak = 0;
  for (let concurrency = min; concurrency <= max; concurrency++) {
    if (load.signal?.aborted) break;
    const result = await runLoad(url, { ...load, concurrency, durationMs: stepMs });
    const point = { concurrency, rps: stepThroughput(result) };
    curve.push(point);
    results.push(result);
    onStep?.(point, result);
    if (point.rps > peak) {
      peak = point.rps;
      sincePeak = 0;
    } else if (++sincePeak >= patience) {
      break;
    }
  }
  if (curve.length === 0) throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Cannot squeeze '${url}': aborted before the first step`);
  const knee = findKnee(curve, { tolerance });
  return {
    url,
    best: curve[knee.index] as SqueezePoint,
    peak: curve[knee.peakIndex] as SqueezePoint,
    curve,
    result: results[knee.index] as LoadResult,
  };
}

/** Options for {@link findKnee}. */
export interface FindKneeOptions {
  /** Fraction below the peak still counted as saturated. @default LoadDefaults.squeezeTolerance (0.05) */
  tolerance?: number;
}

/** Index of the smallest concurrency whose throughput is at least (1 - tolerance) × the peak, and of the peak. */
export function findKnee(curve: readonly SqueezePoint[], options: FindKneeOptions = {}): { index: number; peakIndex: number } {
  const tolerance = options.tolerance ?? LoadDefaults.squeezeTolerance;
  let peakIndex = 0;
  curve.forEach((p, i) => {
    if (p.rps > (curve[peakIndex] as SqueezePoint).rps) peakIndex = i;
  });
  const threshold = (1 - tolerance) * (curve[peakIndex]?.rps ?? 0);
  let index = peakIndex;
  curve.forEach((p, i) => {
    if (p.rps >= threshold && (p.concurrency < (curve[index] as SqueezePoint).concurrency)) index = i;
  });
  return { index, peakIndex };
}

/**
 * Successful responses (status below 400) per second of a step, counted up to its last response.
 * Error answers do not count, so a server shedding load with fast 503s shows no false gain; and a
 * timed step cuts off the requests in flight at its end, which at low concurrency and long requests
 * would otherwise understate the rate by up to one request per slot.
 */
export function stepThroughput(result: Pick<LoadResult, 'requests' | 'lastResponseMs' | 'errors'>): number {
  if (result.lastResponseMs === null || result.lastResponseMs <= 0) return 0;
  const ok = result.requests - (result.errors['4xx'] ?? 0) - (result.errors['5xx'] ?? 0);
  return (ok * 1000) / result.lastResponseMs;
}
