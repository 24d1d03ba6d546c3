// A component function at zero lights from a parked worker whose instance is ready (test/fixtures/component/reusable.wat).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ComponentInstance, createComponentFactory, prepareComponent, type ComponentFactory, type PreparedComponent } from '../src/runtime/component/index.js';
import { buildReusableComponent, componentSpec, type ComponentSpecOptions } from './component-helpers.js';
import { makeInvocationRequest, readBody, withTimeout } from './instance-conformance.js';

const REQUEST_MS = 20_000;

let prepared: PreparedComponent;
const factories: ComponentFactory[] = [];

before(async () => {
  prepared = await prepareComponent(await buildReusableComponent(), componentSpec());
});

after(async () => {
  for (const factory of factories) await factory.close();
});

function factoryOf(options: ComponentSpecOptions = {}, standby?: boolean): ComponentFactory {
  const factory = createComponentFactory(prepared, componentSpec(options), { log: () => undefined, standby });
  factories.push(factory);
  return factory;
}

async function get(instance: ComponentInstance): Promise<string> {
  const response = await withTimeout(instance.handle(makeInvocationRequest({ url: '/' })), REQUEST_MS, 'GET /');
  return (await readBody(response)).toString('utf8');
}

/** Lights an instance and times it until its first answer; stops it afterwards (which parks its worker). */
async function lightOnce(factory: ComponentFactory, id: string): Promise<{ ms: number; text: string; threads: number[] }> {
  const started = performance.now();
  const instance = factory.create(id) as ComponentInstance;
  await withTimeout(instance.ready, REQUEST_MS, 'ready');
  const text = await get(instance);
  const ms = performance.now() - started;
  const threads = instance.workerThreadIds;
  await instance.stop();
  return { ms, text, threads };
}

describe('component standby — lighting a function at zero', () => {
  test('component standby — a function at zero answers its first request from the parked worker, p50 under 30 ms', async () => {
    const factory = factoryOf();
    await withTimeout(factory.standbyReady(), REQUEST_MS, 'standby');
    const lights: Array<{ ms: number; text: string; threads: number[] }> = [];
    for (let i = 0; i < 7; i++) lights.push(await lightOnce(factory, `cold-${i}`));
    for (const light of lights) assert.equal(light.text, '1');
    // The same parked worker each time: no thread started, no bindings loaded, no instantiation.
    assert.deepEqual(new Set(lights.map((l) => l.threads.join())).size, 1);
    const sorted = lights.map((l) => l.ms).sort((a, b) => a - b);
    const p50 = sorted[Math.floor(sorted.length / 2)] as number;
    assert.ok(p50 < 30, `cold p50 ${p50.toFixed(1)} ms (all: ${sorted.map((ms) => ms.toFixed(1)).join(', ')})`);
  });

  test('component standby — under isolation = "instance" the parked instance starts over before it is taken', async () => {
    const factory = factoryOf({ isolation: 'instance' });
    await withTimeout(factory.standbyReady(), REQUEST_MS, 'standby');
    const first = factory.create('first') as ComponentInstance;
    await first.ready;
    assert.deepEqual([await get(first), await get(first), await get(first)], ['1', '2', '3']);
    await first.stop();
    const second = factory.create('second') as ComponentInstance;
    await second.ready;
    assert.equal(await get(second), '1');
    await second.stop();
  });

  test('component standby — without standby, each instance starts its own worker on demand and none is parked', async () => {
    const factory = factoryOf({}, false);
    await factory.standbyReady();
    // Thread ids only grow: a worker started before this marker (one parked) has a smaller one.
    const marker = new Worker('', { eval: true });
    const markerId = marker.threadId;
    await marker.terminate();
    const first = await lightOnce(factory, 'plain-1');
    const second = await lightOnce(factory, 'plain-2');
    assert.deepEqual([first.text, second.text], ['1', '1']);
    assert.ok(first.threads.length > 0 && second.threads.length > 0);
    for (const id of first.threads) assert.ok(id > markerId, `worker ${id} was started before the instance was lit (marker ${markerId}): parked, not on demand`);
    assert.ok(Math.min(...second.threads) > Math.max(...first.threads), `the second instance ran on ${second.threads.join()}, after the first's ${first.threads.join()}: its worker was parked for it`);
  });
});
