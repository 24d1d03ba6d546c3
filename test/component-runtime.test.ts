// Component runtime tests against a real componentize-js component built from test/fixtures/component/echo.ts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LamplighterError } from '../src/errors/index.js';
import type { Instance, InstanceFactory } from '../src/instance/index.js';
import { ComponentInstance, createComponentFactory, prepareComponent, WorkerBudget, type PreparedComponent } from '../src/runtime/component/index.js';
import { buildFixtureComponent, componentSpec, memoryLog, type ComponentSpecOptions } from './component-helpers.js';
import { headerOf, makeInvocationRequest, readBody, runInstanceConformance, withTimeout } from './instance-conformance.js';

/** Generous bound for one request on a busy two-core machine (a fresh instance each time). */
const REQUEST_MS = 20_000;

let preparedOnce: Promise<PreparedComponent> | undefined;

/** The echo fixture, built (or taken from the cache) and transpiled once for this file. */
function echoComponent(): Promise<PreparedComponent> {
  preparedOnce ??= (async () => prepareComponent(await buildFixtureComponent('echo.ts'), componentSpec()))();
  return preparedOnce;
}

interface Lit {
  factory: InstanceFactory;
  instance: Instance;
  log: ReturnType<typeof memoryLog>;
}

const lit: Lit[] = [];

async function light(options: ComponentSpecOptions = {}, maxWorkers?: number): Promise<Lit> {
  const log = memoryLog();
  const factory = createComponentFactory(await echoComponent(), componentSpec(options), { log: log.sink, maxWorkers });
  const instance = factory.create(`test-${lit.length + 1}`);
  const entry = { factory, instance, log };
  lit.push(entry);
  await withTimeout(instance.ready, REQUEST_MS, 'ready');
  return entry;
}

async function get(instance: Instance, url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const response = await withTimeout(instance.handle(makeInvocationRequest({ url, headers })), REQUEST_MS, `GET ${url}`);
  return { status: response.status, text: (await readBody(response)).toString('utf8') };
}

after(async () => {
  for (const { instance, factory } of lit) {
    await instance.stop();
    await factory.close();
  }
});

runInstanceConformance({
  name: 'component (componentize-js)',
  createFactory: async () => createComponentFactory(await echoComponent(), componentSpec(), { log: () => undefined }),
  timeoutMs: 60_000,
});

describe('component runtime — requests', () => {
  let instance: Instance;
  before(async () => {
    ({ instance } = await light({ concurrency: 2 }));
  });

  test('component instance — answers its 2nd, 100th and 1,000th request', { timeout: 300_000 }, async () => {
    const answered: number[] = [];
    const started = Date.now();
    for (let n = 1; n <= 1000; n += 2) {
      assert.ok(Date.now() - started < 280_000, `1,000 requests took over 280 s (at ${n})`);
      const pair = [n, n + 1].map(async (i) => {
        const response = await instance.handle(makeInvocationRequest({ url: `/echo?n=${i}`, method: 'POST', body: `body ${i}` }));
        assert.equal(response.status, 200);
        assert.equal(headerOf(response, 'x-echo-query'), `n=${i}`);
        assert.equal((await readBody(response)).toString(), `body ${i}`);
        if (i === 2 || i === 100 || i === 1000) answered.push(i);
      });
      await withTimeout(Promise.all(pair), REQUEST_MS, `requests ${n} and ${n + 1}`);
    }
    assert.deepEqual(answered.sort((a, b) => a - b), [2, 100, 1000]);
  });

  test('component instance — 50 requests at once are all answered', { timeout: 120_000 }, async () => {
    const all = Array.from({ length: 50 }, async (_, i) => {
      const payload = randomBytes(64 + i);
      const response = await instance.handle(makeInvocationRequest({ method: 'PUT', url: `/echo?i=${i}`, headers: { 'x-test': `t${i}` }, body: payload }));
      assert.equal(response.status, 200);
      assert.equal(headerOf(response, 'x-echo-header'), `t${i}`);
      assert.ok((await readBody(response)).equals(payload));
    });
    await withTimeout(Promise.all(all), 110_000, '50 concurrent requests');
  });

  test('component instance — runs no more worker threads than maxWorkers; the rest of its concurrency queues', async () => {
    const { instance: capped } = await light({ concurrency: 50 }, 2);
    assert.ok(capped instanceof ComponentInstance);
    let most = 0;
    const all = Array.from({ length: 12 }, async (_, i) => {
      const response = await capped.handle(makeInvocationRequest({ url: `/sleep?ms=20&i=${i}` }));
      most = Math.max(most, capped.workers);
      assert.equal((await readBody(response)).toString(), 'slept 20');
    });
    await withTimeout(Promise.all(all), 60_000, '12 requests on 2 workers');
    assert.ok(most >= 1 && most <= 2, `saw ${most} workers`);
  });

  test('component instance — the node budget caps the workers of all its component functions; each keeps its first', async () => {
    const budget = new WorkerBudget(3);
    const prepared = await echoComponent();
    const make = (name: string): { factory: InstanceFactory; instance: ComponentInstance } => {
      const factory = createComponentFactory(prepared, componentSpec({ name, concurrency: 50 }), { log: () => undefined, maxWorkers: 4, workerBudget: budget, standby: false });
      const instance = factory.create(`${name}-1`) as ComponentInstance;
      lit.push({ factory, instance, log: memoryLog() });
      return { factory, instance };
    };
    const a = make('a');
    const b = make('b');
    await withTimeout(Promise.all([a.instance.ready, b.instance.ready]), REQUEST_MS, 'ready');
    assert.equal(budget.live, 2);
    let most = 0;
    const all = Array.from({ length: 12 }, async (_, i) => {
      const response = await a.instance.handle(makeInvocationRequest({ url: `/sleep?ms=40&i=${i}` }));
      most = Math.max(most, a.instance.workers);
      assert.equal((await readBody(response)).toString(), 'slept 40');
    });
    // While a is busy b still answers on its own first worker, and there is no room to light more.
    // Checked as soon as a has its second worker: a run older than SLOW_RUN_MS (a cold worker's
    // first) would leave the count, and rightly so.
    for (let i = 0; i < 100 && a.instance.workers < 2; i++) await sleep(5);
    assert.equal(a.factory.roomToLight?.(), false, 'the budget is spent');
    assert.deepEqual(await get(b.instance, '/count'), { status: 200, text: '1' });
    await withTimeout(Promise.all(all), 60_000, '12 requests within the budget');
    assert.equal(most, 2, `a ran ${most} workers: its share of a budget of 3 beside b's one`);
    assert.ok(budget.live <= 3, `${budget.live} workers live`);
  });

  test('component instance — a request given up while it waits for a worker is never sent to one; the worker stays', async () => {
    const { instance: one } = await light({ concurrency: 4 }, 1);
    assert.ok(one instanceof ComponentInstance);
    const [thread] = one.workerThreadIds;
    const busy = one.handle(makeInvocationRequest({ url: '/sleep?ms=300' }));
    const leaving = new AbortController();
    const queued = one.handle(makeInvocationRequest({ url: '/count', signal: leaving.signal }));
    queued.catch(() => undefined);
    await sleep(50);
    leaving.abort();
    assert.equal((await readBody(await busy)).toString(), 'slept 300');
    // Given up by its client (no reason given): the error a client that leaves gets everywhere.
    await assert.rejects(queued, (err: LamplighterError) => err.code === 'LL_BAD_REQUEST' && /client went away before the response was complete/.test(err.message));
    assert.deepEqual(await get(one, '/count'), { status: 200, text: '1' });
    assert.deepEqual(one.workerThreadIds, [thread], 'the same worker, not replaced');
    assert.equal(one.stats.requests, 2, 'the worker ran the sleep and the last request only');
  });

  test('component instance — an idle worker past the first gives its share up when another function needs one, and is kept otherwise', async () => {
    // Room for a's two workers, then for b's first beside them: b's second must come from a.
    const budget = new WorkerBudget(3);
    const prepared = await echoComponent();
    const make = (name: string): ComponentInstance => {
      const factory = createComponentFactory(prepared, componentSpec({ name, concurrency: 4 }), { log: () => undefined, maxWorkers: 2, workerBudget: budget, standby: false });
      const instance = factory.create(`${name}-1`) as ComponentInstance;
      lit.push({ factory, instance, log: memoryLog() });
      return instance;
    };
    const burst = (instance: ComponentInstance): Promise<unknown> =>
      Promise.all(Array.from({ length: 4 }, async (_, i) => readBody(await instance.handle(makeInvocationRequest({ url: `/sleep?ms=40&i=${i}` })))));
    const a = make('was-busy');
    await withTimeout(a.ready, REQUEST_MS, 'ready');
    await burst(a);
    assert.equal(a.workers, 2, 'two workers while busy');
    await sleep(300);
    assert.equal(a.workers, 2, 'idle, and nobody needs its share: kept warm for the next burst');
    const b = make('busy-now');
    await withTimeout(b.ready, REQUEST_MS, 'ready');
    assert.equal(budget.full, true, "a's two and b's first spend the budget");
    let most = 0;
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const response = await b.handle(makeInvocationRequest({ url: `/sleep?ms=40&i=${i}` }));
        most = Math.max(most, b.workers);
        await readBody(response);
      }),
    );
    assert.equal(most, 2, 'the busy function got a second worker');
    assert.equal(a.workers, 1, 'the idle one gave its extra worker up; its first stays');
    assert.deepEqual(await get(a, '/count'), { status: 200, text: '1' });
  });

  test('component instance — every request gets a fresh component instance', async () => {
    for (let i = 0; i < 3; i++) assert.deepEqual(await get(instance, '/count'), { status: 200, text: '1' });
  });

  test('component instance — a request body streams to the handler and back before the upload ends', async () => {
    const upload = new Readable({ read() {} });
    const request = makeInvocationRequest({ method: 'POST', url: '/echo', headers: { 'transfer-encoding': 'chunked' } });
    const response = await withTimeout(instance.handle({ ...request, body: upload }), REQUEST_MS, 'streaming POST');
    upload.push(Buffer.from('first chunk;'));
    assert.equal(response.status, 200);
    const body = response.body as Readable;
    const first = await withTimeout(new Promise<Buffer>((resolve) => body.once('data', resolve)), REQUEST_MS, 'first echoed chunk');
    assert.equal(first.toString(), 'first chunk;');
    const rest: Buffer[] = [];
    body.on('data', (chunk: Buffer) => rest.push(chunk));
    const ended = new Promise((resolve) => body.once('end', resolve));
    upload.push(Buffer.from('second chunk'));
    upload.push(null);
    await withTimeout(ended, REQUEST_MS, 'end of echoed body');
    assert.equal(Buffer.concat(rest).toString(), 'second chunk');
  });

  test('component instance — a 16 MiB streamed response arrives whole', { timeout: 60_000 }, async () => {
    const size = 16 * 1024 * 1024;
    const response = await withTimeout(instance.handle(makeInvocationRequest({ url: `/stream?bytes=${size}` })), REQUEST_MS, 'stream');
    assert.equal(response.status, 200);
    let total = 0;
    let chunks = 0;
    for await (const chunk of response.body as Readable) {
      total += (chunk as Buffer).length;
      chunks++;
    }
    assert.equal(total, size);
    assert.ok(chunks > 16, `expected the body in many chunks, got ${chunks}`);
  });

  test('component instance — a handler that waits on a timer is answered', async () => {
    assert.deepEqual(await get(instance, '/sleep?ms=50'), { status: 200, text: 'slept 50' });
  });
});

describe('component runtime — environment and logs', () => {
  test('component instance — sees the manifest env and none of the host env', async () => {
    process.env.LAMPLIGHTER_TEST_HOST_SECRET = 'must-not-leak';
    try {
      const { instance } = await light({ env: { GREETING: 'hi', EMPTY: '' } });
      const { status, text } = await get(instance, '/env');
      assert.equal(status, 200);
      assert.deepEqual(JSON.parse(text), { GREETING: 'hi', EMPTY: '' });
    } finally {
      delete process.env.LAMPLIGHTER_TEST_HOST_SECRET;
    }
  });

  test('component instance — stdout and stderr go to the function log, a line at a time', async () => {
    const { instance, log } = await light();
    assert.deepEqual(await get(instance, '/log'), { status: 200, text: 'logged' });
    await sleep(50);
    assert.ok(log.lines.some((l) => l.stream === 'stdout' && l.text === 'hello from stdout\n'), log.text());
    assert.ok(log.lines.some((l) => l.stream === 'stderr' && l.text === 'hello from stderr\n'), log.text());
  });

  test('component instance — an exception in the handler is a 500 from the engine, the error in the log', async () => {
    const { instance, log } = await light();
    const { status } = await get(instance, '/throw');
    assert.equal(status, 500);
    await sleep(50);
    assert.match(log.text(), /handler threw on purpose/);
    assert.deepEqual(await get(instance, '/echo'), { status: 200, text: '' });
  });
});

describe('component runtime — outbound HTTP', () => {
  let upstream: http.Server;
  let port: number;
  before(async () => {
    upstream = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`upstream saw ${req.method} ${req.url}${body.length > 0 ? ` with ${body.length} bytes ending ${body.subarray(-4).toString()}` : ''}`);
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    port = (upstream.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((resolve) => upstream.close(resolve));
  });

  test('component instance — outbound requests are denied by default, with an error the handler sees', async () => {
    const { instance, log } = await light();
    const { status, text } = await get(instance, `/outbound?url=${encodeURIComponent(`http://127.0.0.1:${port}/x`)}`);
    assert.equal(status, 200);
    const result = JSON.parse(text) as { ok: boolean; error?: string };
    assert.equal(result.ok, false);
    assert.ok(result.error && result.error.length > 0);
    assert.match(log.text(), /denied: not in allowed_outbound_hosts/);
  });

  test('component instance — an allowed host is reached and its answer read', async () => {
    const { instance } = await light({ allowedOutboundHosts: [`http://127.0.0.1:${port}`] });
    const { text } = await get(instance, `/outbound?url=${encodeURIComponent(`http://127.0.0.1:${port}/hello?a=1`)}`);
    assert.deepEqual(JSON.parse(text), { ok: true, status: 200, body: 'upstream saw GET /hello?a=1' });
  });

  test('component instance — an outbound request body streams to the upstream', async () => {
    const { instance } = await light({ allowedOutboundHosts: [`http://127.0.0.1:${port}`] });
    const payload = Buffer.concat([randomBytes(700 * 1024), Buffer.from('TAIL')]);
    const url = `/outbound?method=POST&url=${encodeURIComponent(`http://127.0.0.1:${port}/upload`)}`;
    const response = await withTimeout(instance.handle(makeInvocationRequest({ method: 'POST', url, body: payload })), REQUEST_MS, 'outbound POST');
    assert.deepEqual(JSON.parse((await readBody(response)).toString()), {
      ok: true,
      status: 200,
      body: `upstream saw POST /upload with ${payload.length} bytes ending TAIL`,
    });
  });

  test('component instance — a wildcard port does not open other hosts', async () => {
    const { instance } = await light({ allowedOutboundHosts: ['http://localhost:*'] });
    const allowed = JSON.parse((await get(instance, `/outbound?url=${encodeURIComponent(`http://localhost:${port}/y`)}`)).text) as { ok: boolean };
    assert.equal(allowed.ok, true);
    const denied = JSON.parse((await get(instance, `/outbound?url=${encodeURIComponent(`http://127.0.0.1:${port}/y`)}`)).text) as { ok: boolean };
    assert.equal(denied.ok, false);
  });
});

describe('component runtime — deadlines', () => {
  test('component instance — a runaway handler is stopped at limits.timeout with 504; only that request fails', { timeout: 60_000 }, async () => {
    const { instance, log } = await light({ timeout: '1500ms' });
    const started = Date.now();
    const runaway = instance.handle(makeInvocationRequest({ url: '/spin' }));
    const bystander = instance.handle(makeInvocationRequest({ url: '/echo?after=spin', method: 'POST', body: 'still here' }));
    await assert.rejects(withTimeout(runaway, REQUEST_MS, 'runaway'), (err: unknown) => {
      assert.ok(err instanceof LamplighterError);
      assert.equal(err.code, 'LL_TIMEOUT');
      assert.equal(err.status, 504);
      return true;
    });
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1400 && elapsed < 15_000, `stopped after ${elapsed} ms`);
    const response = await withTimeout(bystander, REQUEST_MS, 'bystander');
    assert.equal(response.status, 200);
    assert.equal((await readBody(response)).toString(), 'still here');
    assert.deepEqual(await get(instance, '/echo'), { status: 200, text: '' });
    assert.equal(instance.state, 'ready');
    assert.match(log.text(), /timeout: request .* worker stopped/);
  });

  test('component instance — the request deadline from the gateway wins over limits.timeout', async () => {
    const { instance } = await light({ timeout: '30s' });
    const request = makeInvocationRequest({ url: '/spin' });
    const started = Date.now();
    await assert.rejects(instance.handle({ ...request, deadline: performance.now() + 500 }), (err: unknown) => {
      assert.ok(err instanceof LamplighterError);
      assert.equal(err.code, 'LL_TIMEOUT');
      return true;
    });
    assert.ok(Date.now() - started < 10_000);
    assert.deepEqual(await get(instance, '/echo'), { status: 200, text: '' });
  });

  test('component instance — a client that leaves stops its handler', async () => {
    const { instance } = await light({ timeout: '30s' });
    const controller = new AbortController();
    const pending = instance.handle(makeInvocationRequest({ url: '/spin', signal: controller.signal }));
    await sleep(300);
    controller.abort();
    await assert.rejects(withTimeout(pending, REQUEST_MS, 'aborted request'), LamplighterError);
    assert.deepEqual(await get(instance, '/echo'), { status: 200, text: '' });
  });
});

describe('component runtime — memory', () => {
  // 256 MiB: four times limits.memory below, a sixteenth of what a wasm32 memory may grow to.
  const OOM = '/oom?mb=256';

  test('component instance — a handler that allocates past limits.memory fails alone', { timeout: 60_000 }, async () => {
    const { instance } = await light({ memory: '64MiB' });
    const outcome = await instance.handle(makeInvocationRequest({ url: OOM })).then(
      async (response) => {
        // The engine may start a 500 before it runs out of room to finish it.
        await readBody(response).catch(() => undefined);
        return response.status;
      },
      (err: unknown) => (err instanceof LamplighterError ? err.status : 0),
    );
    assert.ok(outcome >= 500, `expected a 5xx, got ${outcome}`);
    assert.deepEqual(await get(instance, '/echo'), { status: 200, text: '' });
  });

  test('component instance — the same allocation succeeds under a limit above it (the machine allows it)', { timeout: 60_000 }, async () => {
    const { instance } = await light({ memory: '512MiB' });
    assert.deepEqual(await get(instance, OOM), { status: 200, text: '256' });
  });
});
