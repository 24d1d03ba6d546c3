// The admission steps composed: their order, and a request held by the dispatcher bounded by the deadline.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { AdmittedFunction, type BreakerGate, type CallOutcome } from '../src/admission/index.js';
import { ErrorCodes, LamplighterError } from '../src/errors/index.js';
import { makeDispatcher, settle, TestRoutedRequest, track } from './dispatch-helpers.js';

/** A gate the test opens and closes by hand, keeping every outcome. */
function handGate(): BreakerGate & { open: LamplighterError | undefined; outcomes: CallOutcome[]; closed: boolean } {
  const gate = {
    open: undefined as LamplighterError | undefined,
    outcomes: [] as CallOutcome[],
    closed: false,
    admit: () => gate.open ?? { done: (outcome: CallOutcome) => void gate.outcomes.push(outcome) },
    status: () => ({ partition: 'none', open: gate.open ? 1 : 0, keys: [] }),
    close: () => void (gate.closed = true),
  };
  return gate;
}

describe('admission pipeline', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  test('admission — an open breaker refuses before the pending cap is asked', async () => {
    const { group } = makeDispatcher({ concurrency: 1, maxPending: 1, timeoutMs: 60_000 });
    const gate = handGate();
    const fn = new AdmittedFunction(group, { breaker: gate });
    const held = track(fn.dispatch(new TestRoutedRequest()));
    await settle();
    assert.equal(group.pendingCount, 1, 'the cap is reached');
    assert.equal(track(fn.dispatch(new TestRoutedRequest())).done, false);
    await settle();
    gate.open = new LamplighterError(ErrorCodes.OVER_CAPACITY, "Function 'fn' is refused by its breaker", { retryAfter: 9 });
    const refused = track(fn.dispatch(new TestRoutedRequest()));
    await settle();
    assert.equal(refused.error, gate.open, 'the breaker answered, not the pending cap');
    gate.open = undefined;
    const capped = track(fn.dispatch(new TestRoutedRequest()));
    await settle();
    assert.match(capped.error?.message ?? '', /limits\.max_pending/);
    await group.stop();
    await settle();
    assert.equal(held.error?.code, ErrorCodes.SHUTTING_DOWN);
  });

  test('admission — a request held for an instance gets LL_TIMEOUT at limits.timeout, leaves the queue, and counts as a timeout', async () => {
    const { group } = makeDispatcher({ timeoutMs: 300, coldStartTimeoutMs: 5_000 });
    const gate = handGate();
    const fn = new AdmittedFunction(group, { breaker: gate });
    const held = track(fn.dispatch(new TestRoutedRequest()));
    await settle();
    assert.equal(group.pendingCount, 1, 'held while the instance lights');
    mock.timers.tick(300);
    await settle();
    assert.equal(held.error?.code, ErrorCodes.TIMEOUT);
    assert.equal(group.pendingCount, 0, 'the abort took it out of the queue');
    assert.deepEqual(gate.outcomes.map((o) => o.error?.code), [ErrorCodes.TIMEOUT]);
    fn.close();
    assert.ok(gate.closed, 'closing the function closes its breakers');
    await group.stop();
  });
});
