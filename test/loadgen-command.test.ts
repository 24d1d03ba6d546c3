// End-to-end tests of `lamplighter bench` through commander, with output captured by an injected writer.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Command, CommanderError } from 'commander';
import { registerBenchCommand } from '../src/cli/bench-command.js';
import { LamplighterError } from '../src/errors/index.js';
import { findKnee, welchTTest } from '../src/loadgen/index.js';
import { refusedPort, startAdminServer, startServer, type TestServer } from './loadgen-servers.js';

interface Run {
  out: string;
  err: string;
  error: CommanderError | undefined;
}

async function bench(...args: string[]): Promise<Run> {
  const run: Run = { out: '', err: '', error: undefined };
  // exitOverride before registering, so the bench command inherits it and reports instead of exiting.
  const program = new Command('lamplighter').exitOverride();
  // Writers as the CLI main passes them: each call is a line or block, the writer ends it.
  registerBenchCommand(program, { out: (s) => (run.out += `${s}\n`), err: (s) => (run.err += `${s}\n`) });
  try {
    await program.parseAsync(['bench', ...args], { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    run.error = err;
  }
  return run;
}

const functionConfig = {
  name: 'hello',
  app: 'demo',
  runtime: 'wagi',
  scale: { min: 0, max: 50, idleMs: 30_000, target: 10, rate: null, windowMs: 10_000 },
  limits: { concurrency: 1 },
};

describe('bench command', { timeout: 120_000 }, () => {
  const servers: TestServer[] = [];
  let hello: TestServer;
  let failing: TestServer;
  let fast: TestServer;
  let slow: TestServer;
  let fourAtOnce: TestServer;
  let paced: TestServer;
  let pacedFailing: TestServer;
  let admin: Awaited<ReturnType<typeof startAdminServer>>;
  let dir: string;

  before(async () => {
    hello = await startServer();
    failing = await startServer({ status: 503 });
    // Held requests make throughput depend on timers more than on a busy CPU.
    fast = await startServer({ holdMs: 10 });
    slow = await startServer({ holdMs: 50 });
    paced = await startServer({ holdMs: 1 });
    pacedFailing = await startServer({ holdMs: 1, status: 502 });
    fourAtOnce = await startServer({ capacity: 4, holdMs: 40 });
    admin = await startAdminServer('s3cret', { hello: functionConfig });
    servers.push(hello, failing, fast, slow, paced, pacedFailing, fourAtOnce, admin);
    dir = await mkdtemp(path.join(tmpdir(), 'lamplighter-bench-'));
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
    await rm(dir, { recursive: true, force: true });
  });

  test('bench command — -n sends exactly n requests and prints a summary table', async () => {
    const before = hello.count();
    const run = await bench(hello.url, '-n', '250', '-c', '4');
    assert.equal(run.error, undefined, run.err);
    assert.equal(hello.count() - before, 250);
    assert.match(run.out, new RegExp(`^GET ${hello.url}: 4 in flight, 250 requests$`, 'm'));
    assert.match(run.out, /^url\s+req\/s mean\s+median\s+p50 ms\s+p90 ms\s+p99 ms\s+max ms\s+errors$/m);
    assert.doesNotMatch(run.out, /relative/);
    assert.equal(run.err, '');
  });

  test('bench command — -d prints one requests/s line a second while it runs', async () => {
    const lines: Array<{ at: number; text: string }> = [];
    const started = Date.now();
    const program = new Command().exitOverride();
    registerBenchCommand(program, { out: (s) => lines.push({ at: Date.now() - started, text: s }), err: () => {} });
    await program.parseAsync(['bench', paced.url, '-d', '2s', '-c', '2'], { from: 'user' });
    const samples = lines.filter((l) => /req\/s/.test(l.text) && !/mean/.test(l.text));
    assert.equal(samples.length, 2, JSON.stringify(lines));
    samples.forEach((line, i) => {
      const match = /^\s+(\d+\.\d)s\s+\d+ req\/s$/.exec(line.text);
      assert.ok(match, line.text);
      // Stamped with the time the sample was taken, which a busy machine may delay a little.
      assert.ok(Math.abs(Number(match[1]) - (i + 1)) <= 0.3, line.text);
    });
    // Printed as the run goes, not all at the end.
    assert.ok((samples[0]?.at ?? 0) < 1700, `first sample printed after ${samples[0]?.at} ms`);
  });

  test('bench command — counts errors by kind: 5xx answers and refused connections', async () => {
    const failed = await bench(failing.url, '-n', '20', '-c', '2');
    assert.match(failed.out, /5xx 20\s*$/m);
    const port = await refusedPort();
    const refused = await bench(`http://127.0.0.1:${port}/`, '-n', '10', '-c', '2');
    assert.match(refused.out, /connect 10\s*$/m);
    assert.equal(refused.error, undefined);
  });

  test('bench command — several URLs are measured in turn, with relative and significance columns', async () => {
    const fastBefore = fast.count();
    const run = await bench(fast.url, slow.url, '-d', '3s', '-c', '2');
    assert.equal(run.error, undefined, run.err);
    // One after another: the slow URL's header comes after the fast URL's samples.
    const order = [run.out.indexOf(`GET ${fast.url}`), run.out.indexOf('   3.0s'), run.out.indexOf(`GET ${slow.url}`)];
    assert.deepEqual([...order].sort((a, b) => a - b), order);
    assert.ok(fast.count() > fastBefore);
    const table = run.out.slice(run.out.lastIndexOf('url '));
    const [header, first, second] = table.trimEnd().split('\n');
    assert.match(header ?? '', /relative\s+significant$/);
    assert.match(first ?? '', /100%\s+baseline$/);
    // About 2 per 50 ms against 2 per 10 ms: a fifth of the baseline, p from the 3 + 3 samples.
    const match = /(\d+\.\d)%\s+(yes|no) \(p[<=]([\d.]+)\)$/.exec(second ?? '');
    assert.ok(match, second);
    const relative = Number(match[1]);
    assert.ok(relative > 5 && relative < 50, `relative ${relative}%`);
    assert.equal(match[2], 'yes');
  });

  test('bench command — --json prints one JSON object of the documented shape and nothing else', async () => {
    const run = await bench(paced.url, pacedFailing.url, '-d', '2s', '-c', '2', '--json');
    assert.equal(run.error, undefined, run.err);
    const report = JSON.parse(run.out) as { results: Array<Record<string, any>> };
    assert.deepEqual(Object.keys(report), ['results']);
    assert.equal(report.results.length, 2);
    for (const r of report.results) {
      for (const key of ['url', 'rps', 'latency', 'errors', 'samples']) assert.ok(key in r, `missing ${key}`);
      assert.equal(typeof r.rps.mean, 'number');
      assert.equal(typeof r.rps.median, 'number');
      for (const p of ['p50', 'p90', 'p99', 'max']) assert.equal(typeof r.latency[p], 'number');
      assert.ok(r.latency.p50 > 0 && r.latency.p50 < 1000, 'latency in milliseconds');
      assert.equal(r.samples.length, 2);
    }
    const [first, second] = report.results;
    assert.equal(first?.url, paced.url);
    assert.deepEqual(first?.errors, {});
    assert.deepEqual(second?.errors, { '5xx': second?.requests });
    // The comparison is computed from the samples shown.
    assert.equal(second?.relative.to, paced.url);
    const expected = welchTTest(second?.samples, first?.samples).p;
    assert.ok(Math.abs(second?.relative.p - expected) < 1e-3, `p ${second?.relative.p} against ${expected}`);
    assert.equal(second?.relative.significant, second?.relative.p < 0.05);
    assert.equal(run.err, '');
  });

  test('bench command — --squeeze --json adds the curve and the knee', async () => {
    const run = await bench(fourAtOnce.url, '--squeeze', '--min', '3', '--max', '5', '-d', '1s', '--json');
    assert.equal(run.error, undefined, run.err);
    const report = JSON.parse(run.out) as { results: unknown[]; squeeze: { best: any; peak: any; curve: any[] } };
    assert.deepEqual(Object.keys(report), ['results', 'squeeze']);
    // Finding k exactly is the squeeze tests' job; here the report must agree with its own curve.
    const knee = findKnee(report.squeeze.curve);
    assert.deepEqual(report.squeeze.best, report.squeeze.curve[knee.index]);
    assert.deepEqual(report.squeeze.peak, report.squeeze.curve[knee.peakIndex]);
    assert.ok([4, 5].includes(report.squeeze.best.concurrency), JSON.stringify(report.squeeze.curve));
    assert.equal(typeof report.squeeze.best.rps, 'number');
    assert.equal(report.squeeze.curve[0].concurrency, 3);
    for (const point of report.squeeze.curve) assert.deepEqual(Object.keys(point), ['concurrency', 'rps']);
    assert.equal(report.results.length, 1);
  });

  test('bench command — --recommend prints the [function.scale] table the squeeze implies', async () => {
    const run = await bench(fourAtOnce.url, '--recommend', 'hello', '--server', admin.url, '--token', 's3cret', '--min', '3', '--max', '5', '-d', '1s');
    assert.equal(run.error, undefined, run.err);
    assert.equal(admin.auth(), 'Bearer s3cret');
    const knee = /knee: (\d+) in flight/.exec(run.out)?.[1];
    assert.ok(knee === '4' || knee === '5', run.out);
    const table = run.out.slice(run.out.indexOf('[function.scale]'));
    assert.equal(table, `[function.scale]\nmin = 0\nmax = 50\nidle = "30s"\ntarget = ${knee}\nwindow = "10s"\n`);
    assert.match(run.out, /# limits\.concurrency = 1 lets one instance take fewer requests at once/);
  });

  test('bench command — --recommend takes the token from LAMPLIGHTER_TOKEN and fails before squeezing', async () => {
    const saved = process.env.LAMPLIGHTER_TOKEN;
    process.env.LAMPLIGHTER_TOKEN = 's3cret';
    const before = fourAtOnce.count();
    try {
      // Failures while running are thrown for the CLI main's error handler, which prints them.
      await assert.rejects(bench(fourAtOnce.url, '--recommend', 'nope', '--server', admin.url), (err: LamplighterError) => {
        assert.equal(err.code, 'LL_NOT_FOUND');
        assert.match(err.message, /Cannot read function 'nope'.*no such function/);
        return true;
      });
      assert.equal(admin.auth(), 'Bearer s3cret');
      assert.equal(fourAtOnce.count(), before, 'no load was sent');
      await assert.rejects(bench(hello.url, '-n', '1', '--body-file', path.join(dir, 'missing')), /Cannot read --body-file/);
    } finally {
      if (saved === undefined) delete process.env.LAMPLIGHTER_TOKEN;
      else process.env.LAMPLIGHTER_TOKEN = saved;
    }
  });

  test('bench command — -m, repeated -H and --body-file reach the server', async () => {
    const file = path.join(dir, 'body.json');
    await writeFile(file, '{"n":1}');
    const run = await bench(hello.url, '-n', '1', '-m', 'put', '-H', 'x-one: 1', '-H', 'X-Two:two words', '--body-file', file);
    assert.equal(run.error, undefined, run.err);
    const last = hello.last();
    assert.equal(last?.method, 'PUT');
    assert.equal(last?.headers['x-one'], '1');
    assert.equal(last?.headers['x-two'], 'two words');
    assert.equal(last?.body, '{"n":1}');
  });

  test('bench command — rejects bad flags with a message and exit code 1', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[hello.url, '-c', '0'], /concurrency must be a positive integer, got '0'/],
      [[hello.url, '-d', '10'], /duration must be a duration like '10s'/],
      [[hello.url, '-H', 'no-colon'], /a header must look like "name: value"/],
      [[hello.url, '--body', 'x', '--body-file', 'y'], /--body or --body-file, not both/],
      [[hello.url, slow.url, '--squeeze'], /--squeeze measures one URL, got 2/],
      [[hello.url, '--squeeze', '-n', '5'], /not a request count/],
      [[hello.url, '--min', '2'], /--min and --max apply to --squeeze only/],
      [['ftp://example.com/'], /is not an http:\/\/ or https:\/\/ URL/],
    ];
    for (const [args, message] of cases) {
      const run = await bench(...args);
      assert.ok(run.error, `no error for ${args.join(' ')}`);
      assert.equal(run.error.exitCode, 1);
      assert.match(run.err, message);
      assert.equal(run.out, '');
    }
  });

  test('bench command — help says how several URLs are measured and how the squeeze steps', () => {
    const program = new Command();
    registerBenchCommand(program);
    const help = program.commands.find((c) => c.name() === 'bench')?.helpInformation() ?? '';
    assert.match(help, /--squeeze/);
    const cmd = program.commands.find((c) => c.name() === 'bench');
    let full = '';
    cmd?.configureOutput({ writeOut: (s) => (full += s) });
    cmd?.outputHelp();
    assert.match(full, /measured one after another/);
    assert.match(full, /every integer concurrency from\s+--min to --max/);
  });
});
