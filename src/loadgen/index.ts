// The load generator behind `lamplighter bench`: runs, squeezes, statistics, reports and scale recommendations.
export { LoadDefaults } from './load-defaults.js';
export { runLoad, classifyError } from './load-runner.js';
export type { ErrorKind, LatencySummary, LoadOptions, LoadResult, LoadSample } from './load-runner.js';
export { squeeze, findKnee, stepThroughput } from './squeeze.js';
export type { FindKneeOptions, SqueezeOptions, SqueezePoint, SqueezeResult } from './squeeze.js';
export { mean, median, variance, welchTTest, studentTTwoSided, regularizedIncompleteBeta } from './stats.js';
export type { TTestResult } from './stats.js';
export { compareToBaseline, formatErrors, formatMs, formatSampleLine, formatSqueeze, formatSqueezeStep, formatSummary, toJsonReport } from './report.js';
export type { Comparison, JsonReportOptions, ReportOptions } from './report.js';
export { recommendScale, formatScaleToml, formatDuration } from './recommend.js';
export type { FunctionConfig, FunctionScaleConfig, RecommendOptions, ScaleRecommendation, SqueezeSummary } from './recommend.js';
export { fetchFunctionConfig } from './function-config.js';
export type { FetchFunctionConfigOptions } from './function-config.js';
