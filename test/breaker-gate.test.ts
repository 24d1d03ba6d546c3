// Breakers per partition key: each transition, the rules that open them, probes, isolation, LRU.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createBreakerGate, OVERFLOW_KEY, type PartitionedBreakers } from '../src/admission/breaker/index.js';
import { ErrorCodes } from '../src/errors/index.js';
import { errorResponse } from '../src/gateway/index.js';
import { parseManifest } from '../src/manifest/index.js';
import { breakerSpec, FAIL, failure, OK, refusal, tenant, TestClock, ticket, TIMEOUT } from './breaker-helpers.js';

function gate(lines: string, clock = new TestClock()): { gate: PartitionedBreakers; clock: TestClock } {
  const g = createBreakerGate(breakerSpec(`partition = "header:x-tenant"\n${lines}`), { clock: clock.read, sweepIntervalMs: 0 });
  assert.ok(g);
  return { gate: g, clock };
}

/** Admits `n` requests of `key` and reports `outcome` for each. */
function serve(g: PartitionedBreakers, key: string, n: number, outcome: Parameters<ReturnType<typeof ticket>['done']>[0]): void {
  for (let i = 0; i < n; i++) ticket(g.admit(tenant(key))).done(outcome);
}

const stateOf = (g: PartitionedBreakers, key: string): string | undefined => g.counts(key)?.state;

describe('breaker gate', () => {
  test('breaker gate — a function without [function.breaker] has no gate', () => {
    const spec = parseManifest('name = "app"\n[[function]]\nname = "f"\nsource = "f.wasm"\nroutes = ["/"]\n').functions[0]!;
    assert.equal(createBreakerGate(spec), undefined);
  });

  test('breaker gate — opens on the failure ratio only once the window holds min_requests', () => {
    const { gate: g } = gate('failure_ratio = 0.5\nmin_requests = 10\nconsecutive_failures = 0');
    serve(g, 'a', 9, FAIL);
    assert.equal(stateOf(g, 'a'), 'closed', '9 failures are under min_requests');
    serve(g, 'b', 6, OK);
    serve(g, 'b', 4, FAIL);
    assert.equal(stateOf(g, 'b'), 'closed', '4 of 10 is under the ratio');
    serve(g, 'b', 1, FAIL);
    assert.equal(stateOf(g, 'b'), 'closed', '5 of 11 is under the ratio');
    serve(g, 'b', 1, FAIL);
    assert.equal(stateOf(g, 'b'), 'open', '6 of 12 reaches it');
    serve(g, 'a', 1, FAIL);
    assert.equal(stateOf(g, 'a'), 'open', '10 of 10');
  });

  test('breaker gate — failures older than the window no longer count', () => {
    const { gate: g, clock } = gate('window = "10s"\nmin_requests = 4\nconsecutive_failures = 0');
    const start = clock.now - (clock.now % 1000);
    clock.now = start;
    serve(g, 'old', 3, FAIL);
    serve(g, 'recent', 3, FAIL);
    clock.now = start + 9_000;
    serve(g, 'recent', 1, FAIL);
    assert.equal(stateOf(g, 'recent'), 'open', 'all four inside 10 s');
    clock.now = start + 10_000;
    serve(g, 'old', 1, FAIL);
    assert.equal(stateOf(g, 'old'), 'closed', 'the first three slid out of the window');
    assert.deepEqual(g.counts('old')?.buckets, [{ start: start + 10_000, requests: 1, failures: 1 }]);
  });

  test('breaker gate — consecutive failures open it whatever the volume; a success resets the run', () => {
    const { gate: g } = gate('consecutive_failures = 3\nmin_requests = 1000');
    serve(g, 'a', 2, FAIL);
    serve(g, 'a', 1, OK);
    serve(g, 'a', 2, FAIL);
    assert.equal(stateOf(g, 'a'), 'closed');
    serve(g, 'a', 1, TIMEOUT);
    assert.equal(stateOf(g, 'a'), 'open');
  });

  test('breaker gate — a slow call counts as a failure, a quicker one does not', () => {
    const { gate: g } = gate('slow_call = "100ms"\nconsecutive_failures = 2');
    serve(g, 'a', 2, { status: 200, durationMs: 99 });
    assert.equal(stateOf(g, 'a'), 'closed');
    serve(g, 'a', 2, { status: 200, durationMs: 100 });
    assert.equal(stateOf(g, 'a'), 'open');
    const { gate: noRule } = gate('consecutive_failures = 2');
    serve(noRule, 'a', 2, { status: 200, durationMs: 3_600_000 });
    assert.equal(stateOf(noRule, 'a'), 'closed', 'no slow_call, no slow failures');
  });

  test('breaker gate — 5xx, traps, timeouts and crashes fail; 4xx succeed; the platform\'s refusals are not counted', () => {
    const { gate: g } = gate('consecutive_failures = 100\nmin_requests = 1000');
    serve(g, 'a', 1, { status: 404, durationMs: 1 });
    serve(g, 'a', 1, { status: 429, durationMs: 1 });
    serve(g, 'a', 1, { error: failure(ErrorCodes.BODY_TOO_LARGE), durationMs: 1 });
    serve(g, 'a', 1, { status: 503, durationMs: 1 });
    serve(g, 'a', 1, { error: failure(ErrorCodes.HANDLER_TRAP), durationMs: 1 });
    serve(g, 'a', 1, TIMEOUT);
    serve(g, 'a', 1, { error: failure(ErrorCodes.FUNCTION_FAILED), durationMs: 1 });
    serve(g, 'a', 1, { error: failure(ErrorCodes.UPSTREAM_UNAVAILABLE), durationMs: 1 });
    serve(g, 'a', 1, { error: failure(ErrorCodes.OVER_CAPACITY), durationMs: 1 });
    serve(g, 'a', 1, { error: failure(ErrorCodes.BREAKER_OPEN), durationMs: 1 });
    serve(g, 'a', 1, { error: failure(ErrorCodes.SHUTTING_DOWN), durationMs: 1 });
    serve(g, 'a', 1, { durationMs: 1 });
    const buckets = g.counts('a')!.buckets;
    assert.equal(buckets.reduce((n, b) => n + b.requests, 0), 8, 'refusals and answerless outcomes are not requests');
    assert.equal(buckets.reduce((n, b) => n + b.failures, 0), 5, '503, trap, timeout, crash, unreachable upstream');
  });

  test('breaker gate — an open breaker refuses with LL_BREAKER_OPEN, Retry-After the seconds left, and a body naming function, partition and key', () => {
    const { gate: g, clock } = gate('consecutive_failures = 1\nopen_for = "30s"');
    serve(g, 'a', 1, FAIL);
    clock.advance(10_500);
    const err = refusal(g.admit(tenant('a')));
    assert.equal(err.code, 'LL_BREAKER_OPEN');
    assert.equal(err.status, 503);
    assert.equal(err.retryAfter, 20, '19.5 s left, rounded up');
    assert.match(err.message, /^Function 'f' is refusing requests with header:x-tenant "a": its circuit breaker is open after failures; retry in 20 s$/);
    const res = errorResponse(err, 'req-1');
    assert.equal(res.status, 503);
    assert.deepEqual(res.headers.find(([n]) => n === 'retry-after'), ['retry-after', '20']);
    const body = JSON.parse(res.body.toString()) as { error: Record<string, unknown> };
    assert.deepEqual(body.error, { code: 'LL_BREAKER_OPEN', message: err.message, requestId: 'req-1', function: 'f', partition: 'header:x-tenant', key: 'a' });
    clock.advance(19_400);
    assert.equal(refusal(g.admit(tenant('a'))).retryAfter, 1, '0.1 s left is still 1 s');
  });

  test('breaker gate — after open_for it turns half-open and lets half_open_probes through; all succeeding closes it', () => {
    const { gate: g, clock } = gate('consecutive_failures = 1\nopen_for = "5s"\nhalf_open_probes = 2');
    serve(g, 'a', 1, FAIL);
    clock.advance(4_999);
    refusal(g.admit(tenant('a')));
    clock.advance(1);
    const p1 = ticket(g.admit(tenant('a')));
    assert.equal(stateOf(g, 'a'), 'half_open');
    const p2 = ticket(g.admit(tenant('a')));
    const third = refusal(g.admit(tenant('a')));
    assert.equal(third.retryAfter, 1);
    assert.match(third.message, /half-open/);
    p1.done(OK);
    refusal(g.admit(tenant('a')));
    assert.equal(stateOf(g, 'a'), 'half_open', 'one probe of two passed');
    p2.done({ status: 404, durationMs: 1 });
    assert.equal(stateOf(g, 'a'), 'closed');
    assert.deepEqual(g.counts('a')!.buckets, [], 'a closed breaker starts a fresh window');
    ticket(g.admit(tenant('a'))).done(OK);
  });

  test('breaker gate — a failing probe reopens it for a whole open_for; a probe refused by the platform frees its place', () => {
    const { gate: g, clock } = gate('consecutive_failures = 1\nopen_for = "5s"\nhalf_open_probes = 1');
    serve(g, 'a', 1, FAIL);
    clock.advance(5_000);
    ticket(g.admit(tenant('a'))).done({ error: failure(ErrorCodes.OVER_CAPACITY), durationMs: 1 });
    assert.equal(stateOf(g, 'a'), 'half_open');
    const probe = ticket(g.admit(tenant('a')));
    refusal(g.admit(tenant('a')));
    clock.advance(2_000);
    probe.done(TIMEOUT);
    assert.equal(stateOf(g, 'a'), 'open');
    assert.equal(refusal(g.admit(tenant('a'))).retryAfter, 5);
    assert.deepEqual(g.openKeys(), [{ key: 'a', state: 'open', retryAfterMs: 5_000 }]);
  });

  test('breaker gate — outcomes of requests admitted before a transition do not count after it; done() counts once', () => {
    const { gate: g, clock } = gate('consecutive_failures = 2\nopen_for = "1s"\nhalf_open_probes = 1');
    const early = ticket(g.admit(tenant('a')));
    const lateFailure = ticket(g.admit(tenant('a')));
    const twice = ticket(g.admit(tenant('a')));
    twice.done(FAIL);
    twice.done(FAIL);
    assert.equal(stateOf(g, 'a'), 'closed', 'one failure, reported twice');
    serve(g, 'a', 1, FAIL);
    assert.equal(stateOf(g, 'a'), 'open');
    clock.advance(1_000);
    const probe = ticket(g.admit(tenant('a')));
    early.done(OK);
    assert.equal(stateOf(g, 'a'), 'half_open', 'a success from before it opened is no probe');
    probe.done(OK);
    assert.equal(stateOf(g, 'a'), 'closed');
    lateFailure.done(FAIL);
    serve(g, 'a', 1, FAIL);
    assert.equal(stateOf(g, 'a'), 'closed', 'a failure from before it opened does not count toward reopening');
    assert.equal(g.counts('a')!.buckets[0]!.failures, 1);
  });

  test('breaker gate — key A open while key B is served', () => {
    const { gate: g } = gate('consecutive_failures = 3');
    serve(g, 'a', 3, FAIL);
    refusal(g.admit(tenant('a')));
    serve(g, 'b', 50, OK);
    serve(g, 'b', 2, FAIL);
    assert.equal(stateOf(g, 'b'), 'closed');
    assert.deepEqual(g.openKeys().map((o) => o.key), ['a']);
  });

  test('breaker gate — past max_keys the least recently used closed key is forgotten, never an open one', () => {
    const { gate: g } = gate('consecutive_failures = 1\nmax_keys = 3');
    serve(g, 'a', 1, FAIL);
    serve(g, 'b', 1, OK);
    serve(g, 'c', 1, OK);
    serve(g, 'b', 1, OK);
    serve(g, 'd', 1, OK);
    assert.equal(g.size, 3);
    assert.equal(g.counts('c'), undefined, 'c was the least recently used closed key');
    assert.equal(stateOf(g, 'a'), 'open', 'a is older, but open');
    assert.equal(stateOf(g, 'b'), 'closed');
    serve(g, 'e', 1, OK);
    assert.equal(g.counts('b'), undefined);
    assert.equal(stateOf(g, 'a'), 'open');
  });

  test('breaker gate — when every key held is open, new keys share the overflow breaker', () => {
    const { gate: g, clock } = gate('consecutive_failures = 2\nmax_keys = 2\nopen_for = "10s"');
    serve(g, 'a', 2, FAIL);
    serve(g, 'b', 2, FAIL);
    serve(g, 'c', 1, FAIL);
    serve(g, 'd', 1, FAIL);
    assert.equal(g.size, 2);
    assert.equal(g.counts('c'), undefined);
    assert.equal(stateOf(g, OVERFLOW_KEY), 'open', 'c and d failed in a row on the shared breaker');
    const err = refusal(g.admit(tenant('x')));
    assert.equal((err.detail as { key: string }).key, OVERFLOW_KEY);
    assert.deepEqual(g.openKeys().map((o) => o.key), ['a', 'b', OVERFLOW_KEY]);
    // A half-open breaker nobody probes for another open_for closes, and its place can be taken.
    clock.advance(20_000);
    serve(g, 'e', 1, OK);
    assert.equal(stateOf(g, 'e'), 'closed');
    assert.equal(g.size, 2);
  });

  test('breaker gate — a breaker closed for want of probes is the first forgotten', () => {
    const { gate: g, clock } = gate('consecutive_failures = 1\nmax_keys = 3\nopen_for = "1s"');
    serve(g, 'a', 1, FAIL);
    serve(g, 'b', 1, OK);
    clock.advance(2_000);
    assert.deepEqual(g.openKeys(), []);
    serve(g, 'c', 1, OK);
    serve(g, 'd', 1, OK);
    assert.equal(g.counts('a'), undefined);
    assert.equal(stateOf(g, 'b'), 'closed', 'b was used after a last was');
  });

  test('breaker gate — a half-open breaker left unprobed for open_for closes; openKeys is bounded and soonest first', () => {
    const { gate: g, clock } = gate('consecutive_failures = 1\nopen_for = "10s"');
    serve(g, 'a', 1, FAIL);
    clock.advance(1_000);
    serve(g, 'b', 1, FAIL);
    serve(g, 'c', 1, FAIL);
    assert.deepEqual(g.openKeys(2), [
      { key: 'a', state: 'open', retryAfterMs: 9_000 },
      { key: 'b', state: 'open', retryAfterMs: 10_000 },
    ]);
    clock.advance(9_500);
    assert.deepEqual(g.openKeys(), [
      { key: 'a', state: 'half_open', retryAfterMs: 0 },
      { key: 'b', state: 'open', retryAfterMs: 500 },
      { key: 'c', state: 'open', retryAfterMs: 500 },
    ]);
    clock.advance(10_000);
    assert.deepEqual(g.openKeys().map((o) => [o.key, o.state]), [['b', 'half_open'], ['c', 'half_open']]);
    assert.equal(stateOf(g, 'a'), 'closed');
    assert.equal(g.openCount(), 2);
  });

  test('breaker gate — a snapshot gives each active partition\'s counts per bucket, open ones first, bounded', () => {
    const { gate: g, clock } = gate('window = "10s"\nconsecutive_failures = 2\nmin_requests = 100');
    clock.now = 2_000_000;
    serve(g, 'a', 2, OK);
    serve(g, 'b', 1, FAIL);
    clock.advance(1_500);
    serve(g, 'a', 1, FAIL);
    serve(g, 'c', 2, FAIL);
    assert.deepEqual(g.snapshot(), [
      { key: 'c', state: 'open', bucketMs: 1000, buckets: [{ start: 2_001_000, requests: 2, failures: 2 }] },
      { key: 'a', state: 'closed', bucketMs: 1000, buckets: [{ start: 2_000_000, requests: 2, failures: 0 }, { start: 2_001_000, requests: 1, failures: 1 }] },
      { key: 'b', state: 'closed', bucketMs: 1000, buckets: [{ start: 2_000_000, requests: 1, failures: 1 }] },
    ]);
    assert.equal(g.snapshot(2).length, 2);
    clock.advance(10_000);
    assert.deepEqual(g.snapshot(), [{ key: 'c', state: 'open', bucketMs: 1000, buckets: [] }], 'calls out of the window are not sent; open keys always are');
  });

  test('breaker gate — partition "none" keeps one breaker for every request', () => {
    const clock = new TestClock();
    const g = createBreakerGate(breakerSpec('consecutive_failures = 2'), { clock: clock.read, sweepIntervalMs: 0 })!;
    ticket(g.admit(tenant('a'))).done(FAIL);
    ticket(g.admit(tenant('b'))).done(FAIL);
    const err = refusal(g.admit(tenant('c')));
    assert.deepEqual(err.detail, { function: 'f', partition: 'none', key: '*' });
    assert.match(err.message, /^Function 'f' is refusing requests: its circuit breaker is open/);
    assert.equal(g.size, 1);
  });

  test('breaker gate — a decision from elsewhere opens a key for the time given, in openUntil order, and closes it with a fresh window', () => {
    const { gate: g, clock } = gate('open_for = "10s"\nmin_requests = 100\nconsecutive_failures = 0');
    serve(g, 'long', 100, FAIL);
    assert.equal(stateOf(g, 'long'), 'open');
    serve(g, 'counted', 3, FAIL);
    assert.equal(g.applyRemote('counted', { state: 'open', openForMs: 2000 }), true);
    assert.equal(g.applyRemote('never-seen', { state: 'open', openForMs: 5000 }), true);
    assert.deepEqual(
      g.openKeys().map((b) => [b.key, b.retryAfterMs]),
      [['counted', 2000], ['never-seen', 5000], ['long', 10_000]],
    );
    assert.deepEqual(g.counts('counted')?.buckets, [], 'its counts led to the decision: they start afresh');
    assert.equal(g.applyRemote('never-seen', { state: 'open', openForMs: 1000 }), false, 'already open for longer');
    clock.advance(2000);
    assert.equal(g.openKeys()[0]?.state, 'half_open', 'turns half-open here, on time, as any open breaker');
    assert.equal(g.applyRemote('long', { state: 'closed' }), true);
    assert.equal(stateOf(g, 'long'), 'closed');
    assert.deepEqual(g.counts('long')?.buckets, []);
    ticket(g.admit(tenant('long'))).done(OK);
    assert.equal(g.applyRemote('unknown', { state: 'closed' }), false, 'a closed verdict for a key not held');
  });

  test('breaker gate — the probe listener hears a half-open key closed by its probes or reopened by one', () => {
    const { gate: g, clock } = gate('open_for = "1s"\nconsecutive_failures = 1\nhalf_open_probes = 2');
    const heard: [string, boolean][] = [];
    g.setProbeListener({ probeEnded: (key, passed) => heard.push([key, passed]) });
    serve(g, 'a', 1, FAIL);
    clock.advance(1000);
    ticket(g.admit(tenant('a'))).done(FAIL);
    clock.advance(1000);
    serve(g, 'a', 2, OK);
    assert.deepEqual(heard, [['a', false], ['a', true]]);
    g.setProbeListener({ probeEnded: () => { throw new Error('a listener fault'); } });
    serve(g, 'b', 1, FAIL);
    clock.advance(1000);
    serve(g, 'b', 2, OK);
    assert.equal(stateOf(g, 'b'), 'closed', "a listener's fault does not fail the request's ending");
  });
});
