// Summary statistics and Welch's t-test used to compare throughput samples of two targets.

/** Arithmetic mean; NaN for an empty list. */
export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** Median (mean of the two middle values for an even count); NaN for an empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Unbiased sample variance (divides by n - 1); NaN for fewer than two values. */
export function variance(values: readonly number[]): number {
  if (values.length < 2) return Number.NaN;
  const m = mean(values);
  let sum = 0;
  for (const v of values) sum += (v - m) * (v - m);
  return sum / (values.length - 1);
}

/** Outcome of {@link welchTTest}. */
export interface TTestResult {
  /** The t statistic (positive when the first sample has the larger mean). */
  t: number;
  /** Welch–Satterthwaite degrees of freedom. */
  df: number;
  /** Two-sided p-value; NaN when either sample has fewer than two values. */
  p: number;
}

/** Welch's unequal-variance t-test of the means of two independent samples, two-sided. */
export function welchTTest(a: readonly number[], b: readonly number[]): TTestResult {
  const na = a.length;
  const nb = b.length;
  if (na < 2 || nb < 2) return { t: Number.NaN, df: Number.NaN, p: Number.NaN };
  const diff = mean(a) - mean(b);
  const sa = variance(a) / na;
  const sb = variance(b) / nb;
  const se2 = sa + sb;
  if (se2 === 0) {
    // Both samples are constant: the means either coincide exactly or differ with certainty.
    return { t: diff === 0 ? 0 : Math.sign(diff) * Number.POSITIVE_INFINITY, df: na + nb - 2, p: diff === 0 ? 1 : 0 };
  }
  const t = diff / Math.sqrt(se2);
  const df = (se2 * se2) / ((sa * sa) / (na - 1) + (sb * sb) / (nb - 1));
  return { t, df, p: studentTTwoSided(t, df) };
}

/** Two-sided tail probability P(|T| ≥ |t|) of Student's t distribution with `df` degrees of freedom. */
export function studentTTwoSided(t: number, df: number): number {
  if (Number.isNaN(t) || !(df > 0)) return Number.NaN;
  if (!Number.isFinite(t)) return 0;
  return regularizedIncompleteBeta(df / (df + t * t), df / 2, 0.5);
}

/** The regularised incomplete beta function I_x(a, b) for 0 ≤ x ≤ 1 and a, b > 0. */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const logFront = _logGamma(a + b) - _logGamma(a) - _logGamma(b) + a * Math.log(x) + b * Math.log1p(-x);
  // The continued fraction converges quickly on this side of the mean; use the symmetry otherwise.
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(logFront) * _betaFraction(x, a, b)) / a;
  return 1 - (Math.exp(logFront) * _betaFraction(1 - x, b, a)) / b;
}

const _LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) by the Lanczos approximation (g = 7), with the reflection formula below 1/2. */
function _logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - _logGamma(1 - x);
  const z = x - 1;
  let sum = _LANCZOS[0] as number;
  for (let i = 1; i < _LANCZOS.length; i++) sum += (_LANCZOS[i] as number) / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** Continued fraction of the incomplete beta function, evaluated by the modified Lentz method. */
function _betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  const clamp = (v: number): number => (Math.abs(v) < tiny ? tiny : v);
  let c = 1;
  let d = 1 / clamp(1 - ((a + b) * x) / (a + 1));
  let h = d;
  for (let m = 1; m <= 500; m++) {
    const m2 = 2 * m;
    const even = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 / clamp(1 + even * d);
    c = clamp(1 + even / c);
    h *= d * c;
    const odd = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 / clamp(1 + odd * d);
    c = clamp(1 + odd / c);
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 1e-15) break;
  }
  return h;
}
