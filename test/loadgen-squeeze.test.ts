// Tests of the concurrency squeeze against a server that serves exactly k requests at once.
// Each request holds its slot for 40 ms (the server makes up for late timers, see loadgen-servers).
// At exactly k in flight a slot also idles for one client round trip per request, which must stay
// well inside the 5% tolerance for k itself to count as saturated.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { squeeze, stepThroughput, type SqueezePoint } from '../src/loadgen/index.js';
import { startServer, type TestServer } from './loadgen-servers.js';

describe('squeeze', { timeout: 90_000 }, () => {
  let fourAtOnce: TestServer;
  let twoAtOnce: TestServer;

  before(async () => {
    fourAtOnce = await startServer({ capacity: 4, holdMs: 40 });
    twoAtOnce = await startServer({ capacity: 2, holdMs: 40 });
  });

  after(async () => {
    await Promise.all([fourAtOnce.close(), twoAtOnce.close()]);
  });

  test('squeeze — finds k on a server that serves exactly k requests at once (k = 4)', async () => {
    const steps: SqueezePoint[] = [];
    const result = await squeeze(fourAtOnce.url, { min: 1, max: 10, stepMs: 1000, onStep: (p) => steps.push(p) });
    assert.equal(result.best.concurrency, 4, `curve: ${JSON.stringify(result.curve)}`);
    assert.deepEqual(steps, result.curve);
    assert.deepEqual(
      result.curve.map((p) => p.concurrency),
      result.curve.map((_, i) => i + 1),
      'one step per integer concurrency',
    );
    // Throughput grows roughly linearly up to k: about 25 req/s per request in flight.
    const at1 = result.curve[0]?.rps ?? 0;
    assert.ok(at1 > 18 && at1 < 26, `1 in flight gave ${at1} req/s`);
    const at2 = result.curve[1]?.rps ?? 0;
    assert.ok(at2 > 1.6 * at1 && at2 < 2.4 * at1, `2 in flight gave ${at2} req/s against ${at1} at 1`);
    assert.ok(result.peak.rps >= result.best.rps);
    assert.ok(result.best.rps >= 0.95 * result.peak.rps);
    assert.equal(result.result.concurrency, 4);
    assert.ok(result.curve.length < 10, 'stops once three steps set no new peak');
  });

  test('squeeze — finds k = 2, stepping from min to max', async () => {
    const result = await squeeze(twoAtOnce.url, { min: 1, max: 4, stepMs: 1000, patience: 2 });
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
