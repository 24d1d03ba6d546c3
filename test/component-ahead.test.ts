// Requests sent ahead to a busy component worker (ComponentInstance.pump): each runs once, in turn,
// and one that waits behind a slow run, is given up, or outlives its worker is handled as if it
// had waited in the instance's own queue. The echo fixture is built for reuse and runs under
// isolation "instance", so its `/count` global tells how many requests an instance ran.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { performance } from 'node:perf_hooks';
import { LamplighterError } from '../src/errors/index.js';
import { SentBack, type InvocationRequest } from '../src/instance/index.js';
import { prepareComponent, type ComponentInstance, type PreparedComponent } from '../src/runtime/component/index.js';
import { buildFixtureComponent, COMPONENT_REQUEST_MS, componentSpec, LitComponents, sendTo, type ComponentSpecOptions, type MemoryLog, type SentResponse } from './component-helpers.js';
import { makeInvocationRequest, type InvocationRequestInit } from './instance-conformance.js';

let prepared: PreparedComponent;
const lit = new LitComponents();

before(async () => {
  prepared = await prepareComponent(await buildFixtureComponent('echo.ts', 'instance'), componentSpec());
});

after(() => lit.close());

async function light(options: ComponentSpecOptions & { maxWorkers?: number } = {}): Promise<{ instance: ComponentInstance; log: MemoryLog }> {
  const { maxWorkers, ...spec } = options;
  return lit.light(prepared, componentSpec({ isolation: 'instance', ...spec }), maxWorkers === undefined ? {} : { maxWorkers });
}

/** A deadline of its own, as the gateway gives requests: only such a request is sent ahead. */
function ahead(): { deadline: number } {
  return { deadline: performance.now() + COMPONENT_REQUEST_MS };
}

/** A request with {@link ahead}'s deadline. */
function withDeadline(init: InvocationRequestInit): InvocationRequest {
  return makeInvocationRequest({ ...init, ...ahead() });
}

/** {@link sendTo}, timed. */
async function answer(instance: ComponentInstance, url: string, init: Omit<InvocationRequestInit, 'url'> = {}): Promise<SentResponse & { ms: number }> {
  const started = performance.now();
  const sent = await sendTo(instance, url, init);
  return { ...sent, ms: performance.now() - started };
}

/** Waits until the instance runs two requests side by side: two runs of 300 ms take less than 550. */
async function bothWorkersUp(instance: ComponentInstance): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const started = performance.now();
    await Promise.all([answer(instance, '/sleep?ms=300'), answer(instance, '/sleep?ms=300')]);
    if (performance.now() - started < 550) return;
  }
  assert.fail('the instance never ran two requests side by side');
}

/**
 * Two workers: `slowUrl` on the first, 300 ms on the second; a request sent ahead to the first
 * worker, behind the slow run, is taken back after 20 ms and runs on the second once it frees.
 */
async function takenBackFromFirstWorker(slowUrl: string, slowText: string): Promise<void> {
  const { instance } = await light({ concurrency: 4, maxWorkers: 2 });
  await bothWorkersUp(instance);
  // An answer can come before its worker's 'done': once both are idle, the slow run takes the
  // first worker, the shorter one the second, and the request sent ahead goes behind the first.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const slow = answer(instance, slowUrl, ahead());
  const shorter = answer(instance, '/sleep?ms=300', ahead());
  const quick = await answer(instance, '/log', ahead());
  assert.equal(quick.text, 'logged');
  assert.ok(quick.ms < 2_000, `the request waited ${Math.round(quick.ms)} ms, behind the slow run`);
  assert.equal((await shorter).text, 'slept 300');
  assert.equal((await slow).text, slowText);
  // A request with a body is never sent ahead: it needs a worker free, and gets one.
  assert.equal((await answer(instance, '/echo', { method: 'POST', body: 'free', ...ahead() })).text, 'free');
}

describe('component requests sent ahead', () => {
  test('component requests sent ahead — 30 at once on one worker each run once, and most wait in the worker, not here', async () => {
    const { instance } = await light({ concurrency: 4, maxWorkers: 1 });
    const answers = await Promise.all(Array.from({ length: 30 }, () => answer(instance, '/count', ahead())));
    const counts = answers.map((a) => Number(a.text)).sort((a, b) => a - b);
    assert.deepEqual(counts, Array.from({ length: 30 }, (_, i) => i + 1), 'each request ran once, on the one instance');
    const stats = instance.stats;
    assert.ok(stats.ranAhead >= 10, `only ${stats.ranAhead} of 30 started straight after the run before them`);
    assert.equal(stats.replaced, 0);
  });

  test('component requests sent ahead — a request without a deadline, or with a body, waits here instead', async () => {
    const { instance } = await light({ concurrency: 4, maxWorkers: 1 });
    const plain = Array.from({ length: 6 }, () => answer(instance, '/count'));
    const bodies = Array.from({ length: 6 }, (_, i) => answer(instance, '/echo', { method: 'POST', body: `b${i}`, ...ahead() }));
    const texts = (await Promise.all([...plain, ...bodies])).map((a) => a.text);
    assert.deepEqual(texts.slice(0, 6).map(Number).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(texts.slice(6), ['b0', 'b1', 'b2', 'b3', 'b4', 'b5']);
    assert.equal(instance.stats.ranAhead, 0);
  });

  test('component requests sent ahead — one behind a run that waits is taken back and served by a worker that frees first', () =>
    takenBackFromFirstWorker('/sleep?ms=4000', 'slept 4000'));

  test('component requests sent ahead — one behind a run that computes without waiting is taken back too (shared memory, not a message)', () =>
    takenBackFromFirstWorker('/busy?ms=3000', 'busy true'));

  test('component requests sent ahead — handleAhead takes one behind a young run, and gives it back (SentBack) once that run is slow', async () => {
    const { instance } = await light({ concurrency: 4, maxWorkers: 1 });
    assert.equal(instance.handleAhead(withDeadline({ url: '/count' })), undefined, 'no run to go behind');
    // handle() sends the run at once: it has just started when handleAhead is asked.
    const slow = answer(instance, '/sleep?ms=1000', ahead());
    assert.equal(instance.handleAhead(withDeadline({ method: 'POST', url: '/echo', body: 'x' })), undefined, 'a request with a body');
    const taken = instance.handleAhead(withDeadline({ url: '/count' }));
    assert.ok(taken, 'a request without a body, behind a run just started');
    await assert.rejects(taken, (err: unknown) => err instanceof SentBack);
    assert.equal((await slow).text, 'slept 1000');
    assert.equal((await answer(instance, '/count', ahead())).text, '1', 'the request given back never ran');
  });

  test('component requests sent ahead — one given up before it starts never runs', async () => {
    const { instance } = await light({ concurrency: 4, maxWorkers: 1 });
    const slow = answer(instance, '/sleep?ms=1000', ahead());
    const controller = new AbortController();
    const given = instance.handle(withDeadline({ url: '/count', signal: controller.signal }));
    setTimeout(() => controller.abort(), 5);
    await assert.rejects(given, (err: unknown) => err instanceof LamplighterError && /went away/.test(err.message));
    assert.equal((await slow).text, 'slept 1000');
    assert.equal((await answer(instance, '/count', ahead())).text, '1', 'the request given up never ran');
  });

  test('component requests sent ahead — one behind a runaway is taken back, and runs on the worker that replaces it', async () => {
    const { instance, log } = await light({ concurrency: 4, maxWorkers: 1, timeout: '1s' });
    const spinning = instance.handle(makeInvocationRequest({ url: '/spin' }));
    const behind = answer(instance, '/count', ahead());
    await assert.rejects(spinning, (err: unknown) => err instanceof LamplighterError && err.code === 'LL_TIMEOUT');
    const after = await behind;
    assert.equal(after.status, 200);
    assert.equal(after.text, '1', 'it ran once, on a new instance');
    assert.match(log.text(), /worker stopped/);
  });
});
