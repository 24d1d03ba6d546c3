// Renders load results for people (sample lines, summary table, squeeze curve) and for programs (JSON).
import { LoadDefaults } from './load-defaults.js';
import type { ErrorKind, LoadResult, LoadSample } from './load-runner.js';
import type { ScaleRecommendation } from './recommend.js';
import { formatScaleToml } from './recommend.js';
import type { SqueezePoint, SqueezeResult } from './squeeze.js';
import { welchTTest } from './stats.js';

/** How one result compares with the baseline (the first URL). */
export interface Comparison {
  /** URL of the baseline. */
  to: string;
  /** Mean requests/s of this result divided by the baseline's. */
  ratio: number;
  /** Two-sided p-value of Welch's t-test on the per-second samples; NaN with fewer than two samples on a side. */
  p: number;
  /** True when p < alpha. */
  significant: boolean;
}

/** Options shared by the comparison and the renderers. */
export interface ReportOptions {
  /** Significance level of the comparison. @default LoadDefaults.alpha (0.05) */
  alpha?: number;
}

/** Compares every result after the first with the first; the first gets `undefined`. */
export function compareToBaseline(results: readonly LoadResult[], options: ReportOptions = {}): Array<Comparison | undefined> {
  const alpha = options.alpha ?? LoadDefaults.alpha;
  const base = results[0];
  return results.map((r, i) => {
    if (i === 0 || base === undefined) return undefined;
    const { p } = welchTTest(r.samples, base.samples);
    return { to: base.url, ratio: r.rps.mean / base.rps.mean, p, significant: p < alpha };
  });
}

/** Milliseconds with at least three significant digits and no exponent ("0.0123", "1.23", "123", "1234"). */
export function formatMs(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '-';
  if (ms >= 100) return ms.toFixed(0);
  if (ms >= 10) return ms.toFixed(1);
  if (ms >= 1) return ms.toFixed(2);
  if (ms === 0) return '0';
  return ms.toPrecision(3);
}

/** One progress line for a throughput sample. */
export function formatSampleLine(sample: LoadSample): string {
  const at = `${(sample.elapsedMs / 1000).toFixed(1)}s`.padStart(7);
  const errors = sample.errors > 0 ? `  ${sample.errors} errors` : '';
  return `${at}  ${_rps(sample.rps).padStart(10)} req/s${errors}`;
}

/** The summary table of one or more results, with relative and significance columns when there are several. */
export function formatSummary(results: readonly LoadResult[], options: ReportOptions = {}): string {
  const several = results.length > 1;
  const comparisons = compareToBaseline(results, options);
  const header = ['url', 'req/s mean', 'median', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors'];
  if (several) header.push('relative', 'significant');
  const rows = results.map((r, i) => {
    const row = [
      r.url,
      _rps(r.rps.mean),
      _rps(r.rps.median),
      formatMs(r.latency.p50),
      formatMs(r.latency.p90),
      formatMs(r.latency.p99),
      formatMs(r.latency.max),
      formatErrors(r.errors),
    ];
    if (several) {
      const c = comparisons[i];
      row.push(c === undefined ? '100%' : _percent(c.ratio), c === undefined ? 'baseline' : _significance(c));
    }
    return row;
  });
  return _table(header, rows, new Set([0, 7, 9]));
}

/** Failure counts as "5xx 12, connect 3", or "0". */
export function formatErrors(errors: Partial<Record<ErrorKind, number>>): string {
  const parts = Object.entries(errors)
    .filter(([, n]) => (n ?? 0) > 0)
    .map(([kind, n]) => `${kind} ${n}`);
  return parts.length === 0 ? '0' : parts.join(', ');
}

/** One progress line for a finished squeeze step. */
export function formatSqueezeStep(point: SqueezePoint, result: LoadResult): string {
  const errors = formatErrors(result.errors);
  return `${String(point.concurrency).padStart(6)} in flight  ${_rps(point.rps).padStart(10)} req/s  p50 ${formatMs(result.latency.p50)} ms  errors ${errors}`;
}

/** The squeeze curve as a table, the knee and the peak marked. */
export function formatSqueeze(result: SqueezeResult): string {
  const rows = result.curve.map((p) => {
    const marks = [p.concurrency === result.best.concurrency ? 'knee' : '', p.concurrency === result.peak.concurrency ? 'peak' : '']
      .filter(Boolean)
      .join(', ');
    return [String(p.concurrency), _rps(p.rps), marks];
  });
  const table = _table(['concurrency', 'req/s', ''], rows, new Set([2]));
  return `${table}knee: ${result.best.concurrency} in flight give ${_rps(result.best.rps)} req/s (peak ${_rps(result.peak.rps)} req/s at ${result.peak.concurrency})\n`;
}

/** Options for {@link toJsonReport}. */
export interface JsonReportOptions extends ReportOptions {
  /** Squeeze outcome to include as `squeeze`. @default undefined */
  squeeze?: SqueezeResult;
  /** Recommendation to include as `recommendation`. @default undefined */
  recommendation?: ScaleRecommendation;
}

/** The machine-readable report: `{results: [...], squeeze?, recommendation?}`, latencies in milliseconds. */
export function toJsonReport(results: readonly LoadResult[], options: JsonReportOptions = {}): Record<string, unknown> {
  const comparisons = compareToBaseline(results, options);
  const out: Record<string, unknown> = {
    results: results.map((r, i) => {
      const c = comparisons[i];
      return {
        url: r.url,
        method: r.method,
        concurrency: r.concurrency,
        requests: r.requests,
        durationMs: _round(r.durationMs, 1),
        rps: { mean: _round(r.rps.mean, 2), median: _round(r.rps.median, 2) },
        latency: {
          p50: _roundNullable(r.latency.p50),
          p90: _roundNullable(r.latency.p90),
          p99: _roundNullable(r.latency.p99),
          max: _roundNullable(r.latency.max),
          mean: _roundNullable(r.latency.mean),
        },
        errors: { ...r.errors },
        samples: r.samples.map((s) => _round(s, 2)),
        ...(c === undefined
          ? {}
          : { relative: { to: c.to, ratio: _round(c.ratio, 4), p: Number.isNaN(c.p) ? null : c.p, significant: c.significant } }),
      };
    }),
  };
  if (options.squeeze) {
    const sq = options.squeeze;
    const point = (p: { concurrency: number; rps: number }) => ({ concurrency: p.concurrency, rps: _round(p.rps, 2) });
    out.squeeze = { best: point(sq.best), peak: point(sq.peak), curve: sq.curve.map(point) };
  }
  if (options.recommendation) {
    out.recommendation = { ...options.recommendation, toml: formatScaleToml(options.recommendation) };
  }
  return out;
}

function _significance(c: Comparison): string {
  if (Number.isNaN(c.p)) return 'n/a (<2 samples)';
  const p = c.p < 0.001 ? 'p<0.001' : `p=${c.p.toFixed(3)}`;
  return `${c.significant ? 'yes' : 'no'} (${p})`;
}

function _percent(ratio: number): string {
  return Number.isFinite(ratio) ? `${(ratio * 100).toFixed(1)}%` : '-';
}

function _rps(value: number): string {
  if (!Number.isFinite(value)) return '-';
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function _round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

function _roundNullable(value: number | null): number | null {
  return value === null ? null : _round(value, 6);
}

/** Plain-text table; columns in `leftAligned` are padded on the right, the rest on the left. */
function _table(header: string[], rows: string[][], leftAligned: Set<number>): string {
  const widths = header.map((h, col) => Math.max(h.length, ...rows.map((r) => (r[col] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, col) => (leftAligned.has(col) ? cell.padEnd(widths[col] ?? 0) : cell.padStart(widths[col] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}
