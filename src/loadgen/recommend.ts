// Turns a squeeze into the `[function.scale]` manifest table it implies, keeping the function's other settings.
import type { SqueezePoint } from './squeeze.js';

/** Scaling settings of a function as the admin API reports them (milliseconds, nulls for unset). */
export interface FunctionScaleConfig {
  min: number;
  max: number;
  idleMs: number;
  target: number | null;
  rate: number | null;
  windowMs: number | null;
}

/** The parts of `GET /v1/functions/{name}` the recommendation reads. */
export interface FunctionConfig {
  name: string;
  app?: string;
  runtime?: string;
  scale: FunctionScaleConfig;
  limits?: { concurrency?: number };
}

/** What a squeeze measured, as far as the recommendation needs it. */
export interface SqueezeSummary {
  /** The target that was squeezed. */
  url: string;
  /** The knee: smallest concurrency within tolerance of the peak. */
  best: SqueezePoint;
  /** The step with the highest throughput. */
  peak: SqueezePoint;
}

/** A recommended `[function.scale]` table with the reasons worth printing beside it. */
export interface ScaleRecommendation {
  /** The function the table is for. */
  function: string;
  /** The table's values, durations already formatted as manifest strings. */
  scale: { min: number; max: number; idle: string; target: number; window?: string };
  /** Remarks printed as TOML comments above the table. */
  notes: string[];
}

/** Options for {@link recommendScale}. */
export interface RecommendOptions {
  /** Shown in the notes as the fraction of the peak the knee reaches. @default 0.05 */
  tolerance?: number;
}

/**
 * The scale settings a squeeze implies: `target` becomes the knee concurrency, while min, max, idle
 * and window stay as the function has them now; a previous `rate` is dropped because a function
 * scales on target or on rate, not both.
 */
export function recommendScale(config: FunctionConfig, squeeze: SqueezeSummary, options: RecommendOptions = {}): ScaleRecommendation {
  const tolerance = options.tolerance ?? 0.05;
  const { scale } = config;
  const target = squeeze.best.concurrency;
  const notes = [
    `squeeze of ${squeeze.url}: ${target} in flight reach ${_rps(squeeze.best.rps)} req/s, ` +
      `within ${Math.round(tolerance * 100)}% of the peak ${_rps(squeeze.peak.rps)} req/s at ${squeeze.peak.concurrency}`,
  ];
  if (scale.target !== null && scale.target !== undefined) {
    notes.push(scale.target === target ? `target is unchanged (${target})` : `target was ${scale.target}`);
  }
  if (scale.rate !== null && scale.rate !== undefined) {
    notes.push(`replaces rate = ${scale.rate}: a function scales on target or on rate, not both`);
  }
  const perInstance = config.limits?.concurrency;
  if (perInstance !== undefined && perInstance < target) {
    notes.push(`limits.concurrency = ${perInstance} lets one instance take fewer requests at once than this target`);
  }
  const table: ScaleRecommendation['scale'] = {
    min: scale.min,
    max: scale.max,
    idle: formatDuration(scale.idleMs),
    target,
  };
  if (scale.windowMs !== null && scale.windowMs !== undefined) table.window = formatDuration(scale.windowMs);
  return { function: config.name, scale: table, notes };
}

/** The recommendation as TOML: its notes as comments, then the `[function.scale]` table. */
export function formatScaleToml(recommendation: ScaleRecommendation): string {
  const lines = [`# function '${recommendation.function}'`, ...recommendation.notes.map((n) => `# ${n}`), '[function.scale]'];
  const s = recommendation.scale;
  lines.push(`min = ${s.min}`, `max = ${s.max}`, `idle = "${s.idle}"`, `target = ${s.target}`);
  if (s.window !== undefined) lines.push(`window = "${s.window}"`);
  return `${lines.join('\n')}\n`;
}

/** Formats milliseconds the way manifests write durations: "30s", "1m30s", "250ms", "1h". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`a duration must be a finite number of milliseconds ≥ 0, got ${ms}`);
  let rest = Math.round(ms);
  if (rest === 0) return '0s';
  let out = '';
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const) {
    const count = Math.floor(rest / size);
    if (count > 0) out += `${count}${unit}`;
    rest -= count * size;
  }
  return out;
}

function _rps(value: number): string {
  return value >= 100 ? String(Math.round(value)) : value.toPrecision(3);
}
