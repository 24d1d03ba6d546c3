// Tests the KEDA external-scaler server over real gRPC, with a client built from the same proto file.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { startKedaServer, kedaMetricName, type DemandSource, type FunctionDemand, type KedaServer } from '../src/keda/index.js';

// dist/test/ → package root → proto/
const PROTO = fileURLToPath(new URL('../../proto/externalscaler.proto', import.meta.url));
const WAIT_MS = 3_000;

interface ScaledObjectRef {
  name: string;
  namespace: string;
  scalerMetadata?: Record<string, string>;
}
interface IsActiveResponse {
  result: boolean;
}
interface MetricSpec {
  metricName: string;
  targetSize: number;
  targetSizeFloat: number;
}
interface MetricValue {
  metricName: string;
  metricValue: number;
  metricValueFloat: number;
}

/** An in-memory DemandSource whose figures the tests change. */
class TestDemand implements DemandSource {
  readonly figures = new Map<string, FunctionDemand>();
  readonly listeners = new Set<(functionName: string, active: boolean) => void>();

  demand(functionName: string): FunctionDemand | undefined {
    const d = this.figures.get(functionName);
    return d && { ...d };
  }

  onActivityChange(listener: (functionName: string, active: boolean) => void): () => void {
    // Wrap so that subscribing the same listener twice still counts twice.
    const entry = (name: string, active: boolean): void => listener(name, active);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  set(name: string, demand: FunctionDemand): void {
    const before = this.figures.get(name)?.active;
    this.figures.set(name, demand);
    if (before !== demand.active) for (const l of [...this.listeners]) l(name, demand.active);
  }
}

/** Rejects if `promise` does not settle within `ms`. */
async function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it is true, failing after `ms`. */
async function until(check: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A typed client for the ExternalScaler service, built with proto-loader + grpc-js. */
class Client {
  readonly raw: grpc.Client & Record<string, (...args: unknown[]) => unknown>;

  constructor(port: number) {
    const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      externalscaler: { ExternalScaler: grpc.ServiceClientConstructor };
    };
    this.raw = new pkg.externalscaler.ExternalScaler(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as Client['raw'];
  }

  private unary<Res>(method: string, request: unknown): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.raw[method]!(request, { deadline: Date.now() + WAIT_MS }, (err: grpc.ServiceError | null, res: Res) =>
        err ? reject(err) : resolve(res),
      );
    });
  }

  isActive(ref: ScaledObjectRef): Promise<IsActiveResponse> {
    return this.unary('IsActive', ref);
  }

  getMetricSpec(ref: ScaledObjectRef): Promise<{ metricSpecs: MetricSpec[] }> {
    return this.unary('GetMetricSpec', ref);
  }

  getMetrics(ref: ScaledObjectRef, metricName: string): Promise<{ metricValues: MetricValue[] }> {
    return this.unary('GetMetrics', { scaledObjectRef: ref, metricName });
  }

  streamIsActive(ref: ScaledObjectRef): StreamReader {
    return new StreamReader(this.raw['StreamIsActive']!(ref) as grpc.ClientReadableStream<IsActiveResponse>);
  }

  close(): void {
    this.raw.close();
  }
}

/** Collects the messages of a server stream and its final status. */
class StreamReader {
  readonly messages: boolean[] = [];
  readonly status: Promise<grpc.StatusObject>;
  private readonly waiters = new Set<() => void>();

  constructor(readonly call: grpc.ClientReadableStream<IsActiveResponse>) {
    call.on('data', (m: IsActiveResponse) => {
      this.messages.push(m.result);
      for (const w of [...this.waiters]) w();
    });
    call.on('error', () => {}); // the outcome is read from `status`
    this.status = new Promise((resolve) => call.on('status', resolve));
  }

  /** Waits until `count` messages have arrived. */
  async received(count: number): Promise<boolean[]> {
    await within(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (this.messages.length >= count) {
            this.waiters.delete(check);
            resolve();
          }
        };
        this.waiters.add(check);
        check();
      }),
      `${count} StreamIsActive message(s), got ${this.messages.length}`,
    );
    return this.messages.slice(0, count);
  }
}

/** Asserts that `promise` rejects with gRPC status `code` and a message matching `details`. */
async function rejectsWith(promise: Promise<unknown>, code: grpc.status, details: RegExp): Promise<void> {
  await assert.rejects(promise, (err: grpc.ServiceError) => {
    assert.equal(err.code, code, `expected status ${grpc.status[code]}, got ${grpc.status[err.code]}: ${err.details}`);
    assert.match(err.details, details);
    return true;
  });
}

const source = new TestDemand();
let server: KedaServer;
let client: Client;
const cleanups: Array<() => Promise<void> | void> = [];

before(async () => {
  source.set('hello', { active: true, metric: 'concurrency', target: 10, value: 2.5 });
  source.set('resize', { active: false, metric: 'rate', target: 12.5, value: 0 });
  server = await startKedaServer(source, { port: 0, host: '127.0.0.1' });
  client = new Client(server.port);
});

after(async () => {
  client?.close();
  for (const c of cleanups.reverse()) await c();
  await within(server.close(), 'server close');
});

const ref = (name: string, scalerMetadata: Record<string, string> = {}): ScaledObjectRef => ({
  name,
  namespace: 'default',
  scalerMetadata,
});

test('keda scaler — listens on the port it reports when asked for port 0', () => {
  assert.ok(server.port > 0);
});

test('keda scaler — IsActive returns the function’s active state, named by the ScaledObject', async () => {
  assert.deepEqual(await client.isActive(ref('hello')), { result: true });
  assert.deepEqual(await client.isActive(ref('resize')), { result: false });
});

test('keda scaler — scalerMetadata.function overrides the ScaledObject name', async () => {
  assert.deepEqual(await client.isActive(ref('hello', { function: 'resize' })), { result: false });
  assert.deepEqual(await client.isActive(ref('some-scaledobject', { function: 'hello' })), { result: true });
  // Other metadata keys (scalerAddress) do not change the function.
  assert.deepEqual(await client.isActive(ref('hello', { scalerAddress: 'node:9090' })), { result: true });
  const spec = await client.getMetricSpec(ref('whatever', { function: 'resize' }));
  assert.equal(spec.metricSpecs[0]?.metricName, 'lamplighter-resize-rate');
});

test('keda scaler — GetMetricSpec returns one spec named lamplighter-<function>-<metric> with the target', async () => {
  assert.deepEqual(await client.getMetricSpec(ref('hello')), {
    metricSpecs: [{ metricName: 'lamplighter-hello-concurrency', targetSize: 10, targetSizeFloat: 10 }],
  });
  assert.deepEqual(await client.getMetricSpec(ref('resize')), {
    metricSpecs: [{ metricName: 'lamplighter-resize-rate', targetSize: 13, targetSizeFloat: 12.5 }],
  });
  assert.equal(kedaMetricName('hello', 'concurrency'), 'lamplighter-hello-concurrency');
});

test('keda scaler — GetMetrics returns the current value, as a float and rounded up', async () => {
  assert.deepEqual(await client.getMetrics(ref('hello'), 'lamplighter-hello-concurrency'), {
    metricValues: [{ metricName: 'lamplighter-hello-concurrency', metricValue: 3, metricValueFloat: 2.5 }],
  });
  source.set('hello', { active: true, metric: 'concurrency', target: 10, value: 7 });
  const res = await client.getMetrics(ref('hello'), 'lamplighter-hello-concurrency');
  assert.deepEqual(res.metricValues, [{ metricName: 'lamplighter-hello-concurrency', metricValue: 7, metricValueFloat: 7 }]);
  // Through the override, and with the name upper-cased as an HPA may pass it back.
  const viaOverride = await client.getMetrics(ref('so', { function: 'resize' }), 'LAMPLIGHTER-RESIZE-RATE');
  assert.deepEqual(viaOverride.metricValues, [{ metricName: 'lamplighter-resize-rate', metricValue: 0, metricValueFloat: 0 }]);
});

test('keda scaler — GetMetrics rejects a metric name that is not the function’s with INVALID_ARGUMENT', async () => {
  await rejectsWith(
    client.getMetrics(ref('hello'), 'lamplighter-hello-rate'),
    grpc.status.INVALID_ARGUMENT,
    /'hello'.*'lamplighter-hello-concurrency'.*'lamplighter-hello-rate'/,
  );
  await rejectsWith(client.getMetrics(ref('hello'), 'lamplighter-resize-rate'), grpc.status.INVALID_ARGUMENT, /lamplighter-resize-rate/);
});

test('keda scaler — an unknown function is NOT_FOUND on every RPC, with the name in the message', async () => {
  const missing = ref('nope');
  await rejectsWith(client.isActive(missing), grpc.status.NOT_FOUND, /no function 'nope'.*ScaledObject 'default\/nope'/);
  await rejectsWith(client.getMetricSpec(missing), grpc.status.NOT_FOUND, /no function 'nope'/);
  await rejectsWith(client.getMetrics(missing, 'lamplighter-nope-concurrency'), grpc.status.NOT_FOUND, /no function 'nope'/);
  await rejectsWith(client.isActive(ref('hello', { function: 'ghost' })), grpc.status.NOT_FOUND, /no function 'ghost'.*scalerMetadata\.function/);
  const stream = client.streamIsActive(missing);
  const status = await within(stream.status, 'StreamIsActive status');
  assert.equal(status.code, grpc.status.NOT_FOUND);
  assert.match(status.details, /no function 'nope'/);
  assert.deepEqual(stream.messages, []);
  assert.equal(source.listeners.size, 0);
});

test('keda scaler — GetMetrics without a scaledObjectRef is INVALID_ARGUMENT', async () => {
  await rejectsWith(
    new Promise((resolve, reject) =>
      client.raw['GetMetrics']!({ metricName: 'x' }, { deadline: Date.now() + WAIT_MS }, (err: Error | null, res: unknown) =>
        err ? reject(err) : resolve(res),
      ),
    ),
    grpc.status.INVALID_ARGUMENT,
    /no scaledObjectRef/,
  );
});

test('keda scaler — StreamIsActive sends the state at once, then each change; cancelling unsubscribes', async () => {
  source.set('stream-fn', { active: false, metric: 'concurrency', target: 1, value: 0 });
  const stream = client.streamIsActive(ref('so', { function: 'stream-fn' }));
  assert.deepEqual(await stream.received(1), [false]);
  await until(() => source.listeners.size === 1, 'the stream to subscribe');

  source.set('stream-fn', { active: true, metric: 'concurrency', target: 1, value: 1 });
  assert.deepEqual(await stream.received(2), [false, true]);
  // A change to another function is not sent on this stream.
  source.set('hello', { active: false, metric: 'concurrency', target: 10, value: 0 });
  source.set('stream-fn', { active: false, metric: 'concurrency', target: 1, value: 0 });
  assert.deepEqual(await stream.received(3), [false, true, false]);
  source.set('hello', { active: true, metric: 'concurrency', target: 10, value: 7 });

  stream.call.cancel();
  const status = await within(stream.status, 'the cancelled stream’s status');
  assert.equal(status.code, grpc.status.CANCELLED);
  await until(() => source.listeners.size === 0, 'the listener to be removed after cancel');
  assert.deepEqual(stream.messages, [false, true, false]);
});

test('keda scaler — StreamIsActive re-sends the current state periodically', async () => {
  const fast = await startKedaServer(source, { port: 0, streamIntervalMs: 40 });
  const fastClient = new Client(fast.port);
  cleanups.push(() => fastClient.close(), () => within(fast.close(), 'fast server close'));

  const stream = fastClient.streamIsActive(ref('hello'));
  assert.deepEqual(await stream.received(4), [true, true, true, true]);
  // The periodic re-send reads the current figures, even when no change was announced.
  source.figures.set('hello', { active: false, metric: 'concurrency', target: 10, value: 0 });
  await until(() => stream.messages.at(-1) === false, 'the re-sent state to reflect the new figures');
  source.set('hello', { active: true, metric: 'concurrency', target: 10, value: 7 });
  stream.call.cancel();
  await within(stream.status, 'status');
  await until(() => source.listeners.size === 0, 'the listener to be removed after cancel');
});

test('keda scaler — close ends open streams, unsubscribes and stops serving', async () => {
  const own = await startKedaServer(source, { port: 0 });
  const ownClient = new Client(own.port);
  cleanups.push(() => ownClient.close());

  const a = ownClient.streamIsActive(ref('hello'));
  const b = ownClient.streamIsActive(ref('resize'));
  await a.received(1);
  await b.received(1);
  await until(() => source.listeners.size === 2, 'both streams to subscribe');

  await within(own.close(), 'close with open streams');
  assert.equal(source.listeners.size, 0);
  assert.equal((await within(a.status, 'stream a status')).code, grpc.status.OK);
  assert.equal((await within(b.status, 'stream b status')).code, grpc.status.OK);
  await assert.rejects(ownClient.isActive(ref('hello')), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
  await within(own.close(), 'a second close'); // idempotent
});

test('keda scaler — a port already in use fails with a clear error', async () => {
  await assert.rejects(startKedaServer(source, { port: server.port, host: '127.0.0.1' }), /Cannot start the KEDA server on 127\.0\.0\.1:\d+/);
});

test('keda scaler — StreamMetricSpec, which newer KEDA tries first, is UNIMPLEMENTED so KEDA falls back to polling', async () => {
  const identity = (b: Buffer): Buffer => b;
  const call = client.raw.makeServerStreamRequest('/externalscaler.ExternalScaler/StreamMetricSpec', identity, identity, Buffer.alloc(0));
  call.on('data', () => {});
  call.on('error', () => {});
  const status = await within(new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve)), 'StreamMetricSpec status');
  assert.equal(status.code, grpc.status.UNIMPLEMENTED);
});

test('keda scaler — a failing demand source becomes INTERNAL, on unary calls and on an open stream', async () => {
  const flaky = new TestDemand();
  flaky.set('f', { active: true, metric: 'concurrency', target: 1, value: 1 });
  let broken = false;
  const failing: DemandSource = {
    demand: (name) => {
      if (broken) throw new Error('figures unavailable');
      return flaky.demand(name);
    },
    onActivityChange: (listener) => flaky.onActivityChange(listener),
  };
  const own = await startKedaServer(failing, { port: 0, streamIntervalMs: 30 });
  const ownClient = new Client(own.port);
  cleanups.push(() => ownClient.close(), () => within(own.close(), 'failing server close'));

  const stream = ownClient.streamIsActive(ref('f'));
  assert.deepEqual(await stream.received(1), [true]);
  broken = true;
  await rejectsWith(ownClient.isActive(ref('f')), grpc.status.INTERNAL, /figures unavailable/);
  const status = await within(stream.status, 'the stream to end');
  assert.equal(status.code, grpc.status.INTERNAL);
  assert.match(status.details, /figures unavailable/);
  await until(() => flaky.listeners.size === 0, 'the listener to be removed');
});
