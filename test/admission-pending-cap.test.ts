// Unit tests of the pending cap step in front of a real dispatcher (fake instances, manual clock).
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { AdmittedFunction, pendingCapStep } from '../src/admission/index.js';
import { Dispatcher, type ForwardedResponse, type FunctionPeers, type PeerChoice } from '../src/dispatch/index.js';
import { ErrorCodes } from '../src/errors/index.js';
import type { FunctionLimits, FunctionScale, FunctionSpec } from '../src/manifest/index.js';
import { Metrics } from '../src/observability/index.js';
import { ManualClock } from '../src/runtime/process/index.js';
import { assertCode, FakeFactory, makeDispatcher, settle, spec, TestRoutedRequest, track } from './dispatch-helpers.js';

/** What {@link UnreachablePeer} fails forwards with: nothing was sent. */
class PeerGone extends Error {}

/**
 * Another node that always seems to have room, whose forwards the test fails (as unreachable) when
 * it chooses: what a cluster node looks like in the moment before its heartbeats stop.
 */
class UnreachablePeer implements FunctionPeers {
  readonly #peer: PeerChoice = { node: 'b', address: '127.0.0.1:9' };
  readonly #waiting: Array<(err: Error) => void> = [];
  forwards = 0;

  withRoom(): PeerChoice | undefined { return this.#peer; }
  withInstances(): PeerChoice | undefined { return this.#peer; }
  remoteInstances(): number { return 0; }
  yieldsExcess(): boolean { return false; }
  forward(): Promise<ForwardedResponse> {
    this.forwards++;
    return new Promise((_, reject) => this.#waiting.push(reject));
  }
  upgrade(): Promise<number> { return Promise.reject(new PeerGone('unreachable')); }
  isUnreachable(err: unknown): boolean { return err instanceof PeerGone; }
  changed(): void {}
  close(): void {}

  /** Fails every forward under way as unreachable. */
  failAll(): void {
    for (const reject of this.#waiting.splice(0)) reject(new PeerGone('connect ECONNREFUSED 127.0.0.1:9'));
  }
}

/** A dispatcher with only the pending cap in front of it. */
function makeCapped(limits: Partial<FunctionLimits> = {}, scale: Partial<FunctionScale> = {}, extra: Partial<FunctionSpec> = {}) {
  const made = makeDispatcher(limits, scale, extra);
  const group = made.group;
  const admit = pendingCapStep(group.spec, group)((request) => group.dispatch(request));
  return { ...made, admit };
}

describe('admission pending cap', () => {
  test('pending cap — exactly max_pending requests are held; the one past gets 503 with Retry-After', async () => {
    const { factory, group, admit } = makeCapped({ concurrency: 1, maxPending: 3 });
    const first = track(admit(new TestRoutedRequest()));
    const held = [1, 2].map(() => track(admit(new TestRoutedRequest())));
    await settle();
    assert.equal(group.pendingCount, 3, 'the cold request and two more are held while the instance lights');
    const refusedCold = track(admit(new TestRoutedRequest()));
    await settle();
    const err = assertCode(refusedCold, ErrorCodes.OVER_CAPACITY, /max_pending/);
    assert.equal(err.status, 503);
    assert.equal(err.retryAfter, 1);
    assert.equal(group.pendingCount, 3);

    const instance = factory.created[0]!;
    instance.light();
    await settle();
    assert.equal(instance.open.length, 1, 'one request runs, with concurrency 1');
    assert.equal(group.pendingCount, 2);
    // One place came free: one more is held, and the next is refused.
    const third = track(admit(new TestRoutedRequest()));
    await settle();
    assert.equal(third.done, false, 'the third held request fits');
    assert.equal(group.pendingCount, 3);
    const past = track(admit(new TestRoutedRequest()));
    await settle();
    assertCode(past, ErrorCodes.OVER_CAPACITY);
    assert.equal(group.pendingCount, 3);

    for (let i = 0; i < 4; i++) {
      instance.open[0]!.answer();
      await settle();
    }
    for (const outcome of [first, ...held, third]) assert.equal(outcome.result?.response.status, 200);
    assert.equal(instance.served.length, 4);
    assert.equal(group.pendingCount, 0);
  });

  test('pending cap — max_pending = 0 holds nothing: a request finding no room is refused at once', async () => {
    const { factory, admit } = makeCapped({ concurrency: 1, maxPending: 0 }, { min: 1 });
    factory.created[0]!.light();
    await settle();
    const running = track(admit(new TestRoutedRequest()));
    const refused = track(admit(new TestRoutedRequest()));
    await settle();
    assertCode(refused, ErrorCodes.OVER_CAPACITY);
    factory.created[0]!.open[0]!.answer();
    await settle();
    assert.equal(running.result?.response.status, 200);
  });

  test('pending cap — a cold request answered by the placeholder is not held, so max_pending = 0 does not refuse it', async () => {
    const { admit } = makeCapped({ maxPending: 0 }, {}, { placeholder: { status: 202, body: 'warming up', contentType: 'text/plain' } });
    const outcome = track(admit(new TestRoutedRequest()));
    await settle();
    assert.equal(outcome.result?.response.status, 202);
  });

  test('pending cap — an upgrade past max_pending is refused like a request', async () => {
    const { group } = makeDispatcher({ concurrency: 1, maxPending: 1 });
    const admitted = new AdmittedFunction(group);
    const held = track(group.dispatch(new TestRoutedRequest()));
    await settle();
    assert.equal(group.pendingCount, 1);
    const socket = new PassThrough();
    await assert.rejects(admitted.upgrade(new TestRoutedRequest(), socket, Buffer.alloc(0)), (err: Error & { code?: string }) => err.code === ErrorCodes.OVER_CAPACITY);
    assert.equal(group.pendingCount, 1, 'the refused upgrade was never held');
    await group.stop();
    await settle();
    assert.equal(held.error?.code, ErrorCodes.SHUTTING_DOWN);
  });

  test('pending cap — requests whose forward reached nothing are held no more than max_pending (regression: the fallback hold skipped the cap)', async () => {
    const peers = new UnreachablePeer();
    const factory = new FakeFactory();
    const group = new Dispatcher(spec({ concurrency: 1, maxPending: 2 }), factory, { metrics: new Metrics(), log: () => {}, clock: new ManualClock(), peers });
    const admit = pendingCapStep(group.spec, group)((request) => group.dispatch(request));
    // The peer has room, so the cap foresees no holding and lets all five through to be forwarded.
    const outcomes = Array.from({ length: 5 }, () => track(admit(new TestRoutedRequest())));
    await settle();
    assert.equal(peers.forwards, 5);
    assert.equal(group.pendingCount, 0);
    peers.failAll();
    await settle();
    assert.equal(group.pendingCount, 2, 'two fall back to being held here, as max_pending allows');
    const refused = outcomes.filter((o) => o.done);
    assert.equal(refused.length, 3);
    for (const outcome of refused) assert.equal(assertCode(outcome, ErrorCodes.OVER_CAPACITY, /max_pending/).retryAfter, 1);
    assert.equal(group.demand.active, 2, 'the refused ones no longer count as demand');

    factory.created[0]!.light();
    await settle();
    for (let i = 0; i < 2; i++) {
      factory.created[0]!.open[0]!.answer();
      await settle();
    }
    assert.equal(outcomes.filter((o) => o.result?.response.status === 200).length, 2);
    await group.stop();
  });
});
