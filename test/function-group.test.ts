// Unit tests of the dispatcher (FunctionGroup) with a fake instance factory and a manual clock.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PlatformDefaults } from '../src/config/index.js';
import { FunctionGroup, type DispatchResult } from '../src/dispatch/index.js';
import { ErrorCodes, LamplighterError } from '../src/errors/index.js';
import type { Instance, InstanceExit, InstanceFactory, InstanceState, InvocationRequest, InvocationResponse } from '../src/instance/index.js';
import type { FunctionLimits, FunctionScale, FunctionSpec } from '../src/manifest/index.js';
import { Metrics } from '../src/observability/index.js';
import { ManualClock } from '../src/runtime/process/index.js';
import { makeInvocationRequest } from './instance-conformance.js';

/** Lets promise callbacks (readiness, assignment, handle) run; no time passes. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** An instance whose readiness and answers the test decides, one call at a time. */
class FakeInstance implements Instance {
  readonly functionName = 'fn';
  state: InstanceState = 'starting';
  readonly ready: Promise<void>;
  readonly closed: Promise<InstanceExit>;
  /** Requests handed to this instance and not yet answered, oldest first. */
  readonly open: Array<{ request: InvocationRequest; answer: (status?: number) => void }> = [];
  /** Requests ever handed to this instance. */
  readonly served: InvocationRequest[] = [];
  /** Most requests this instance held at once. */
  mostAtOnce = 0;
  #resolveReady!: () => void;
  #rejectReady!: (err: Error) => void;
  #resolveClosed!: (exit: InstanceExit) => void;

  constructor(readonly id: string) {
    this.ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.ready.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /** Becomes ready. */
  light(): void {
    this.state = 'ready';
    this.#resolveReady();
  }

  /** Never becomes ready: `ready` rejects and `closed` reports the failure. */
  fail(message: string): void {
    this.state = 'failed';
    const err = new LamplighterError(ErrorCodes.FUNCTION_FAILED, message);
    this.#rejectReady(err);
    this.#resolveClosed({ reason: 'failed', message });
  }

  handle(request: InvocationRequest): Promise<InvocationResponse> {
    this.served.push(request);
    return new Promise((resolve) => {
      const entry = {
        request,
        answer: (status = 200) => {
          this.open.splice(this.open.indexOf(entry), 1);
          resolve({ status, headers: [], body: Buffer.from('ok') });
        },
      };
      this.open.push(entry);
      this.mostAtOnce = Math.max(this.mostAtOnce, this.open.length);
    });
  }

  drain(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.state = 'stopped';
    this.#resolveClosed({ reason: 'stopped' });
    return Promise.resolve();
  }
}

/** Hands out {@link FakeInstance}s and keeps them for the test to drive. */
class FakeFactory implements InstanceFactory {
  readonly created: FakeInstance[] = [];
  /** When set, create() throws it. */
  throwOnCreate: Error | undefined;

  create(id: string): FakeInstance {
    if (this.throwOnCreate) throw this.throwOnCreate;
    const instance = new FakeInstance(id);
    this.created.push(instance);
    return instance;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function spec(limits: Partial<FunctionLimits> = {}, scale: Partial<FunctionScale> = {}): FunctionSpec {
  return {
    name: 'fn',
    runtime: 'process',
    source: undefined,
    command: ['true'],
    cwd: undefined,
    routes: ['/...'],
    hosts: ['*'],
    env: {},
    argv: [],
    ready: undefined,
    startupTimeoutMs: 10_000,
    drainTimeoutMs: 1_000,
    allowedOutboundHosts: [],
    placeholder: undefined,
    limits: {
      memory: PlatformDefaults.memory,
      timeoutMs: 10_000,
      concurrency: 1,
      maxPending: 10,
      coldStartTimeoutMs: 5_000,
      responseBytes: PlatformDefaults.maxResponseBytes,
      bodyBytes: PlatformDefaults.maxBodyBytes,
      ...limits,
    },
    scale: { min: 0, max: 1, idleMs: 30_000, target: undefined, rate: undefined, windowMs: 10_000, ...scale },
  };
}

function makeGroup(limits: Partial<FunctionLimits> = {}, scale: Partial<FunctionScale> = {}) {
  const clock = new ManualClock();
  const factory = new FakeFactory();
  const logs: string[] = [];
  const group = new FunctionGroup(spec(limits, scale), factory, { metrics: new Metrics(), log: (text) => logs.push(text), clock });
  return { clock, factory, group, logs };
}

/** Records how a dispatch ended without letting a rejection go unhandled. */
function track(pending: Promise<DispatchResult>): { result?: DispatchResult; error?: LamplighterError; done: boolean } {
  const outcome: { result?: DispatchResult; error?: LamplighterError; done: boolean } = { done: false };
  pending.then(
    (result) => Object.assign(outcome, { result, done: true }),
    (error: LamplighterError) => Object.assign(outcome, { error, done: true }),
  );
  return outcome;
}

function assertCode(outcome: { error?: LamplighterError; done: boolean }, code: string, pattern?: RegExp): LamplighterError {
  assert.ok(outcome.done, `expected ${code}, but the request is still open`);
  const err = outcome.error;
  assert.ok(err instanceof LamplighterError, `expected ${code}, got ${String(err ?? 'a response')}`);
  assert.equal(err.code, code, err.message);
  if (pattern) assert.match(err.message, pattern);
  return err;
}

describe('dispatcher', () => {
  test('max_pending — exactly max_pending requests are held; the one past gets 503 with Retry-After', async () => {
    const { factory, group } = makeGroup({ concurrency: 1, maxPending: 3 });
    const first = track(group.dispatch(makeInvocationRequest()));
    const held = [1, 2].map(() => track(group.dispatch(makeInvocationRequest())));
    await settle();
    assert.equal(group.pendingCount, 3, 'the cold request and two more are held while the instance lights');
    const refusedCold = track(group.dispatch(makeInvocationRequest()));
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
    const third = track(group.dispatch(makeInvocationRequest()));
    await settle();
    assert.equal(third.done, false, 'the third held request fits');
    assert.equal(group.pendingCount, 3);
    const past = track(group.dispatch(makeInvocationRequest()));
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

  test('max_pending — max_pending = 0 holds nothing: a request finding no room is refused at once', async () => {
    const { factory, group } = makeGroup({ concurrency: 1, maxPending: 0 }, { min: 1 });
    factory.created[0]!.light();
    await settle();
    const running = track(group.dispatch(makeInvocationRequest()));
    const refused = track(group.dispatch(makeInvocationRequest()));
    await settle();
    assertCode(refused, ErrorCodes.OVER_CAPACITY);
    factory.created[0]!.open[0]!.answer();
    await settle();
    assert.equal(running.result?.response.status, 200);
  });

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
