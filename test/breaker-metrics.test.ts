// Breaker metrics: transitions by function and state entered, open keys per function (not per key).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { createBreakerGate } from '../src/admission/breaker/index.js';
import { Metrics } from '../src/observability/index.js';
import { breakerSpec, FAIL, OK, tenant, TestClock, ticket } from './breaker-helpers.js';

const PROMTOOL = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).error === undefined;

const value = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('breaker metrics', () => {
  test('breaker metrics — transitions counted by function and state entered, open keys as one gauge per function', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const clock = new TestClock();
    const gate = createBreakerGate(breakerSpec('partition = "header:x-tenant"\nconsecutive_failures = 1\nopen_for = "1s"\nhalf_open_probes = 1'), { metrics, clock: clock.read, sweepIntervalMs: 0 })!;
    let text = await metrics.render();
    for (const to of ['open', 'half_open', 'closed']) assert.equal(value(text, `lamplighter_breaker_transitions_total{function="f",to="${to}"}`), 0, `${to} exists from the start`);
    assert.equal(value(text, 'lamplighter_breaker_open_keys{function="f"}'), 0);

    for (const key of ['a', 'b', 'c']) ticket(gate.admit(tenant(key))).done(FAIL);
    clock.advance(1_000);
    ticket(gate.admit(tenant('a'))).done(OK);
    ticket(gate.admit(tenant('b'))).done(FAIL);
    text = await metrics.render();
    assert.equal(value(text, 'lamplighter_breaker_transitions_total{function="f",to="open"}'), 4);
    assert.equal(value(text, 'lamplighter_breaker_transitions_total{function="f",to="half_open"}'), 2);
    assert.equal(value(text, 'lamplighter_breaker_transitions_total{function="f",to="closed"}'), 1);
    assert.equal(value(text, 'lamplighter_breaker_open_keys{function="f"}'), 2, 'b reopened and c open');
    assert.doesNotMatch(text, /key=/, 'no series per key');
    assert.match(text, /^# HELP lamplighter_breaker_transitions_total .*half_open/m);
    if (PROMTOOL) {
      const out = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
      assert.equal(`${out.stdout}${out.stderr}`.trim(), '', 'promtool printed warnings');
      assert.equal(out.status, 0);
    }

    // Two revisions of one function during a deploy add up; a closed one leaves the gauge.
    const next = createBreakerGate(breakerSpec('partition = "header:x-tenant"\nconsecutive_failures = 1'), { metrics, clock: clock.read, sweepIntervalMs: 0 })!;
    ticket(next.admit(tenant('z'))).done(FAIL);
    assert.equal(value(await metrics.render(), 'lamplighter_breaker_open_keys{function="f"}'), 3);
    gate.close();
    assert.equal(value(await metrics.render(), 'lamplighter_breaker_open_keys{function="f"}'), 1);
    next.close();
    assert.equal(value(await metrics.render(), 'lamplighter_breaker_open_keys{function="f"}'), 0);
  });

  test('breaker metrics — the sweep keeps the gauge true with no request asking', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const clock = new TestClock();
    const gate = createBreakerGate(breakerSpec('partition = "header:x-tenant"\nconsecutive_failures = 1\nopen_for = "1s"'), { metrics, clock: clock.read, sweepIntervalMs: 10 })!;
    try {
      ticket(gate.admit(tenant('a'))).done(FAIL);
      assert.equal(value(await metrics.render(), 'lamplighter_breaker_open_keys{function="f"}'), 1);
      // Past open_for it turns half-open; unprobed for another open_for, it closes.
      clock.advance(2_000);
      const deadline = Date.now() + 5_000;
      while (value(await metrics.render(), 'lamplighter_breaker_open_keys{function="f"}') !== 0 && Date.now() < deadline) await sleep(10);
      const text = await metrics.render();
      assert.equal(value(text, 'lamplighter_breaker_open_keys{function="f"}'), 0);
      assert.equal(value(text, 'lamplighter_breaker_transitions_total{function="f",to="half_open"}'), 1);
      assert.equal(value(text, 'lamplighter_breaker_transitions_total{function="f",to="closed"}'), 1);
    } finally {
      gate.close();
    }
  });
});
