// Tests of the statistics and report rendering: t distribution, Welch's test, comparisons, table and JSON.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  compareToBaseline,
  findKnee,
  formatErrors,
  formatMs,
  formatSummary,
  mean,
  median,
  studentTTwoSided,
  toJsonReport,
  variance,
  welchTTest,
  type LoadResult,
} from '../src/loadgen/index.js';

const close = (actual: number, expected: number, tolerance = 1e-9) =>
  assert.ok(Math.abs(actual - expected) <= tolerance * Math.max(1, Math.abs(expected)), `${actual} is not ${expected}`);

function fakeResult(url: string, samples: number[]): LoadResult {
  return {
    url,
    method: 'GET',
    concurrency: 4,
    requests: Math.round(samples.reduce((a, b) => a + b, 0)),
    durationMs: samples.length * 1000,
    lastResponseMs: samples.length * 1000,
    rps: { mean: mean(samples), median: median(samples) },
    latency: { p50: 0.5123, p90: 1.25, p99: 12.3456, max: 130.2, mean: 0.7 },
    errors: samples.length > 3 ? { '5xx': 2, connect: 1 } : {},
    samples,
  };
}

describe('statistics', () => {
  test('mean, median, variance — basic values and empty input', () => {
    assert.equal(mean([1, 2, 3, 4]), 2.5);
    assert.equal(median([5, 1, 3]), 3);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    close(variance([2, 4, 4, 4, 5, 5, 7, 9]), 32 / 7);
    assert.ok(Number.isNaN(mean([])));
    assert.ok(Number.isNaN(median([])));
    assert.ok(Number.isNaN(variance([1])));
  });

  test('studentTTwoSided — matches closed forms for 1 and 2 degrees of freedom', () => {
    for (const t of [0.1, 0.5, 1, 2, 5, 30]) {
      close(studentTTwoSided(t, 1), 1 - (2 / Math.PI) * Math.atan(t), 1e-12);
      close(studentTTwoSided(-t, 2), 1 - t / Math.sqrt(2 + t * t), 1e-12);
    }
    assert.equal(studentTTwoSided(0, 7), 1);
    assert.equal(studentTTwoSided(Number.POSITIVE_INFINITY, 7), 0);
  });

  test('studentTTwoSided — matches reference values of the t distribution', () => {
    // Reference values: 2 × the survival function of Student's t, computed with SciPy.
    close(studentTTwoSided(2.228, 10), 0.05001177181711132, 1e-10);
    close(studentTTwoSided(3.5, 4.3), 0.022127097432049728, 1e-10);
    close(studentTTwoSided(0.5, 120.5), 0.6179869299235902, 1e-10);
  });

  test("welchTTest — matches reference values of Welch's test", () => {
    // Reference values from scipy.stats.ttest_ind(a, b, equal_var=False).
    const r1 = welchTTest([10.1, 9.8, 10.4, 10.0, 9.9, 10.3], [10.9, 11.2, 10.7, 11.0, 11.4]);
    close(r1.t, -6.234712308109248, 1e-10);
    close(r1.df, 8.000229842459916, 1e-10);
    close(r1.p, 0.0002497875714015263, 1e-8);
    const r2 = welchTTest([100, 102, 98, 101], [99, 103, 100, 97, 101]);
    close(r2.t, 0.1901172751573434, 1e-10);
    close(r2.df, 6.9986454453098546, 1e-10);
    close(r2.p, 0.8546140471715592, 1e-10);
  });

  test('welchTTest — handles constant and too-short samples', () => {
    assert.equal(welchTTest([5, 5, 5], [5, 5]).p, 1);
    assert.equal(welchTTest([5, 5, 5], [6, 6]).p, 0);
    assert.ok(Number.isNaN(welchTTest([5], [6, 7, 8]).p));
  });

  test('compareToBaseline — marks a clear difference significant and overlapping samples not', () => {
    const base = fakeResult('http://a/', [1000, 1010, 990, 1005, 995]);
    const faster = fakeResult('http://b/', [1500, 1490, 1510, 1495, 1505]);
    const same = fakeResult('http://c/', [1002, 996, 1008, 991, 1003]);
    const [first, second, third] = compareToBaseline([base, faster, same]);
    assert.equal(first, undefined);
    assert.ok(second && second.significant && second.p < 0.001);
    close(second?.ratio ?? 0, 1.5, 1e-12);
    assert.ok(third && !third.significant && third.p > 0.5);
    assert.equal(second?.to, 'http://a/');
  });

  test('findKnee — picks the smallest concurrency within 5% of the peak', () => {
    const curve = [50, 100, 150, 197, 200, 199, 198].map((rps, i) => ({ concurrency: i + 1, rps }));
    assert.deepEqual(findKnee(curve), { index: 3, peakIndex: 4 });
    assert.deepEqual(findKnee(curve, { tolerance: 0 }), { index: 4, peakIndex: 4 });
    const rising = [10, 20, 30].map((rps, i) => ({ concurrency: i + 2, rps }));
    assert.deepEqual(findKnee(rising), { index: 2, peakIndex: 2 });
  });
});

describe('report', () => {
  test('formatMs — keeps at least three significant digits without exponents', () => {
    assert.equal(formatMs(0.0123456), '0.0123');
    assert.equal(formatMs(0.5123), '0.512');
    assert.equal(formatMs(1.23456), '1.23');
    assert.equal(formatMs(12.3456), '12.3');
    assert.equal(formatMs(123.456), '123');
    assert.equal(formatMs(12345.6), '12346');
    assert.equal(formatMs(null), '-');
  });

  test('formatErrors — lists kinds with counts, or 0', () => {
    assert.equal(formatErrors({}), '0');
    assert.equal(formatErrors({ '5xx': 3, connect: 1 }), '5xx 3, connect 1');
  });

  test('formatSummary — one URL has no relative columns; several have them', () => {
    const one = formatSummary([fakeResult('http://a/', [100, 110])]);
    assert.match(one, /req\/s mean/);
    assert.doesNotMatch(one, /relative/);
    const two = formatSummary([fakeResult('http://a/', [1000, 1010, 990]), fakeResult('http://b/', [500, 505, 495])]);
    const lines = two.trimEnd().split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[0] as string, /relative\s+significant$/);
    assert.match(lines[1] as string, /100%\s+baseline$/);
    assert.match(lines[2] as string, /50\.0%\s+yes \(p[<=]0\.\d+\)$/);
    assert.match(lines[1] as string, /0\.512\s+1\.25\s+12\.3\s+130/);
  });

  test('toJsonReport — has the documented shape, latencies in milliseconds', () => {
    const report = toJsonReport([fakeResult('http://a/', [1000, 1010, 990, 1005]), fakeResult('http://b/', [500, 505])]) as {
      results: Array<Record<string, unknown>>;
    };
    assert.deepEqual(Object.keys(report), ['results']);
    const [a, b] = report.results;
    assert.deepEqual(a?.rps, { mean: 1001.25, median: 1002.5 });
    assert.deepEqual(a?.latency, { p50: 0.5123, p90: 1.25, p99: 12.3456, max: 130.2, mean: 0.7 });
    assert.deepEqual(a?.errors, { '5xx': 2, connect: 1 });
    assert.deepEqual(a?.samples, [1000, 1010, 990, 1005]);
    assert.equal(a?.relative, undefined);
    const rel = b?.relative as { to: string; ratio: number; p: number; significant: boolean };
    assert.equal(rel.to, 'http://a/');
    assert.equal(typeof rel.p, 'number');
    assert.equal(rel.significant, rel.p < 0.05);
  });
});
