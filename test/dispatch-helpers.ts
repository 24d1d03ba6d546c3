// Shared by the dispatcher and admission tests: instances the test drives, a function spec, outcome tracking.
import assert from 'node:assert/strict';
import { PlatformDefaults } from '../src/config/index.js';
import { Dispatcher } from '../src/dispatch/index.js';
import { ErrorCodes, LamplighterError } from '../src/errors/index.js';
import type { DispatchResult, Instance, InstanceExit, InstanceFactory, InstanceState, InvocationRequest, InvocationResponse, RoutedRequest } from '../src/instance/index.js';
import type { FunctionLimits, FunctionScale, FunctionSpec } from '../src/manifest/index.js';
import { Metrics } from '../src/observability/index.js';
import { ManualClock } from '../src/runtime/process/index.js';
import { makeInvocationRequest, type InvocationRequestInit } from './instance-conformance.js';

/** Lets promise callbacks (readiness, assignment, handle) run; no time passes. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** An instance whose readiness and answers the test decides, one call at a time. */
export class FakeInstance implements Instance {
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
export class FakeFactory implements InstanceFactory {
  readonly created: FakeInstance[] = [];
  /** When set, create() throws it. */
  throwOnCreate: Error | undefined;
  /** What roomToLight() answers: false as a node whose threads are spent. */
  room = true;

  roomToLight(): boolean {
    return this.room;
  }

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

/** A process function's spec with the given limits and scale; `extra` overrides the rest. */
export function spec(limits: Partial<FunctionLimits> = {}, scale: Partial<FunctionScale> = {}, extra: Partial<FunctionSpec> = {}): FunctionSpec {
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
    ...extra,
  };
}

/** A dispatcher of fake instances on a manual clock. */
export function makeDispatcher(limits: Partial<FunctionLimits> = {}, scale: Partial<FunctionScale> = {}, extra: Partial<FunctionSpec> = {}) {
  const clock = new ManualClock();
  const factory = new FakeFactory();
  const logs: string[] = [];
  const group = new Dispatcher(spec(limits, scale, extra), factory, { metrics: new Metrics(), log: (text) => logs.push(text), clock });
  return { clock, factory, group, logs };
}

/** Records how a dispatch ended without letting a rejection go unhandled. */
export function track(pending: Promise<DispatchResult>): { result?: DispatchResult; error?: LamplighterError; done: boolean } {
  const outcome: { result?: DispatchResult; error?: LamplighterError; done: boolean } = { done: false };
  pending.then(
    (result) => Object.assign(outcome, { result, done: true }),
    (error: LamplighterError) => Object.assign(outcome, { error, done: true }),
  );
  return outcome;
}

export function assertCode(outcome: { error?: LamplighterError; done: boolean }, code: string, pattern?: RegExp): LamplighterError {
  assert.ok(outcome.done, `expected ${code}, but the request is still open`);
  const err = outcome.error;
  assert.ok(err instanceof LamplighterError, `expected ${code}, got ${String(err ?? 'a response')}`);
  assert.equal(err.code, code, err.message);
  if (pattern) assert.match(err.message, pattern);
  return err;
}

/** A request as the gateway hands it over: abortable, with the reason the platform gave up on it. */
export class TestRoutedRequest implements RoutedRequest {
  readonly #inner: InvocationRequest;
  readonly #controller = new AbortController();
  #listeners: Array<() => void> = [];
  abortReason: LamplighterError | undefined;
  /** When it must be answered by, on the `performance.now()` clock; none unless given. */
  readonly deadline: number | undefined;

  constructor(init: InvocationRequestInit & { deadline?: number } = {}) {
    this.#inner = makeInvocationRequest(init);
    this.deadline = init.deadline;
  }

  get id(): string { return this.#inner.id; }
  get method(): string { return this.#inner.method; }
  get url(): string { return this.#inner.url; }
  get headers(): InvocationRequest['headers'] { return this.#inner.headers; }
  get body(): InvocationRequest['body'] { return this.#inner.body; }
  get remoteAddress(): string { return this.#inner.remoteAddress; }
  get host(): string { return this.#inner.host; }
  get serverPort(): number { return this.#inner.serverPort; }
  get route(): InvocationRequest['route'] { return this.#inner.route; }
  get signal(): AbortSignal { return this.#controller.signal; }
  get aborted(): boolean { return this.#controller.signal.aborted; }

  abort(reason?: LamplighterError): void {
    if (this.aborted) return;
    this.abortReason = reason;
    this.#controller.abort();
    for (const listener of this.#listeners.splice(0)) listener();
  }

  onAbort(listener: () => void): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }
}
