// Unit tests of the deadline step: limits.timeout bounds the answer's head, under mocked timers.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { deadlineStep, type RequestHandler } from '../src/admission/index.js';
import { ErrorCodes, LamplighterError } from '../src/errors/index.js';
import type { DispatchResult } from '../src/instance/index.js';
import { settle, spec, TestRoutedRequest, track } from './dispatch-helpers.js';

/** A handler whose answer the test gives, when it likes. */
function heldHandler(): { handler: RequestHandler; answer: (result: DispatchResult) => void; fail: (err: unknown) => void; calls: number } {
  const out = { calls: 0, answer: (_: DispatchResult) => {}, fail: (_: unknown) => {}, handler: undefined as unknown as RequestHandler };
  out.handler = () => {
    out.calls++;
    return new Promise<DispatchResult>((resolve, reject) => {
      out.answer = resolve;
      out.fail = reject;
    });
  };
  return out;
}

const ok = (body: DispatchResult['response']['body'] = Buffer.from('ok')): DispatchResult => ({ response: { status: 200, headers: [], body }, coldStart: false });

describe('admission deadline', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  test('deadline — no answer within limits.timeout gets LL_TIMEOUT (504), and the request is aborted first with that reason', async () => {
    const inner = heldHandler();
    const request = new TestRoutedRequest();
    let abortedBeforeAnswer = false;
    request.onAbort(() => (abortedBeforeAnswer = !outcome.done));
    const outcome = track(deadlineStep(spec({ timeoutMs: 400 }))(inner.handler)(request));
    mock.timers.tick(399);
    await settle();
    assert.equal(outcome.done, false, 'not before limits.timeout');
    assert.equal(request.aborted, false);
    mock.timers.tick(1);
    await settle();
    assert.equal(outcome.error?.code, ErrorCodes.TIMEOUT);
    assert.equal(outcome.error?.status, 504);
    assert.equal(outcome.error?.message, "Function 'fn' did not answer within 400 ms (limits.timeout)");
    assert.ok(request.aborted, 'the request is abandoned so that the instance lets go');
    assert.equal(request.abortReason, outcome.error, 'aborted with the same error, for the steps inside');
    assert.ok(abortedBeforeAnswer, 'the abort comes before the 504');
  });

  test('deadline — an answer in time passes through and its timer is cleared', async () => {
    const inner = heldHandler();
    const request = new TestRoutedRequest();
    const outcome = track(deadlineStep(spec({ timeoutMs: 400 }))(inner.handler)(request));
    mock.timers.tick(100);
    const result = ok();
    inner.answer(result);
    await settle();
    assert.equal(outcome.result, result);
    mock.timers.tick(1_000);
    await settle();
    assert.equal(request.aborted, false, 'no abort after the answer');
  });

  test('deadline — an answer that comes after the 504 is dropped and its streamed body destroyed', async () => {
    const inner = heldHandler();
    const outcome = track(deadlineStep(spec({ timeoutMs: 50 }))(inner.handler)(new TestRoutedRequest()));
    mock.timers.tick(50);
    await settle();
    assert.equal(outcome.error?.code, ErrorCodes.TIMEOUT);
    const body = new PassThrough();
    inner.answer(ok(body));
    await settle();
    assert.ok(body.destroyed, 'nobody will read it');
  });

  test('deadline — a failure in time is passed on as it is, and one after the 504 is ignored', async () => {
    const inner = heldHandler();
    const refusal = new LamplighterError(ErrorCodes.OVER_CAPACITY, 'full', { retryAfter: 1 });
    const first = track(deadlineStep(spec({ timeoutMs: 50 }))(inner.handler)(new TestRoutedRequest()));
    inner.fail(refusal);
    await settle();
    assert.equal(first.error, refusal);

    const late = track(deadlineStep(spec({ timeoutMs: 50 }))(inner.handler)(new TestRoutedRequest()));
    mock.timers.tick(50);
    inner.fail(new Error('after the deadline'));
    await settle();
    assert.equal(late.error?.code, ErrorCodes.TIMEOUT);
  });

  test('deadline — a handler that throws at once is a rejection, not an exception', async () => {
    const thrown = new LamplighterError(ErrorCodes.SHUTTING_DOWN, 'going');
    const outcome = track(
      deadlineStep(spec())(() => {
        throw thrown;
      })(new TestRoutedRequest()),
    );
    await settle();
    assert.equal(outcome.error, thrown);
  });

  test('deadline — the request\'s own deadline is kept: time spent before admission counts against limits.timeout (regression: a fresh timer from limits.timeout)', async (t) => {
    const inner = heldHandler();
    // The deadline is read from the clock, the timers are mocked: the clock stands still too, so
    // the step sees exactly the 100 ms the request has left.
    // A whole number of milliseconds: (now + 100) - now is then exactly 100 in floating point.
    const now = Math.floor(performance.now());
    t.mock.method(performance, 'now', () => now);
    // 300 of the function's 400 ms were spent before admission (a forward hop, a queue).
    const request = new TestRoutedRequest({ deadline: now + 100 });
    const outcome = track(deadlineStep(spec({ timeoutMs: 400 }))(inner.handler)(request));
    mock.timers.tick(99);
    await settle();
    assert.equal(outcome.done, false, 'not before the deadline');
    mock.timers.tick(1);
    await settle();
    assert.equal(outcome.error?.code, ErrorCodes.TIMEOUT, 'given up on at the deadline, 300 ms before a fresh limits.timeout');
    assert.equal(request.abortReason, outcome.error);
  });

  test('deadline — a request whose deadline passed before admission is refused with LL_TIMEOUT and never dispatched', async () => {
    const inner = heldHandler();
    const request = new TestRoutedRequest({ deadline: performance.now() - 1 });
    const outcome = track(deadlineStep(spec({ timeoutMs: 400 }))(inner.handler)(request));
    await settle();
    assert.equal(outcome.error?.code, ErrorCodes.TIMEOUT);
    assert.equal(inner.calls, 0);
    assert.ok(request.aborted);
  });
});
