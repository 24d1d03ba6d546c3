// The `lamplighter bench` command: parses its flags, drives the load generator and prints the reports.
import { STDIO, type CommandIo } from './command-io.js';
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { parseDuration, PlatformDefaults } from '../config/index.js';
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import {
  LoadDefaults,
  fetchFunctionConfig,
  formatSampleLine,
  formatScaleToml,
  formatSqueeze,
  formatSqueezeStep,
  formatSummary,
  recommendScale,
  runLoad,
  squeeze,
  toJsonReport,
  type FunctionConfig,
  type LoadResult,
  type ScaleRecommendation,
  type SqueezeResult,
} from '../loadgen/index.js';

/** Where the command writes. */
export type BenchIo = CommandIo;

interface _BenchFlags {
  concurrency?: number;
  duration?: number;
  requests?: number;
  method: string;
  header?: Array<[string, string]>;
  body?: string;
  bodyFile?: string;
  timeout?: number;
  pipelining: number;
  warmup?: number;
  json?: boolean;
  squeeze?: boolean;
  min?: number;
  max?: number;
  recommend?: string;
  server?: string;
  token?: string;
}

const _HELP = `
Measurement:
  Several URLs are measured one after another, in the order given, each for the
  full duration (or request count) with the same settings. Requests/s counts every
  answer whatever its status and is sampled once a second; the summary gives the
  mean and median of those samples, latency percentiles (from writing a request to
  the end of its answer, 3 significant digits) and failures by kind: 4xx, 5xx,
  timeout, connect, reset, other. Requests still in flight when a timed run ends
  are dropped. Ctrl-C ends the run and prints what was measured.
  With several URLs, "relative" is each URL's mean requests/s as a percentage of
  the first URL's, and "significant" is Welch's t-test on the per-second samples
  against the first URL (two-sided, alpha ${LoadDefaults.alpha}).

Squeeze:
  --squeeze runs one step of -d (default ${LoadDefaults.squeezeStepMs / 1000}s) at every integer concurrency from
  --min to --max, stopping early once ${LoadDefaults.squeezePatience} steps in a row set no new peak. A step's
  requests/s counts successful answers (status below 400) up to its last answer.
  The knee is the smallest concurrency within ${LoadDefaults.squeezeTolerance * 100}% of the peak; a server that takes
  exactly k requests at once has its knee at k. --recommend NAME implies --squeeze
  and prints the [function.scale] table with target = knee, keeping min, max, idle
  and window from GET {server}/v1/functions/NAME.

Examples:
  $ lamplighter bench http://127.0.0.1:8080/hello -c 32 -d 10s
  $ lamplighter bench http://127.0.0.1:8080/a http://127.0.0.1:8080/b -d 5s --json
  $ lamplighter bench http://127.0.0.1:8080/hello --squeeze --max 32 --recommend hello
`;

/** Adds the `bench` command to a commander program; output goes to `io` (stdout and stderr by default). */
export function registerBenchCommand(program: Command, io: BenchIo = STDIO): void {
  const out = io.out;
  const cmd = program
    .command('bench')
    .description('Drive HTTP load at one or more URLs and report requests/s, latency and errors')
    .argument('<url...>', 'URLs to measure, one after another')
    .option('-c, --concurrency <n>', `requests in flight at once (default: ${LoadDefaults.concurrency})`, _integer('concurrency'))
    .option('-d, --duration <time>', `length of each run, or of each squeeze step (default: ${LoadDefaults.durationMs / 1000}s; ${LoadDefaults.squeezeStepMs / 1000}s per squeeze step)`, _duration('duration'))
    .option('-n, --requests <n>', 'send exactly n requests to each URL (with -d, whichever ends first)', _integer('requests'))
    .option('-m, --method <method>', 'HTTP method', LoadDefaults.method)
    .option('-H, --header <"name: value">', 'request header; repeat for more', _header)
    .option('--body <text>', 'request body')
    .option('--body-file <path>', 'read the request body from a file')
    .option('--timeout <time>', `connect, headers and body timeout of each request (default: ${LoadDefaults.timeoutMs / 1000}s)`, _duration('timeout'))
    .option('--warmup <time>', 'load sent to each URL (and squeeze step) before measuring, not counted (default: none)', _duration('warmup'))
    .option('--pipelining <n>', 'requests one connection may have in flight (1: off)', _integer('pipelining'), LoadDefaults.pipelining)
    .option('--json', 'print one JSON object instead of text')
    .option('--squeeze', 'raise concurrency step by step and report the curve and its knee')
    .option('--min <n>', `squeeze: lowest concurrency (default: ${LoadDefaults.squeezeMin})`, _integer('min'))
    .option('--max <n>', `squeeze: highest concurrency (default: ${LoadDefaults.squeezeMax})`, _integer('max'))
    .option('--recommend <name>', 'after a squeeze, print the [function.scale] table it implies for this function')
    .option('--server <url>', `admin API to read the function from (default: $LAMPLIGHTER_SERVER or http://${PlatformDefaults.host}:${PlatformDefaults.adminPort})`)
    .option('--token <token>', 'admin API token (default: $LAMPLIGHTER_TOKEN)')
    .addHelpText('after', _HELP)
    .action(async (urls: string[], flags: _BenchFlags, self: Command) => {
      // Usage mistakes go through commander (message, exit code 1); failures while running, such as
      // an unreachable admin API, are thrown for the CLI's one error handler.
      const usage = _usageError(urls, flags);
      if (usage !== undefined) self.error(`error: ${usage}`, { exitCode: 1, code: 'lamplighter.bench.usage' });
      await _bench(urls, flags, out);
    });
  // Commander ends its own messages with a newline; the writers add theirs.
  const chomp = (write: (s: string) => void) => (s: string) => write(s.replace(/\n$/, ''));
  if (io) cmd.configureOutput({ writeOut: chomp(io.out), writeErr: chomp(io.err) });
}

/** Describes what is wrong with the arguments, or returns undefined when they make sense together. */
function _usageError(urls: string[], flags: _BenchFlags): string | undefined {
  const squeezing = flags.squeeze === true || flags.recommend !== undefined;
  if (flags.body !== undefined && flags.bodyFile !== undefined) return 'use --body or --body-file, not both';
  if (squeezing && urls.length !== 1) return `--squeeze measures one URL, got ${urls.length}`;
  if (squeezing && flags.requests !== undefined) return '--squeeze runs each step for a duration (-d), not a request count (-n)';
  if (squeezing && flags.concurrency !== undefined) return '--squeeze chooses the concurrency itself; use --min and --max instead of -c';
  if (!squeezing && (flags.min !== undefined || flags.max !== undefined)) return '--min and --max apply to --squeeze only';
  if (!squeezing && (flags.server !== undefined || flags.token !== undefined)) return '--server and --token apply to --recommend only';
  for (const url of urls) {
    if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) return `'${url}' is not an http:// or https:// URL`;
  }
  return undefined;
}

/** Runs the measurements and prints them; throws when something fails while running. */
async function _bench(urls: string[], flags: _BenchFlags, out: (s: string) => void): Promise<void> {
  const squeezing = flags.squeeze === true || flags.recommend !== undefined;
  const body = flags.bodyFile !== undefined ? await _readBody(flags.bodyFile) : flags.body;
  const load = {
    method: flags.method.toUpperCase(),
    headers: flags.header ?? [],
    body,
    timeoutMs: flags.timeout ?? LoadDefaults.timeoutMs,
    pipelining: flags.pipelining,
    warmupMs: flags.warmup,
  };
  const text = flags.json !== true;
  const controller = new AbortController();
  const onInterrupt = (): void => controller.abort();
  process.once('SIGINT', onInterrupt);
  try {
    if (!squeezing) {
      const results: LoadResult[] = [];
      for (const url of urls) {
        if (controller.signal.aborted) break;
        const concurrency = flags.concurrency ?? LoadDefaults.concurrency;
        const duration = flags.duration ?? (flags.requests === undefined ? LoadDefaults.durationMs : undefined);
        if (text) {
          const length = [flags.requests !== undefined ? `${flags.requests} requests` : '', duration !== undefined ? `${duration / 1000}s` : '']
            .filter(Boolean)
            .join(' or ');
          out(`${load.method} ${url}: ${concurrency} in flight, ${length}`);
        }
        results.push(
          await runLoad(url, {
            ...load,
            concurrency,
            durationMs: duration,
            requests: flags.requests,
            signal: controller.signal,
            onSample: text ? (s) => out(formatSampleLine(s)) : undefined,
          }),
        );
      }
      out(text ? `\n${_chomp(formatSummary(results))}` : JSON.stringify(toJsonReport(results), null, 2));
      return;
    }

    const url = urls[0] as string;
    let config: FunctionConfig | undefined;
    if (flags.recommend !== undefined) {
      const server = flags.server ?? process.env.LAMPLIGHTER_SERVER ?? `http://${PlatformDefaults.host}:${PlatformDefaults.adminPort}`;
      config = await fetchFunctionConfig(server, flags.recommend, { token: flags.token ?? process.env.LAMPLIGHTER_TOKEN });
    }
    const stepMs = flags.duration ?? LoadDefaults.squeezeStepMs;
    if (text) out(`${load.method} ${url}: squeeze from ${flags.min ?? LoadDefaults.squeezeMin} to ${flags.max ?? LoadDefaults.squeezeMax} in flight, ${stepMs / 1000}s a step`);
    const sq: SqueezeResult = await squeeze(url, {
      ...load,
      min: flags.min,
      max: flags.max,
      stepMs,
      signal: controller.signal,
      onStep: text ? (point, result) => out(formatSqueezeStep(point, result)) : undefined,
    });
    const recommendation: ScaleRecommendation | undefined = config && recommendScale(config, sq);
    if (!text) {
      out(JSON.stringify(toJsonReport([sq.result], { squeeze: sq, recommendation }), null, 2));
      return;
    }
    out(`\n${formatSqueeze(sq)}\n${_chomp(formatSummary([sq.result]))}`);
    if (recommendation) out(`\n${_chomp(formatScaleToml(recommendation))}`);
  } finally {
    process.removeListener('SIGINT', onInterrupt);
  }
}

async function _readBody(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Cannot read --body-file '${file}': ${reason}`, { cause });
  }
}

function _chomp(text: string): string {
  return text.replace(/\n$/, '');
}

function _integer(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
      throw new InvalidArgumentError(`${name} must be a positive integer, got '${value}'`);
    }
    return n;
  };
}

function _duration(name: string): (value: string) => number {
  return (value) => {
    // A bare number is ambiguous (wrk reads seconds, manifests read milliseconds): ask for a unit.
    const ms = /[a-z]\s*$/i.test(value) ? parseDuration(value) : undefined;
    if (ms === undefined || ms <= 0) throw new InvalidArgumentError(`${name} must be a duration like '10s' or '500ms', got '${value}'`);
    return ms;
  };
}

function _header(value: string, previous: Array<[string, string]> = []): Array<[string, string]> {
  const match = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*:\s*(.*)$/.exec(value);
  if (!match) throw new InvalidArgumentError(`a header must look like "name: value", got '${value}'`);
  return [...previous, [match[1] as string, (match[2] as string).trim()]];
}
