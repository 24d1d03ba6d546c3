// Unit tests of the breaker step, with a BreakerGate written here that records what it is told.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { breakerStep, compose, deadlineStep, type BreakerGate, type BreakerStatus, type BreakerTicket, type CallOutcome, type RequestHandler } from '../src/admission/index.js';
import { ErrorCodes, LamplighterError } from '../src/errors/index.js';
import type { DispatchResult, InvocationRequest } from '../src/instance/index.js';
import { settle, spec, TestRoutedRequest, track } from './dispatch-helpers.js';

/** A gate that admits until told to refuse, and keeps every outcome it is given. */
class RecordingGate implements BreakerGate {
  refusal: LamplighterError | undefined;
  readonly admitted: InvocationRequest[] = [];
  readonly outcomes: CallOutcome[] = [];
  closed = false;

  admit(request: InvocationRequest): BreakerTicket | LamplighterError {
    if (this.refusal) return this.refusal;
    this.admitted.push(request);
    return { done: (outcome) => this.outcomes.push(outcome) };
  }

  status(): BreakerStatus {
    return { partition: 'none', open: this.refusal ? 1 : 0, keys: [] };
  }

  close(): void {
    this.closed = true;
  }
}

/** Blocks the thread for `ms` of real time. */
function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A handler the test settles by hand. */
function heldHandler(): { handler: RequestHandler; answer: (status: number) => void; fail: (err: unknown) => void; calls: number } {
  const out = { calls: 0, answer: (_: number) => {}, fail: (_: unknown) => {}, handler: undefined as unknown as RequestHandler };
  out.handler = () => {
    out.calls++;
    return new Promise<DispatchResult>((resolve, reject) => {
      out.answer = (status) => resolve({ response: { status, headers: [], body: null }, coldStart: false });
      out.fail = reject;
    });
  };
  return out;
}

describe('admission breaker', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  test('breaker — a refusal is thrown as the gate made it, and the request goes no further', async () => {
    const gate = new RecordingGate();
    gate.refusal = new LamplighterError(ErrorCodes.OVER_CAPACITY, "Function 'fn' is refused by its breaker", { retryAfter: 7 });
    const inner = heldHandler();
    const outcome = track(breakerStep(gate)(inner.handler)(new TestRoutedRequest()));
    await settle();
    assert.equal(outcome.error, gate.refusal);
    assert.equal(inner.calls, 0);
    assert.equal(gate.outcomes.length, 0, 'a refused request has no ticket');
  });

  test('breaker — the ticket gets the status at the answer head, once', async () => {
    const gate = new RecordingGate();
    const inner = heldHandler();
    const request = new TestRoutedRequest();
    const before = performance.now();
    const outcome = track(breakerStep(gate)(inner.handler)(request));
    assert.equal(gate.admitted[0], request);
    await settle();
    assert.equal(gate.outcomes.length, 0, 'nothing reported before the answer');
    // A real 40 ms of the handler's (timers are mocked here, and the step reads performance.now()).
    sleep(40);
    inner.answer(503);
    await settle();
    const measured = performance.now() - before;
    assert.equal(outcome.result?.response.status, 503);
    assert.equal(gate.outcomes.length, 1);
    assert.equal(gate.outcomes[0]!.status, 503);
    assert.equal(gate.outcomes[0]!.error, undefined);
    const { durationMs } = gate.outcomes[0]!;
    assert.ok(durationMs >= 40 && durationMs <= measured, `the call took ${durationMs.toFixed(1)} ms by the breaker, 40 ms slept and ${measured.toFixed(1)} ms in all`);
    request.abort();
    await settle();
    assert.equal(gate.outcomes.length, 1, 'an abort after the answer reports nothing more');
  });

  test('breaker — a failure reaches the ticket as a LamplighterError and the caller as it was', async () => {
    const gate = new RecordingGate();
    const inner = heldHandler();
    const outcome = track(breakerStep(gate)(inner.handler)(new TestRoutedRequest()));
    const trap = new LamplighterError(ErrorCodes.FUNCTION_FAILED, "Function 'fn' trapped");
    inner.fail(trap);
    await settle();
    assert.equal(outcome.error, trap);
    assert.deepEqual(gate.outcomes.map((o) => o.error?.code), [ErrorCodes.FUNCTION_FAILED]);

    const crash = track(breakerStep(gate)(inner.handler)(new TestRoutedRequest()));
    inner.fail(new Error('socket hang up'));
    await settle();
    assert.equal(crash.error?.message, 'socket hang up', 'the caller gets what was thrown');
    assert.equal(gate.outcomes[1]!.error?.code, ErrorCodes.INTERNAL, 'the ticket gets it as a LamplighterError');
  });

  test('breaker — a request that runs out of time counts as LL_TIMEOUT at its deadline, once, whatever ends it later', async () => {
    const gate = new RecordingGate();
    const inner = heldHandler();
    const handler = compose([deadlineStep(spec({ timeoutMs: 300 })), breakerStep(gate)], inner.handler);
    const outcome = track(handler(new TestRoutedRequest()));
    mock.timers.tick(300);
    await settle();
    assert.equal(outcome.error?.code, ErrorCodes.TIMEOUT);
    assert.deepEqual(gate.outcomes.map((o) => o.error?.code), [ErrorCodes.TIMEOUT], 'reported at the deadline, before the instance lets go');
    // The instance gives up on the aborted request later: no second report.
    inner.fail(new LamplighterError(ErrorCodes.BAD_REQUEST, 'The client went away while the request was held'));
    await settle();
    assert.equal(gate.outcomes.length, 1);
  });

  test('breaker — a client that leaves before the answer is reported as neither status nor error, once', async () => {
    const gate = new RecordingGate();
    const inner = heldHandler();
    const request = new TestRoutedRequest();
    track(breakerStep(gate)(inner.handler)(request));
    request.abort();
    await settle();
    assert.equal(gate.outcomes.length, 1);
    assert.equal(gate.outcomes[0]!.status, undefined);
    assert.equal(gate.outcomes[0]!.error, undefined, 'the breaker ignores it: the function was not at fault');
    // The run then fails as an aborted upstream call does: the breaker has already heard.
    inner.fail(new LamplighterError(ErrorCodes.UPSTREAM_UNAVAILABLE, 'The upstream call was aborted'));
    await settle();
    assert.equal(gate.outcomes.length, 1);
  });
});
