// Tests of the load runner against real loopback servers: counts, durations, samples and error kinds.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LamplighterError } from '../src/errors/index.js';
import { classifyError, runLoad, type LoadSample } from '../src/loadgen/index.js';
import { ManualClock, type ClockTimer } from '../src/runtime/process/index.js';
import { refusedPort, startServer, type TestServer } from './loadgen-servers.js';

/** A manual clock whose timers fire early: by 0.9 ms, or half their delay when that is less. */
class EarlyClock extends ManualClock {
  override setTimeout(callback: () => void, ms: number): ClockTimer {
    return super.setTimeout(callback, ms - Math.min(0.9, ms / 2));
  }
}

describe('load runner', { timeout: 60_000 }, () => {
  const servers: TestServer[] = [];
  let hello: TestServer;
  let failing: TestServer;
  let mixed: TestServer;
  let silent: TestServer;
  let echo: TestServer;
  // Timed tests use a server that holds each request 10 ms, so they do not load the machine flat out
  // and their timers are not held up by the load they generate.
  let paced: TestServer;

  before(async () => {
    hello = await startServer();
    failing = await startServer({ status: 500 });
    mixed = await startServer({ status: (n) => (n % 2 === 0 ? 200 : 404) });
    silent = await startServer({ silent: true });
    echo = await startServer();
    paced = await startServer({ holdMs: 10 });
    servers.push(hello, failing, mixed, silent, echo, paced);
  });

  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  test('runLoad — -n sends exactly that many requests', async () => {
    const before = hello.count();
    const result = await runLoad(hello.url, { requests: 137, concurrency: 8 });
    assert.equal(result.requests, 137);
    assert.equal(hello.count() - before, 137);
    assert.deepEqual(result.errors, {});
    assert.ok(result.latency.p50 !== null && result.latency.p50 > 0);
    assert.ok((result.latency.max ?? 0) >= (result.latency.p99 ?? 0));
    assert.ok((result.latency.p99 ?? 0) >= (result.latency.p90 ?? 0));
    assert.ok((result.latency.p90 ?? 0) >= (result.latency.p50 ?? 0));
  });

  test('runLoad — -n below the concurrency sends only n requests', async () => {
    const before = hello.count();
    const result = await runLoad(hello.url, { requests: 3, concurrency: 10 });
    assert.equal(result.requests, 3);
    assert.equal(hello.count() - before, 3);
    assert.equal(result.samples.length, 1);
  });

  test('runLoad — -d runs for the duration and stops sending', async () => {
    const started = performance.now();
    const result = await runLoad(paced.url, { durationMs: 1300, concurrency: 4 });
    const took = performance.now() - started;
    assert.ok(result.durationMs >= 1290 && result.durationMs < 2000, `run lasted ${result.durationMs} ms`);
    assert.ok(took < 3000, `returned after ${took} ms`);
    assert.ok(result.requests > 0);
    const settled = paced.count();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(paced.count(), settled, 'no requests after the end of the run');
  });

  test('runLoad — takes one requests/s sample a second', async () => {
    const seen: LoadSample[] = [];
    const result = await runLoad(paced.url, { durationMs: 3000, concurrency: 2, onSample: (s) => seen.push(s) });
    assert.equal(result.samples.length, 3);
    assert.deepEqual(
      seen.map((s) => s.index),
      [0, 1, 2],
    );
    seen.forEach((s, i) => {
      assert.ok(Math.abs(s.elapsedMs - (i + 1) * 1000) < 250, `sample ${i} at ${s.elapsedMs} ms`);
      assert.ok(s.rps > 0);
      assert.equal(s.rps, result.samples[i]);
    });
    const sum = result.samples.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(result.rps.mean - sum / 3) < 1e-9);
    assert.ok(result.rps.median >= Math.min(...result.samples) && result.rps.median <= Math.max(...result.samples));
  });

  test('runLoad — drops a last sample shorter than half an interval', async () => {
    const result = await runLoad(paced.url, { durationMs: 1100, concurrency: 2, sampleIntervalMs: 1000 });
    assert.equal(result.samples.length, 1, `samples ${result.samples} over ${result.durationMs} ms`);
    const longer = await runLoad(paced.url, { durationMs: 800, concurrency: 2, sampleIntervalMs: 500 });
    assert.equal(longer.samples.length, 2);
  });

  test('runLoad — a timer firing a little early adds no short sample', async () => {
    // Timers may fire up to a millisecond before the requested time by the high-resolution clock;
    // a deadline tick that came early used to be taken for a sample tick and add a tiny sample.
    // Every timer of this clock fires early, so the run meets the case on each tick whatever the
    // machine's load; the requests are real, the time is the test's.
    const clock = new EarlyClock();
    const at: number[] = [];
    let finished = false;
    const run = runLoad(paced.url, { durationMs: 220, concurrency: 2, sampleIntervalMs: 50, onSample: (s) => at.push(s.elapsedMs), clock });
    void run.finally(() => (finished = true));
    for (let step = 0; step < 1_000 && !finished; step++) {
      clock.advance(1);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const result = await run;
    assert.equal(result.samples.length, 4, `samples taken at ${at.join(', ')} ms`);
    at.forEach((ms, i) => assert.ok(Math.abs(ms - (i + 1) * 50) < 1, `samples taken at ${at.join(', ')} ms`));
    assert.ok(result.durationMs >= 219 && result.durationMs <= 221, `run lasted ${result.durationMs} ms`);
  });

  test('runLoad — a warm-up sends load first without counting it', async () => {
    const before = paced.count();
    const result = await runLoad(paced.url, { requests: 10, concurrency: 2, warmupMs: 200 });
    assert.equal(result.requests, 10);
    assert.ok(paced.count() - before > 10, 'the warm-up reached the server');
  });

  test('runLoad — opens one connection per request in flight, fewer when pipelining', async () => {
    const server = await startServer({ holdMs: 2 });
    servers.push(server);
    const plain = await runLoad(server.url, { requests: 40, concurrency: 4 });
    assert.equal(plain.requests, 40);
    assert.equal(server.connections(), 4);
    const piped = await runLoad(server.url, { requests: 40, concurrency: 4, pipelining: 2 });
    assert.equal(piped.requests, 40);
    assert.equal(server.connections(), 4 + 2);
  });

  test('runLoad — counts 5xx answers by status class', async () => {
    const result = await runLoad(failing.url, { requests: 40, concurrency: 4 });
    assert.equal(result.requests, 40);
    assert.deepEqual(result.errors, { '5xx': 40 });
  });

  test('runLoad — counts 4xx apart from successes', async () => {
    const result = await runLoad(mixed.url, { requests: 50, concurrency: 1 });
    assert.deepEqual(result.errors, { '4xx': 25 });
  });

  test('runLoad — counts refused connections as connect errors', async () => {
    const port = await refusedPort();
    const result = await runLoad(`http://127.0.0.1:${port}/`, { requests: 20, concurrency: 2 });
    assert.equal(result.requests, 0);
    assert.deepEqual(result.errors, { connect: 20 });
    assert.equal(result.latency.p50, null);
    assert.deepEqual(result.samples, [0]);
  });

  test('runLoad — counts unanswered requests as timeouts', async () => {
    const result = await runLoad(silent.url, { requests: 2, concurrency: 2, timeoutMs: 200 });
    assert.equal(result.requests, 0);
    assert.deepEqual(result.errors, { timeout: 2 });
  });

  test('runLoad — sends the method, headers and body given', async () => {
    await runLoad(echo.url + 'path?q=1', {
      requests: 1,
      method: 'POST',
      headers: [
        ['x-one', '1'],
        ['x-two', 'two'],
      ],
      body: '{"hello":"world"}',
    });
    const last = echo.last();
    assert.equal(last?.method, 'POST');
    assert.equal(last?.headers['x-one'], '1');
    assert.equal(last?.headers['x-two'], 'two');
    assert.equal(last?.body, '{"hello":"world"}');
  });

  test('runLoad — an abort signal ends the run early with what was measured', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const result = await runLoad(paced.url, { durationMs: 10_000, concurrency: 2, signal: controller.signal });
    assert.ok(result.durationMs < 2000, `run lasted ${result.durationMs} ms`);
    assert.ok(result.requests > 0);
  });

  test('runLoad — rejects a request undici refuses to build', async () => {
    await assert.rejects(runLoad(hello.url, { requests: 5, headers: [['x-bad', 'a\r\nb']] }), LamplighterError);
  });

  test('runLoad — rejects URLs and settings it cannot measure', async () => {
    await assert.rejects(runLoad('ftp://127.0.0.1/'), /only http: and https:/);
    await assert.rejects(runLoad('not a url'), /not a URL/);
    await assert.rejects(runLoad(hello.url, { concurrency: 0 }), /concurrency must be a positive integer/);
  });

  test('classifyError — sorts transport errors by code, also through causes', () => {
    const coded = (code: string) => Object.assign(new Error(code), { code });
    assert.equal(classifyError(coded('ECONNREFUSED')), 'connect');
    assert.equal(classifyError(coded('UND_ERR_CONNECT_TIMEOUT')), 'connect');
    assert.equal(classifyError(coded('UND_ERR_HEADERS_TIMEOUT')), 'timeout');
    assert.equal(classifyError(coded('UND_ERR_BODY_TIMEOUT')), 'timeout');
    assert.equal(classifyError(coded('ECONNRESET')), 'reset');
    assert.equal(classifyError(new Error('wrapped', { cause: coded('ECONNRESET') })), 'reset');
    assert.equal(classifyError(new Error('plain')), 'other');
  });
});
