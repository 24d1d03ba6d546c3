// Unit tests of the dispatcher with a fake instance factory and a manual clock.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCodes } from '../src/errors/index.js';
import { SentBack, type InvocationRequest, type InvocationResponse } from '../src/instance/index.js';
import { makeInvocationRequest } from './instance-conformance.js';
import { assertCode, FakeInstance, makeDispatcher as makeGroup, settle, track } from './dispatch-helpers.js';

/** Takes one request ahead of its capacity at a time, which the test answers or gives back. */
class AheadInstance extends FakeInstance {
  readonly ahead: Array<{ request: InvocationRequest; answer: () => void; giveBack: () => void }> = [];

  handleAhead(request: InvocationRequest): Promise<InvocationResponse> | undefined {
    if (this.ahead.length > 0) return undefined;
    return new Promise((resolve, reject) => {
      const entry = {
        request,
        answer: () => {
          this.ahead.splice(this.ahead.indexOf(entry), 1);
          resolve({ status: 200, headers: [], body: Buffer.from('ahead') });
        },
        giveBack: () => {
          this.ahead.splice(this.ahead.indexOf(entry), 1);
          reject(new SentBack(this.id));
        },
      };
      this.ahead.push(entry);
    });
  }
}

describe('dispatcher', () => {
  test('concurrency — an instance never gets more than limits.concurrency requests at once', async () => {
    const { factory, group } = makeGroup({ concurrency: 2, maxPending: 10 }, { min: 1, max: 1 });
    const instance = factory.created[0]!;
    instance.light();
    await settle();
    const requests = Array.from({ length: 7 }, () => makeInvocationRequest());
    const outcomes = requests.map((request) => track(group.dispatch(request)));
    await settle();
    assert.equal(instance.open.length, 2);
    assert.equal(group.inFlightCount, 2);
    assert.equal(group.pendingCount, 5);
    for (let answered = 0; answered < 7; answered++) {
      instance.open[0]!.answer();
      await settle();
      assert.ok(instance.open.length <= 2, `${instance.open.length} at once after ${answered + 1} answers`);
    }
    assert.equal(instance.mostAtOnce, 2);
    assert.equal(factory.created.length, 1, 'scale.max = 1: no second instance');
    for (const outcome of outcomes) assert.equal(outcome.result?.response.status, 200);
    assert.deepEqual(
      instance.served.map((r) => r.id),
      requests.map((r) => r.id),
      'held requests are served oldest first',
    );
  });

  test('node room — with its threads spent the node lights a function\'s first instance, no more; held requests wait for it', async () => {
    const { clock, factory, group } = makeGroup({ concurrency: 1, maxPending: 20 }, { max: 5 });
    factory.room = false;
    const outcomes = Array.from({ length: 6 }, () => track(group.dispatch(makeInvocationRequest())));
    await settle();
    assert.equal(factory.created.length, 1, 'the first instance lights even without room: a function is never left with none');
    factory.created[0]!.light();
    await settle();
    clock.advance(1_000);
    group.reconcile();
    await settle();
    assert.equal(factory.created.length, 1, 'neither the demand nor the scaler lights a second while there is no room');
    // Room again (another function's instance went out): the scaler lights for the held requests.
    factory.room = true;
    clock.advance(1_000);
    group.reconcile();
    await settle();
    assert.ok(factory.created.length > 1, `${factory.created.length} instances once there is room`);
    for (const instance of factory.created) instance.light();
    for (let i = 0; i < 6; i++) {
      for (const instance of factory.created) instance.open[0]?.answer();
      await settle();
    }
    for (const outcome of outcomes) assert.equal(outcome.result?.response.status, 200);
  });

  test('cold-start timeout — a request held while nothing lights fails with 504 at exactly limits.cold_start_timeout', async () => {
    const { clock, factory, group } = makeGroup({ coldStartTimeoutMs: 5_000 });
    const held = track(group.dispatch(makeInvocationRequest()));
    await settle();
    assert.equal(factory.created.length, 1, 'the first request lights an instance');
    clock.advance(4_999);
    await settle();
    assert.equal(held.done, false, 'still held 1 ms before the timeout');
    clock.advance(1);
    await settle();
    const err = assertCode(held, ErrorCodes.COLD_START_TIMEOUT, /did not light within 5000 ms/);
    assert.equal(err.status, 504);
    assert.equal(group.pendingCount, 0);
    // The instance lighting late serves the next request, not the one that gave up.
    factory.created[0]!.light();
    await settle();
    assert.equal(factory.created[0]!.served.length, 0);
  });

  test('cold-start timeout — a request held behind busy instances fails with LL_TIMEOUT', async () => {
    const { clock, factory, group } = makeGroup({ concurrency: 1, coldStartTimeoutMs: 2_000 }, { min: 1 });
    factory.created[0]!.light();
    await settle();
    track(group.dispatch(makeInvocationRequest()));
    const held = track(group.dispatch(makeInvocationRequest()));
    await settle();
    clock.advance(2_000);
    await settle();
    assertCode(held, ErrorCodes.TIMEOUT, /no free instance within 2000 ms/);
    assert.equal(group.pendingCount, 0);
  });

  test('abort — a request aborted while held leaves the queue at once and is never served', async () => {
    const { clock, factory, group } = makeGroup({ concurrency: 1 });
    const controller = new AbortController();
    const aborted = track(group.dispatch(makeInvocationRequest({ signal: controller.signal })));
    const kept = track(group.dispatch(makeInvocationRequest()));
    await settle();
    assert.equal(group.pendingCount, 2);
    controller.abort();
    await settle();
    assertCode(aborted, ErrorCodes.BAD_REQUEST, /went away while the request was held/);
    assert.equal(group.pendingCount, 1);
    assert.equal(clock.pending, 1, "the aborted request's timeout is cleared");
    const instance = factory.created[0]!;
    instance.light();
    await settle();
    assert.equal(instance.served.length, 1);
    assert.notEqual(instance.served[0]!.signal, controller.signal);
    instance.open[0]!.answer();
    await settle();
    assert.equal(kept.result?.response.status, 200);
    assert.equal(kept.result?.coldStart, true);
  });

  test('ahead — at capacity, an instance that can start a request the moment a run ends takes it now; one it gives back unstarted is dispatched again', async () => {
    const { factory, group } = makeGroup({ concurrency: 1 });
    const instances: AheadInstance[] = [];
    factory.create = (id: string) => {
      const made = new AheadInstance(id);
      instances.push(made);
      factory.created.push(made);
      return made;
    };
    const first = track(group.dispatch(makeInvocationRequest({ url: '/1' })));
    await settle();
    const instance = instances[0]!;
    instance.light();
    await settle();
    assert.equal(instance.open.length, 1);
    const second = track(group.dispatch(makeInvocationRequest({ url: '/2' })));
    const third = track(group.dispatch(makeInvocationRequest({ url: '/3' })));
    await settle();
    assert.deepEqual(instance.ahead.map((a) => a.request.url), ['/2'], 'the second is taken ahead, the third held');
    assert.equal(group.pendingCount, 1);
    instance.ahead[0]!.giveBack();
    await settle();
    // The held third goes ahead in its place; the second, given back, waits its turn.
    assert.deepEqual(instance.ahead.map((a) => a.request.url), ['/3']);
    assert.equal(group.pendingCount, 1);
    instance.ahead[0]!.answer();
    await settle();
    // Room ahead again, while the first still runs: the second takes it.
    assert.deepEqual(instance.ahead.map((a) => a.request.url), ['/2']);
    assert.equal(group.pendingCount, 0);
    instance.ahead[0]!.answer();
    instance.open[0]!.answer();
    await settle();
    assert.equal((first.result?.response.body as Buffer).toString(), 'ok');
    assert.equal((second.result?.response.body as Buffer).toString(), 'ahead');
    assert.equal((third.result?.response.body as Buffer).toString(), 'ahead');
    assert.deepEqual(instance.served.map((r) => r.url), ['/1'], 'the instance was handed only the first the usual way');
    assert.equal(group.pendingCount, 0);
  });

  test('abort — a request given up through its onAbort hook (as the gateway does, with no AbortSignal) leaves the queue too', async () => {
    const { clock, group } = makeGroup({ concurrency: 1 });
    const listeners: Array<() => void> = [];
    let gone = false;
    const hooked: InvocationRequest = {
      ...makeInvocationRequest(),
      get signal(): AbortSignal {
        throw new Error('the signal was made');
      },
      get aborted(): boolean {
        return gone;
      },
      onAbort(listener) {
        listeners.push(listener);
        return () => listeners.splice(listeners.indexOf(listener), 1);
      },
    };
    const held = track(group.dispatch(hooked));
    await settle();
    assert.equal(group.pendingCount, 1);
    assert.equal(listeners.length, 1);
    gone = true;
    for (const listener of listeners.splice(0)) listener();
    await settle();
    assertCode(held, ErrorCodes.BAD_REQUEST, /went away while the request was held/);
    assert.equal(group.pendingCount, 0);
    assert.equal(clock.pending, 0, "the aborted request's timeout is cleared");
  });

  test('abort — a request already aborted is not held', async () => {
    const { group } = makeGroup();
    const controller = new AbortController();
    controller.abort();
    const outcome = track(group.dispatch(makeInvocationRequest({ signal: controller.signal })));
    await settle();
    assertCode(outcome, ErrorCodes.BAD_REQUEST, /before the request was held/);
    assert.equal(group.pendingCount, 0);
  });

  test('scale-down — no instance is put out while requests are held waiting for room (regression: lighting instances were retired mid-burst)', async () => {
    const { clock, factory, group } = makeGroup({ concurrency: 1 }, { max: 3, target: 1 });
    const controller = new AbortController();
    const held = [track(group.dispatch(makeInvocationRequest({ signal: controller.signal }))), track(group.dispatch(makeInvocationRequest())), track(group.dispatch(makeInvocationRequest()))];
    await settle();
    assert.equal(factory.created.length, 3, 'three held requests light three instances');
    // One client leaves: two requests still wait, and the demand reads two.
    controller.abort();
    await settle();
    assert.equal(group.pendingCount, 2);
    clock.advance(100);
    group.reconcile();
    assert.equal(group.instanceCount, 3);
    assert.ok(factory.created.every((instance) => instance.state === 'starting'), 'no lighting instance was stopped');
    for (const instance of factory.created) instance.light();
    await settle();
    for (const instance of factory.created) instance.open[0]?.answer();
    await settle();
    assert.equal(held[1]!.result?.response.status, 200);
    assert.equal(held[2]!.result?.response.status, 200);
    // With nothing held the scaler's decision applies again: an idle instance is put out.
    clock.advance(100);
    group.reconcile();
    assert.ok(group.readyCount < 3, `still ${group.readyCount} ready after the burst`);
  });

  test('lighting failure — held requests fail at once with the reason when the only instance never becomes ready', async () => {
    const { clock, factory, group, logs } = makeGroup({ concurrency: 1 });
    const held = [0, 1, 2].map(() => track(group.dispatch(makeInvocationRequest())));
    await settle();
    factory.created[0]!.fail('exited with code 3 before it became ready');
    await settle();
    for (const outcome of held) assertCode(outcome, ErrorCodes.FUNCTION_FAILED, /exited with code 3/);
    assert.equal(group.pendingCount, 0);
    assert.equal(clock.pending, 0, 'no timeout is left armed');
    assert.match(group.lastFailure ?? '', /exited with code 3/);
    assert.ok(logs.some((line) => /lighting failed: .*exited with code 3/.test(line)));
    // The next request lights a fresh instance.
    const next = track(group.dispatch(makeInvocationRequest()));
    await settle();
    assert.equal(factory.created.length, 2);
    factory.created[1]!.light();
    await settle();
    factory.created[1]!.open[0]!.answer();
    await settle();
    assert.equal(next.result?.response.status, 200);
    assert.equal(group.lastFailure, undefined, 'cleared once an instance lights');
  });

  test('lighting failure — a factory that throws fails the held request with FUNCTION_FAILED', async () => {
    const { factory, group } = makeGroup();
    factory.throwOnCreate = new Error('no such module');
    const outcome = track(group.dispatch(makeInvocationRequest()));
    await settle();
    assertCode(outcome, ErrorCodes.FUNCTION_FAILED, /failed to start: .*no such module/);
    assert.equal(group.pendingCount, 0);
  });
});
