// Tests of the concurrency squeeze against a server that serves exactly k requests at once.
// Each request holds its slot for 40 ms of a manual clock shared by the server and the load
// runner. The requests and answers are real, but the clock only moves once every request the
// step keeps in flight has reached the server, so client round trips take no time on it and the
// measured curve is the server's alone: c × 25 req/s up to k, flat after. On the real clock a
// loaded machine stretched the round trips until the knee moved (k = 4 read as 6 or more).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { squeeze, stepThroughput, type SqueezeOptions, type SqueezePoint, type SqueezeResult } from '../src/loadgen/index.js';
import { ManualClock } from '../src/runtime/process/index.js';
import { startServer, type LoadTestServer } from './loadgen-servers.js';

/** Real time allowed for the requests of one step to reach the server before the test gives up. */
const SETTLE_MS = 20_000;

/**
 * Runs a squeeze on `clock`, moving it from one timer to the next only once the server holds as
 * many requests of the current step as the step keeps in flight (or the squeeze has finished).
 */
async function squeezeOnManualTime(server: LoadTestServer, clock: ManualClock, options: SqueezeOptions & { min: number }): Promise<SqueezeResult> {
  let concurrency = options.min;
  let finished = false;
  const run = squeeze(server.url, {
    ...options,
    clock,
    onStep: (point, result) => {
      // The next step's connections are opened after this returns.
      server.newGeneration();
      concurrency = point.concurrency + 1;
      options.onStep?.(point, result);
    },
  });
  void run.then(
    () => (finished = true),
    () => (finished = true),
  );
  server.newGeneration();
  for (let moves = 0; moves < 100_000 && !finished; moves++) {
    const since = performance.now();
    while (!finished && server.open() !== concurrency) {
      if (performance.now() - since > SETTLE_MS) {
        throw new Error(`the server held ${server.open()} requests, not ${concurrency}, for ${SETTLE_MS} ms at clock time ${clock.now()}`);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    const next = clock.nextDue;
    if (next !== undefined && !finished) clock.advance(next - clock.now());
    await new Promise((resolve) => setImmediate(resolve));
  }
  return run;
}

describe('squeeze', { timeout: 90_000 }, () => {
  const clock = new ManualClock(0);
  let fourAtOnce: LoadTestServer;
  let twoAtOnce: LoadTestServer;

  before(async () => {
    fourAtOnce = await startServer({ capacity: 4, holdMs: 40, clock });
    twoAtOnce = await startServer({ capacity: 2, holdMs: 40, clock });
  });

  after(async () => {
    await Promise.all([fourAtOnce.close(), twoAtOnce.close()]);
  });

  test('squeeze — finds k on a server that serves exactly k requests at once (k = 4)', async () => {
    const steps: SqueezePoint[] = [];
    const result = await squeezeOnManualTime(fourAtOnce, clock, { min: 1, max: 10, stepMs: 1000, onStep: (p) => steps.push(p) });
    assert.equal(result.best.concurrency, 4, `curve: ${JSON.stringify(result.curve)}`);
    assert.deepEqual(steps, result.curve);
    assert.deepEqual(
      result.curve.map((p) => p.concurrency),
      result.curve.map((_, i) => i + 1),
      'one step per integer concurrency',
    );
    // Throughput grows linearly up to k, 25 req/s per request in flight, then stays flat.
    assert.deepEqual(
      result.curve.slice(0, 5).map((p) => p.rps),
      [25, 50, 75, 100, 100],
    );
    assert.ok(result.peak.rps >= result.best.rps);
    assert.ok(result.best.rps >= 0.95 * result.peak.rps);
    assert.equal(result.result.concurrency, 4);
    assert.equal(result.curve.length, 7, 'stops once three steps set no new peak');
  });

  test('squeeze — finds k = 2, stepping from min to max', async () => {
    const result = await squeezeOnManualTime(twoAtOnce, clock, { min: 1, max: 4, stepMs: 1000, patience: 2 });
    assert.equal(result.best.concurrency, 2, `curve: ${JSON.stringify(result.curve)}`);
    assert.equal(result.curve[0]?.concurrency, 1);
    assert.ok(result.curve.length <= 4);
    // Two steps past the knee without a new peak is patience 2 used up exactly at max.
    assert.deepEqual(result.curve.map((c) => c.concurrency), [1, 2, 3, 4]);
  });

  test('stepThroughput — counts up to the last response, not the end of the step', () => {
    // Four slots answering together every 25 ms: 9 rounds fit in a 240 ms step, the 10th is cut off.
    assert.equal(stepThroughput({ requests: 36, lastResponseMs: 225, errors: {} }), 160);
    assert.equal(stepThroughput({ requests: 0, lastResponseMs: null, errors: {} }), 0);
  });

  test('stepThroughput — counts only successful responses', () => {
    assert.equal(stepThroughput({ requests: 100, lastResponseMs: 1000, errors: { '5xx': 60, '4xx': 10, timeout: 5 } }), 30);
  });

  test('squeeze — rejects an empty range', async () => {
    await assert.rejects(squeeze(twoAtOnce.url, { min: 5, max: 4 }), /1 ≤ min ≤ max/);
  });
});
