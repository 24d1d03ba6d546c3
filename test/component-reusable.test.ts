// A JS handler built with `lamplighter build --isolation instance` (test/fixtures/component/echo.ts):
// one instance answers request after request, and keeps its state between them.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LamplighterError } from '../src/errors/index.js';
import { createComponentFactory, prepareComponent, type ComponentInstance, type PreparedComponent } from '../src/runtime/component/index.js';
import { buildFixtureComponent, COMPONENT_REQUEST_MS, componentSpec, LitComponents, sendTo, type ComponentSpecOptions, type MemoryLog } from './component-helpers.js';
import { makeInvocationRequest, readBody, runInstanceConformance, withTimeout } from './instance-conformance.js';

let preparedOnce: Promise<PreparedComponent> | undefined;

/** The echo fixture built for reuse, transpiled once for this file. */
function reusableEcho(): Promise<PreparedComponent> {
  preparedOnce ??= (async () => prepareComponent(await buildFixtureComponent('echo.ts', 'instance'), componentSpec()))();
  return preparedOnce;
}

const lit = new LitComponents();

/** An instance of the echo built for reuse, under isolation "instance" unless `options` says otherwise. */
async function light(options: ComponentSpecOptions = {}): Promise<{ instance: ComponentInstance; log: MemoryLog }> {
  return lit.light(await reusableEcho(), componentSpec({ isolation: 'instance', ...options }));
}

before(async () => {
  await reusableEcho();
});

after(() => lit.close());

runInstanceConformance({
  name: 'component built for reuse, isolation "instance",',
  createFactory: async () => createComponentFactory(await reusableEcho(), componentSpec({ isolation: 'instance' }), { log: () => undefined }),
  timeoutMs: 60_000,
});

describe('component built for reuse', () => {
  test('component built for reuse — "instance" is allowed, and one instance keeps its globals from request to request', async () => {
    const { instance } = await light();
    const counts: string[] = [];
    for (let i = 0; i < 5; i++) counts.push((await sendTo(instance, '/count')).text);
    assert.deepEqual(counts, ['1', '2', '3', '4', '5']);
    assert.equal(instance.stats?.replaced, 0);
  });

  test('component built for reuse — after max_reuse requests the instance starts over as new', async () => {
    const { instance } = await light({ maxReuse: 3 });
    const counts: string[] = [];
    for (let i = 0; i < 7; i++) counts.push((await sendTo(instance, '/count')).text);
    assert.deepEqual(counts, ['1', '2', '3', '1', '2', '3', '1']);
  });

  test('component built for reuse — under isolation "request" each request sees it as new, restored, and leaves no handle open', async () => {
    const { instance } = await light({ isolation: 'request' });
    const counts = new Set<string>();
    for (let i = 0; i < 30; i++) counts.add((await sendTo(instance, i % 2 === 0 ? '/count' : '/x', i % 2 === 0 ? {} : { method: 'POST', body: 'abc' })).text);
    counts.delete('abc');
    // One more request, so that the stats count the restore after the last of them.
    assert.equal((await sendTo(instance, '/count')).text, '1');
    assert.deepEqual([...counts], ['1']);
    assert.equal(instance.stats?.replaced, 0);
    assert.ok((instance.stats?.restored ?? 0) >= 29);
    assert.equal(instance.stats?.leftHandles, 0, 'every request dropped the handles it opened');
  });

  test('component built for reuse — 500 requests in turn on one instance keep no handles and need no new instance', { timeout: 120_000 }, async () => {
    // Restores after every 100th count the handles those requests left open.
    const { instance } = await light({ maxReuse: 100 });
    for (let i = 1; i <= 500; i++) {
      const { status, text } = await sendTo(instance, `/x?n=${i}`, { method: 'POST', body: `body ${i}` });
      assert.equal(status, 200);
      assert.equal(text, `body ${i}`);
    }
    assert.equal((await sendTo(instance, '/count')).text, '1');
    assert.equal(instance.stats?.instantiated, 1, 'one instance served them all');
    assert.equal(instance.stats?.replaced, 0);
    assert.equal(instance.stats?.restored, 5);
    assert.equal(instance.stats?.leftHandles, 0);
  });

  test('component built for reuse — every way a response can go wrong leaves no handle open', { timeout: 120_000 }, async () => {
    // The restore after the seventh request counts what the seven left open.
    const { instance, log } = await light({ maxReuse: 7 });
    const head = await sendTo(instance, '/echo', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal((await sendTo(instance, '/bad-header')).status, 500, 'a header value that is not bytes is a 500');
    assert.equal((await sendTo(instance, '/throw')).status, 500);
    await assert.rejects(sendTo(instance, '/no-response'), (err: unknown) => err instanceof LamplighterError && err.code === 'LL_BAD_HANDLER_RESPONSE');
    await assert.rejects(sendTo(instance, '/broken-stream'), 'a body that breaks off fails, rather than ending as if whole');
    assert.equal((await sendTo(instance, '/echo', { method: 'POST', body: 'after' })).text, 'after');
    assert.equal((await sendTo(instance, '/echo', { method: 'POST', body: 'again' })).text, 'again');
    await sendTo(instance, '/count');
    await sendTo(instance, '/count');
    await sleep(50);
    assert.match(log.text(), /Cannot convert JS string into byte string/);
    assert.match(log.text(), /the body broke off on purpose/);
    assert.equal(instance.stats?.replaced, 0);
    assert.equal(instance.stats?.restored, 1);
    // The engine keeps the streams it logs to for an instance's life, however many lines: the same
    // count as an instance that served one request that logged, and each of the seven requests
    // leaking a handle would add to it.
    const { instance: baseline } = await light({ maxReuse: 1 });
    assert.equal((await sendTo(baseline, '/throw')).status, 500);
    await sendTo(baseline, '/count');
    assert.equal(baseline.stats?.restored, 1);
    assert.equal(instance.stats?.leftHandles, baseline.stats?.leftHandles, 'handles left open beyond what the engine keeps for logging');
  });

  test('component built for reuse — an entry of another version is not trusted with "instance"', async () => {
    const built = await buildFixtureComponent('echo.ts', 'instance');
    const marker = Buffer.from('incoming-handler/1');
    const at = Buffer.from(built).lastIndexOf(marker);
    assert.ok(at > 0, 'the build carries its entry section');
    const other = Uint8Array.from(built);
    other.set(Buffer.from('incoming-handler/9'), at);
    const prepared = await prepareComponent(other, componentSpec());
    assert.throws(
      () => createComponentFactory(prepared, componentSpec({ isolation: 'instance' }), { log: () => undefined }),
      (err: unknown) => err instanceof LamplighterError && err.code === 'LL_MANIFEST_INVALID' && /Build it with "lamplighter build --isolation instance"/.test(err.message),
    );
  });

  test('component built for reuse — a small response reaches the caller whole, and a request without a body is not waited for', async () => {
    const { instance } = await light();
    // Head, body and end come from the worker in one batch unless the thread is held up for a
    // millisecond between them, which a loaded machine may do now and then: one whole answer in
    // ten shows the path is taken.
    let whole = 0;
    for (let i = 1; i <= 10; i++) {
      const response = await withTimeout(instance.handle(makeInvocationRequest({ url: '/count' })), COMPONENT_REQUEST_MS, 'GET');
      if (Buffer.isBuffer(response.body)) whole++;
      assert.equal((await readBody(response)).toString(), String(i));
    }
    assert.ok(whole >= 1, `no answer of ten came whole (${whole})`);
    // Neither length nor transfer-encoding, or a length of 0: the handler reads an empty body at once.
    assert.equal((await sendTo(instance, '/echo', { method: 'POST' })).text, '');
    assert.equal((await sendTo(instance, '/echo', { method: 'POST', headers: { 'content-length': '0' } })).text, '');
    assert.equal((await sendTo(instance, '/echo', { method: 'POST', body: 'after' })).text, 'after');
  });

  test('component built for reuse — a body that breaks off in the batch of its head is an error, not a head with a broken body', async () => {
    const { instance } = await light();
    let upFront = 0;
    for (let i = 0; i < 5; i++) {
      try {
        const response = await withTimeout(instance.handle(makeInvocationRequest({ url: '/broken-stream' })), COMPONENT_REQUEST_MS, 'GET');
        // Held up between head and failure (see above): then the body breaks, as it must.
        await assert.rejects(readBody(response));
      } catch (err) {
        assert.ok(err instanceof LamplighterError && err.code === 'LL_BAD_HANDLER_RESPONSE', `unexpected ${String(err)}`);
        assert.match(err.message, /sent an incomplete response/);
        upFront++;
      }
    }
    assert.ok(upFront >= 1, 'no broken response of five was refused before its head');
  });

  test('component built for reuse — a request body streams through, byte for byte, with its headers', async () => {
    const { instance } = await light();
    const payload = randomBytes(700 * 1024);
    const { status, body, headers } = await sendTo(instance, '/echo?a=1&b=2', { method: 'PUT', body: payload, headers: { 'x-test': 'caf\u00e9 latin-1' } });
    assert.equal(status, 200);
    assert.ok(body.equals(payload));
    assert.equal(headers['x-echo-method'], 'PUT');
    assert.equal(headers['x-echo-query'], 'a=1&b=2');
    assert.equal(headers['x-echo-header'], 'caf\u00e9 latin-1');
  });

  test('component built for reuse — a response body made of chunks streams out whole', async () => {
    const { instance } = await light();
    const { status, body } = await sendTo(instance, '/stream?bytes=1000000');
    assert.equal(status, 200);
    assert.equal(body.length, 1_000_000);
    assert.ok(body.every((b) => b === 0x61));
  });

  test('component built for reuse — a handler that throws gets 500 with the error logged, and the instance serves on', async () => {
    const { instance, log } = await light();
    assert.equal((await sendTo(instance, '/count')).text, '1');
    assert.equal((await sendTo(instance, '/throw')).status, 500);
    await sleep(50);
    assert.match(log.text(), /handler threw on purpose/);
    assert.equal((await sendTo(instance, '/count')).text, '2', 'the same instance, its state kept');
  });

  test('component built for reuse — no Response is the JSON error of a bad handler response', async () => {
    const { instance } = await light();
    await assert.rejects(sendTo(instance, '/no-response'), (err: unknown) => err instanceof LamplighterError && err.code === 'LL_BAD_HANDLER_RESPONSE' && /fetch\(\) gave undefined, not a Response/.test(err.message));
    assert.equal((await sendTo(instance, '/echo', { method: 'POST', body: 'after' })).text, 'after');
  });

  test('component built for reuse — waitUntil work runs after the response, and env and timers work', async () => {
    const { instance, log } = await light({ env: { GREETING: 'hi' } });
    assert.equal((await sendTo(instance, '/wait')).text, 'answered');
    assert.doesNotMatch(log.text(), /waited until after the response/, 'the answer came before the work it left');
    for (let i = 0; i < 100 && !/waited until after the response/.test(log.text()); i++) await sleep(50);
    assert.match(log.text(), /waited until after the response/);
    assert.deepEqual(JSON.parse((await sendTo(instance, '/env')).text), { GREETING: 'hi' });
    assert.equal((await sendTo(instance, '/sleep?ms=15')).text, 'slept 15');
    assert.equal((await sendTo(instance, '/sleep?ms=5')).text, 'slept 5');
  });

  test('component built for reuse — a trap replaces the instance, and the next request gets a new one', async () => {
    const { instance } = await light({ memory: '24MiB' });
    assert.equal((await sendTo(instance, '/count')).text, '1');
    assert.equal((await sendTo(instance, '/count')).text, '2');
    const oom = await sendTo(instance, '/oom?mb=64').catch((err: unknown) => ({ status: err instanceof LamplighterError ? err.status : 0 }));
    assert.equal(oom.status, 500);
    assert.equal((await sendTo(instance, '/count')).text, '1');
  });

  describe('outbound', () => {
    let upstream: http.Server;
    let port: number;
    before(async () => {
      upstream = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => res.end(`upstream saw ${req.method} ${req.url}`));
      });
      await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
      port = (upstream.address() as AddressInfo).port;
    });
    after(() => new Promise((resolve) => upstream.close(resolve)));

    test('component built for reuse — fetch() reaches an allowed host on request after request of one instance', async () => {
      const { instance } = await light({ allowedOutboundHosts: [`http://127.0.0.1:${port}`] });
      for (let i = 0; i < 3; i++) {
        const { text } = await sendTo(instance, `/outbound?url=${encodeURIComponent(`http://127.0.0.1:${port}/n${i}`)}`);
        assert.deepEqual(JSON.parse(text), { ok: true, status: 200, body: `upstream saw GET /n${i}` });
      }
      assert.equal(instance.stats?.replaced, 0);
    });
  });
});
