// Component isolation against a real componentize-js component (test/fixtures/component/isolation.js):
// per request (an instance restored as new) and per instance (one instance reused up to max_reuse).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LamplighterError } from '../src/errors/index.js';
import { createComponentFactory, prepareComponent, type ComponentInstance, type PreparedComponent } from '../src/runtime/component/index.js';
import {
  buildFixtureComponent,
  buildReusableComponent,
  buildTrappingComponent,
  COMPONENT_REQUEST_MS,
  componentSpec,
  LitComponents,
  sendTo,
  type ComponentSpecOptions,
  type MemoryLog,
  type ReusableComponentOptions,
} from './component-helpers.js';
import { makeInvocationRequest, readBody, withTimeout } from './instance-conformance.js';


let preparedOnce: Promise<PreparedComponent> | undefined;

/** The isolation fixture, built (or taken from the cache) and transpiled once for this file. */
function isolationComponent(): Promise<PreparedComponent> {
  preparedOnce ??= (async () => prepareComponent(await buildFixtureComponent('isolation.js'), componentSpec()))();
  return preparedOnce;
}

/** The reusable stand-in component (a wasm global counts requests), transpiled. */
async function reusableComponent(options: ReusableComponentOptions = {}): Promise<PreparedComponent> {
  return prepareComponent(await buildReusableComponent(options), componentSpec());
}

const lit = new LitComponents();

async function light(options: ComponentSpecOptions = {}, prepared?: PreparedComponent): Promise<{ instance: ComponentInstance; log: MemoryLog }> {
  return lit.light(prepared ?? (await isolationComponent()), componentSpec(options));
}

async function get(instance: ComponentInstance, url: string): Promise<{ status: number; text: string }> {
  const { status, text } = await sendTo(instance, url);
  return { status, text };
}

/** The status a request ends with, whether it is answered or rejected. */
async function statusOf(instance: ComponentInstance, url: string): Promise<number> {
  return withTimeout(
    instance.handle(makeInvocationRequest({ url })).then(
      async (response) => {
        await readBody(response).catch(() => undefined);
        return response.status;
      },
      (err: unknown) => (err instanceof LamplighterError ? err.status : 0),
    ),
    COMPONENT_REQUEST_MS,
    `GET ${url}`,
  );
}

before(async () => {
  await isolationComponent();
});

after(() => lit.close());

describe('component isolation — per request (the default)', () => {
  test('component isolation — a global counter reads 1 on each of 1,000 sequential requests, from restored instances', { timeout: 60_000 }, async () => {
    const { instance } = await light();
    const started = Date.now();
    for (let n = 1; n <= 1000; n++) {
      assert.ok(Date.now() - started < 50_000, `1,000 requests took over 50 s (at ${n})`);
      const { status, text } = await get(instance, '/count');
      assert.equal(status, 200);
      assert.equal(text, '1 1', `request ${n} saw state from an earlier one`);
    }
    const { restored, instantiated, requests } = instance.stats;
    assert.equal(requests, 1000);
    // The isolation came from restoring one instance, not from making 1,000.
    assert.ok(restored >= 998, `only ${restored} restores for 1,000 requests`);
    assert.ok(instantiated <= 2, `${instantiated} instances made for 1,000 requests`);
  });

  test('component isolation — a global counter reads 1 on each of 200 concurrent requests', { timeout: 60_000 }, async () => {
    const { instance } = await light({ concurrency: 2 });
    const answers = await withTimeout(Promise.all(Array.from({ length: 200 }, () => get(instance, '/count'))), 50_000, '200 concurrent requests');
    for (const [i, answer] of answers.entries()) assert.deepEqual(answer, { status: 200, text: '1 1' }, `request ${i}`);
    assert.ok(instance.stats.restored >= 190, `only ${instance.stats.restored} restores for 200 requests`);
  });

  test('component isolation — an array and a string a request left in globals are absent from the next (restored instance)', async () => {
    const { instance } = await light();
    assert.deepEqual(await get(instance, '/write?v=restored&kb=256'), { status: 200, text: 'written' });
    const before = instance.stats.restored;
    const read = JSON.parse((await get(instance, '/read')).text) as Record<string, unknown>;
    assert.deepEqual(read, { counter: 1, leftover: null, hoard: null, filled: null, secret: null });
    // The write fitted the heap, so the instance that served it was restored, not replaced.
    assert.ok(instance.stats.restored > before || instance.stats.replaced === 0, 'the writing request was not restored');
    assert.equal(instance.stats.replaced, 0);
  });

  test('component isolation — a request that grew memory is followed by a new instance that has none of it', async () => {
    const { instance } = await light();
    // 32 MiB: more than the engine's heap has free whatever its state, so memory surely grows (an
    // 8 MiB array sometimes fitted, and the instance was then restored, not replaced).
    assert.deepEqual(await get(instance, '/write?v=grown&kb=32768'), { status: 200, text: 'written' });
    const read = JSON.parse((await get(instance, '/read')).text) as Record<string, unknown>;
    assert.deepEqual(read, { counter: 1, leftover: null, hoard: null, filled: null, secret: null });
    assert.equal(instance.stats.replaced, 1);
  });

  test('component isolation — a timeout is followed by a correct answer on the same worker', { timeout: 60_000 }, async () => {
    const { instance, log } = await light({ timeout: '1s' });
    const threads = instance.workerThreadIds;
    assert.equal(await statusOf(instance, '/sleep?ms=5000'), 504);
    assert.deepEqual(await get(instance, '/count'), { status: 200, text: '1 1' });
    assert.deepEqual(instance.workerThreadIds, threads);
    assert.match(log.text(), /timeout: request .* the handler stopped at its next wait \(the worker stays\)/);
  });

  test('component isolation — an out-of-memory request is followed by a correct answer on the same worker', { timeout: 60_000 }, async () => {
    const { instance } = await light({ memory: '64MiB' });
    const threads = instance.workerThreadIds;
    const status = await statusOf(instance, '/oom?mb=256');
    assert.ok(status >= 500, `expected a 5xx, got ${status}`);
    assert.deepEqual(await get(instance, '/count'), { status: 200, text: '1 1' });
    assert.deepEqual(instance.workerThreadIds, threads);
  });

  test('component isolation — an exception in the handler is followed by a correct answer from a restored instance', async () => {
    const { instance } = await light();
    assert.equal(await statusOf(instance, '/recurse'), 500);
    assert.deepEqual(await get(instance, '/count'), { status: 200, text: '1 1' });
  });

  test('component isolation — a wasm global a request changed is put back (a component other than the JS engine)', async () => {
    const { instance } = await light({}, await reusableComponent());
    for (let i = 0; i < 50; i++) assert.deepEqual(await get(instance, '/'), { status: 200, text: '1' }, `request ${i + 1}`);
    assert.ok(instance.stats.restored >= 49, `only ${instance.stats.restored} restores`);
  });

  test('component isolation — a trapping instance is replaced on the same worker thread, each request trapping afresh', async () => {
    const trapping = await prepareComponent(await buildTrappingComponent('worlds.wit', 'trap'), componentSpec());
    const { instance, log } = await light({}, trapping);
    const threads = instance.workerThreadIds;
    for (let i = 0; i < 3; i++) assert.equal(await statusOf(instance, '/'), 500);
    assert.deepEqual(instance.workerThreadIds, threads);
    assert.equal(instance.stats.restored, 0);
    assert.ok(instance.stats.instantiated >= 3, `${instance.stats.instantiated} instances for 3 traps`);
    assert.match(log.text(), /unreachable/);
  });
});

describe('component isolation — per instance (isolation = "instance")', () => {
  test('component isolation — one instance serves max_reuse requests, keeping its state, then a new one starts over', async () => {
    const { instance } = await light({ isolation: 'instance', maxReuse: 5 }, await reusableComponent());
    const seen: string[] = [];
    for (let i = 0; i < 12; i++) seen.push((await get(instance, '/')).text);
    assert.deepEqual(seen, ['1', '2', '3', '4', '5', '1', '2', '3', '4', '5', '1', '2']);
    // It starts over by a restore to its first state, not by a new instance.
    assert.equal(instance.stats.restored, 2);
    assert.equal(instance.stats.instantiated, 1);
  });

  test('component isolation — under reuse, a trap is followed by a correct answer from a new instance on the same worker', async () => {
    const { instance, log } = await light({ isolation: 'instance' }, await reusableComponent({ trapAt: 3 }));
    const threads = instance.workerThreadIds;
    const seen: Array<string | number> = [];
    for (let i = 0; i < 7; i++) {
      const status = await statusOf(instance, '/');
      seen.push(status === 200 ? 'ok' : status);
    }
    assert.deepEqual(seen, ['ok', 'ok', 500, 'ok', 'ok', 500, 'ok']);
    assert.deepEqual(instance.workerThreadIds, threads);
    assert.match(log.text(), /trap: wasm trap: unreachable/);
  });

  test('component isolation — under reuse, memory grown past twice its start replaces the instance', async () => {
    const { instance } = await light({ isolation: 'instance' }, await reusableComponent({ growAt: 3 }));
    const seen: string[] = [];
    for (let i = 0; i < 7; i++) seen.push((await get(instance, '/')).text);
    assert.deepEqual(seen, ['1', '2', '3', '1', '2', '3', '1']);
  });

  test('component isolation — a JS listener built with --isolation instance keeps what a request left for the next, up to max_reuse', async () => {
    const prepared = await prepareComponent(await buildFixtureComponent('isolation.js', 'instance'), componentSpec());
    const { instance } = await light({ isolation: 'instance', maxReuse: 4 }, prepared);
    assert.equal((await get(instance, '/count')).text, '1 1');
    assert.equal((await get(instance, '/write?kb=4&v=kept')).text, 'written');
    assert.deepEqual(JSON.parse((await get(instance, '/read')).text), { counter: 3, leftover: 'secret-kept', hoard: 4096, filled: true, secret: 'secret-kept' });
    // Too much recursion is an exception the handler throws: a 500, and the instance goes on.
    assert.equal(await statusOf(instance, '/recurse'), 500);
    // That was the fourth request: the fifth finds the instance as new.
    assert.equal((await get(instance, '/count')).text, '1 1');
  });

  test('component isolation — "instance" is refused for a JS component, whose engine answers one request per instance', async () => {
    const prepared = await isolationComponent();
    assert.throws(
      () => createComponentFactory(prepared, componentSpec({ isolation: 'instance' }), { log: () => undefined }),
      (err: unknown) =>
        err instanceof LamplighterError &&
        err.code === 'LL_MANIFEST_INVALID' &&
        /function\[echo\]\.isolation = "instance" cannot be used with this component: it embeds the JavaScript engine of componentize-js .*Build it with "lamplighter build --isolation instance"/.test(err.message),
    );
  });
});
