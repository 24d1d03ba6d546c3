// Tests of the process runtime: the shared Instance conformance suite plus supervision, proxying and teardown.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { PlatformDefaults } from '../src/config/index.js';
import { ErrorCodes, LamplighterError } from '../src/errors/index.js';
import type { InvocationResponse } from '../src/instance/index.js';
import type { FunctionSpec } from '../src/manifest/index.js';
import {
  createProcessFactory,
  liveChildGroups,
  ManualClock,
  type ProcessFactory,
  type ProcessFactoryOptions,
  type ProcessInstance,
} from '../src/runtime/process/index.js';
import { headerOf, makeInvocationRequest, readBody, runInstanceConformance, withTimeout } from './instance-conformance.js';
import { cgroupV2Writable, isAlive } from './proc-helpers.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/process/', import.meta.url));
const NO_SUCH_COMMAND = 'lamplighter-no-such-command-xyz';
/** Generous bound for anything involving starting a real process on a busy machine. */
const SLOW = 20_000;

function processSpec(overrides: Partial<FunctionSpec> = {}): FunctionSpec {
  return {
    name: 'echo',
    runtime: 'process',
    source: undefined,
    command: ['node', 'echo-server.mjs'],
    cwd: undefined,
    routes: ['/...'],
    hosts: ['*'],
    env: {},
    argv: [],
    ready: '/healthz',
    startupTimeoutMs: 15_000,
    drainTimeoutMs: 5_000,
    allowedOutboundHosts: [],
    placeholder: undefined,
    limits: {
      memory: PlatformDefaults.memory,
      timeoutMs: PlatformDefaults.timeoutMs,
      concurrency: 4,
      maxPending: PlatformDefaults.maxPending,
      coldStartTimeoutMs: PlatformDefaults.coldStartTimeoutMs,
      responseBytes: PlatformDefaults.maxResponseBytes,
      bodyBytes: PlatformDefaults.maxBodyBytes,
    },
    scale: { min: 0, max: 5, idleMs: 30_000, target: undefined, rate: undefined, windowMs: 10_000 },
    ...overrides,
  };
}

/** Collects the lines a factory logs and waits for particular ones. */
class LogCapture {
  readonly lines: Array<{ stream: 'stdout' | 'stderr'; text: string }> = [];
  readonly sink = (stream: 'stdout' | 'stderr', text: string): void => {
    this.lines.push({ stream, text });
  };

  find(pattern: RegExp, stream?: 'stdout' | 'stderr'): RegExpExecArray | undefined {
    for (const line of this.lines) {
      if (stream !== undefined && line.stream !== stream) continue;
      const match = pattern.exec(line.text);
      if (match) return match;
    }
    return undefined;
  }

  async waitFor(pattern: RegExp, options: { stream?: 'stdout' | 'stderr'; timeoutMs?: number } = {}): Promise<RegExpExecArray> {
    const deadline = Date.now() + (options.timeoutMs ?? SLOW);
    while (Date.now() < deadline) {
      const match = this.find(pattern, options.stream);
      if (match) return match;
      await delay(20);
    }
    throw new Error(`no log line matched ${pattern} within ${options.timeoutMs ?? SLOW} ms; got:\n${this.lines.map((l) => `${l.stream}: ${l.text}`).join('\n')}`);
  }
}



async function waitForDeath(pid: number, timeoutMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await delay(25);
  }
  return !isAlive(pid);
}

/** Reads `factory.failure` afresh (assertions narrow property reads to their last checked value). */
function failureOf(factory: ProcessFactory): { message: string } | undefined {
  return factory.failure;
}

async function bodyText(response: InvocationResponse): Promise<string> {
  return (await readBody(response)).toString('utf8');
}

function assertLamplighterError(code: string, pattern?: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof LamplighterError, `expected a LamplighterError, got ${String(err)}`);
    assert.equal(err.code, code, `code of: ${err.message}`);
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}

// Every factory and instance made here is stopped in after().
const factories: ProcessFactory[] = [];
const extraInstances: ProcessInstance[] = [];

function makeFactory(spec: Partial<FunctionSpec>, options: Partial<ProcessFactoryOptions> = {}): { factory: ProcessFactory; logs: LogCapture } {
  const logs = new LogCapture();
  const factory = createProcessFactory(processSpec(spec), { appDir: FIXTURES, log: logs.sink, ...options });
  factories.push(factory);
  return { factory, logs };
}

after(async () => {
  await Promise.allSettled(extraInstances.map((i) => withTimeout(i.stop(), SLOW, 'stop()')));
  await Promise.allSettled(factories.map((f) => withTimeout(f.close(), SLOW, 'factory.close()')));
});

runInstanceConformance({
  name: 'process (node)',
  createFactory: async () => makeFactory({}).factory,
});

runInstanceConformance({
  name: 'process (python)',
  // No ready path: this one is probed with a TCP connect.
  createFactory: async () => makeFactory({ name: 'python-echo', command: ['python3', '-u', 'echo_server.py'], ready: undefined }).factory,
});

describe('process runtime — readiness', () => {
  test('process instance — the HTTP readiness probe waits for a 2xx answer', async () => {
    const { factory } = makeFactory({ env: { READY_DELAY_MS: '700' } });
    const started = Date.now();
    const instance = factory.create('ready-delay');
    assert.equal(instance.state, 'starting');
    await withTimeout(instance.ready, SLOW, 'ready');
    assert.ok(Date.now() - started >= 650, `ready after ${Date.now() - started} ms, before /healthz turned 200`);
    const response = await instance.handle(makeInvocationRequest({ url: '/healthz' }));
    assert.equal(response.status, 200);
    await readBody(response);
  });

  test('process instance — the TCP probe is used when no ready path is set', async () => {
    const { factory } = makeFactory({ ready: undefined, env: { READY_DELAY_MS: '60000' } });
    const instance = factory.create('tcp-probe');
    await withTimeout(instance.ready, SLOW, 'ready');
    assert.equal(instance.state, 'ready');
  });

  test('process instance — never ready within startupTimeoutMs fails with a clear error and kills the process', async () => {
    const { factory } = makeFactory({ command: ['node', '-e', 'setInterval(() => {}, 1000)'], startupTimeoutMs: 600 });
    const instance = factory.create('never-ready');
    await assert.rejects(
      withTimeout(instance.ready, SLOW, 'ready'),
      assertLamplighterError(ErrorCodes.FUNCTION_FAILED, /did not become ready within 600 ms: HTTP probe GET \/healthz: connection refused/),
    );
    const exit = await withTimeout(instance.closed, SLOW, 'closed');
    assert.equal(exit.reason, 'failed');
    assert.match(exit.message ?? '', /did not become ready/);
    assert.equal(instance.state, 'failed');
    assert.ok(await waitForDeath(instance.pid as number), 'the process that never became ready is killed');
  });

  test('process instance — a command that does not exist fails with "command not found"', async () => {
    const { factory } = makeFactory({ command: [NO_SUCH_COMMAND, '--serve'] });
    const instance = factory.create('enoent');
    await assert.rejects(
      withTimeout(instance.ready, SLOW, 'ready'),
      assertLamplighterError(ErrorCodes.FUNCTION_FAILED, new RegExp(`command '${NO_SUCH_COMMAND}' not found`)),
    );
    assert.equal((await instance.closed).reason, 'failed');
  });

  test('process instance — a command that is not executable, or a relative path that is missing, is named as such', async () => {
    // Lamplighter looks the command up itself where it starts children through a cgroup wrapper.
    const { factory } = makeFactory({ command: ['./echo-server.mjs'] });
    await assert.rejects(
      withTimeout(factory.create('eacces').ready, SLOW, 'ready'),
      assertLamplighterError(ErrorCodes.FUNCTION_FAILED, /command '\.\/echo-server\.mjs' is not executable/),
    );
    const missing = makeFactory({ command: ['./no-such-server.mjs'] }).factory;
    await assert.rejects(
      withTimeout(missing.create('enoent-relative').ready, SLOW, 'ready'),
      assertLamplighterError(ErrorCodes.FUNCTION_FAILED, /command '\.\/no-such-server\.mjs' not found \(looked relative to '.*fixtures\/process\/?'\)/),
    );
  });

  test('process instance — a missing working directory fails with its path', async () => {
    const { factory } = makeFactory({ cwd: 'no-such-dir' });
    const instance = factory.create('no-cwd');
    await assert.rejects(instance.ready, assertLamplighterError(ErrorCodes.FUNCTION_FAILED, /working directory '.*no-such-dir' does not exist/));
  });

  test('process instance — a process that exits at once fails with its exit code and stderr', async () => {
    const { factory } = makeFactory({ env: { EXIT_AT_ONCE: 'missing DATABASE_URL' } });
    const instance = factory.create('exits');
    await assert.rejects(
      withTimeout(instance.ready, SLOW, 'ready'),
      assertLamplighterError(ErrorCodes.FUNCTION_FAILED, /exited with code 2 before it became ready; last stderr lines:\n.*fatal: missing DATABASE_URL/),
    );
    const exit = await instance.closed;
    assert.equal(exit.reason, 'failed');
    assert.match(exit.message ?? '', /code 2/);
  });

  test('process instance — a program listening on another port never becomes ready and the error says so', async () => {
    const { factory } = makeFactory({ env: { LISTEN_ANY_PORT: '1' }, startupTimeoutMs: 800 });
    const instance = factory.create('wrong-port');
    await assert.rejects(
      withTimeout(instance.ready, SLOW, 'ready'),
      assertLamplighterError(ErrorCodes.FUNCTION_FAILED, /did not become ready within 800 ms.*connection refused.*PORT=\d+ was set in its environment: does the program listen on 127\.0\.0\.1:\$PORT\?/s),
    );
  });
});

describe('process runtime — environment and logs', () => {
  test('process instance — the child gets PORT, the manifest env, PATH and HOME, and nothing else of the host', async () => {
    process.env.LAMPLIGHTER_TEST_HOST_ONLY = 'secret';
    const { factory } = makeFactory({ env: { GREETING: 'hi' } });
    const instance = factory.create('env');
    await withTimeout(instance.ready, SLOW, 'ready');
    const response = await instance.handle(makeInvocationRequest({ url: '/_/env' }));
    const seen = JSON.parse(await bodyText(response)) as { env: Record<string, string>; cwd: string };
    assert.equal(seen.env.PORT, String(instance.port));
    assert.equal(seen.env.GREETING, 'hi');
    assert.equal(seen.env.PATH, process.env.PATH);
    assert.equal(seen.env.HOME, process.env.HOME);
    assert.equal(seen.env.LAMPLIGHTER_TEST_HOST_ONLY, undefined);
    assert.equal(path.resolve(seen.cwd), path.resolve(FIXTURES), 'cwd defaults to the app directory');
    delete process.env.LAMPLIGHTER_TEST_HOST_ONLY;
  });

  test('process instance — cwd is resolved against the app directory', async () => {
    const { factory } = makeFactory({ cwd: '..', command: ['node', 'process/echo-server.mjs'] });
    const instance = factory.create('cwd');
    await withTimeout(instance.ready, SLOW, 'ready');
    const response = await instance.handle(makeInvocationRequest({ url: '/_/env' }));
    const seen = JSON.parse(await bodyText(response)) as { cwd: string };
    assert.equal(path.resolve(seen.cwd), path.resolve(FIXTURES, '..'));
  });

  test('process instance — stdout and stderr reach the log sink line by line', async () => {
    const { factory, logs } = makeFactory({});
    const instance = factory.create('logs');
    await withTimeout(instance.ready, SLOW, 'ready');
    await logs.waitFor(new RegExp(`^echo-server: pid \\d+ listening on 127\\.0\\.0\\.1:${instance.port}$`), { stream: 'stdout' });
    await logs.waitFor(/^echo-server: this line goes to stderr$/, { stream: 'stderr' });
  });
});

describe('process runtime — proxying', () => {
  const { factory, logs } = makeFactory({ name: 'proxy' });
  let serial = 0;
  const lit = async (): Promise<ProcessInstance> => {
    const instance = factory.create(`proxy-${++serial}`);
    await withTimeout(instance.ready, SLOW, 'ready');
    return instance;
  };

  test('process instance — hop-by-hop headers are dropped and x-forwarded-* added', async () => {
    const instance = await lit();
    const response = await instance.handle(
      makeInvocationRequest({
        url: '/_/headers',
        remoteAddress: '192.0.2.7',
        headers: {
          host: 'example.test:8080',
          connection: 'keep-alive, x-hop',
          'x-hop': 'gone',
          'keep-alive': 'timeout=5',
          te: 'trailers',
          'x-forwarded-for': '10.0.0.1',
          'x-test': 'kept',
        },
      }),
    );
    const seen = JSON.parse(await bodyText(response)) as Record<string, string>;
    assert.equal(seen['x-hop'], undefined);
    assert.equal(seen['keep-alive'], undefined);
    assert.equal(seen.te, undefined);
    assert.equal(seen['x-test'], 'kept');
    assert.equal(seen.host, 'example.test:8080');
    assert.equal(seen['x-forwarded-for'], '10.0.0.1, 192.0.2.7');
    assert.equal(seen['x-forwarded-host'], 'example.test:8080');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(headerOf(response, 'connection'), undefined, 'no connection header in the response');
    assert.equal(headerOf(response, 'keep-alive'), undefined, 'no keep-alive header in the response');
    assert.equal(headerOf(response, 'content-type'), 'application/json');
  });

  test('process instance — server-sent events flow chunk by chunk', async () => {
    const instance = await lit();
    const response = await instance.handle(makeInvocationRequest({ url: '/_/sse?id=s1' }));
    assert.equal(response.status, 200);
    assert.equal(headerOf(response, 'content-type'), 'text/event-stream');
    assert.ok(response.body !== null && !Buffer.isBuffer(response.body));
    const chunks = response.body[Symbol.asyncIterator]();
    const next = async (): Promise<string> => {
      const item = await withTimeout(chunks.next(), 5_000, 'next SSE chunk');
      return item.done ? '' : Buffer.from(item.value as Uint8Array).toString('utf8');
    };
    // Each event is sent only after the previous one was received: a buffering proxy would hang here.
    assert.equal(await next(), 'data: event 1\n\n');
    await readBody(await instance.handle(makeInvocationRequest({ url: '/_/sse-next?id=s1' })));
    assert.equal(await next(), 'data: event 2\n\n');
    await readBody(await instance.handle(makeInvocationRequest({ url: '/_/sse-next?id=s1&last=1' })));
    assert.equal(await next(), 'data: event 3\n\n');
    assert.equal((await withTimeout(chunks.next(), 5_000, 'end of SSE')).done, true);
  });

  test('process instance — aborting the request signal aborts the upstream request', async () => {
    const instance = await lit();
    const controller = new AbortController();
    const pending = instance.handle(makeInvocationRequest({ url: '/_/slow?ms=10000', signal: controller.signal }));
    await delay(200);
    controller.abort();
    await assert.rejects(withTimeout(pending, 5_000, 'aborted handle'), assertLamplighterError(ErrorCodes.TIMEOUT, /was aborted before it finished/));
    // The server sees its connection close.
    await logs.waitFor(/slow request aborted by the client/, { stream: 'stdout', timeoutMs: 5_000 });
    assert.equal(instance.inFlight, 0);
  });

  test('process instance — an abort reason that is a LamplighterError is passed through', async () => {
    const instance = await lit();
    const controller = new AbortController();
    const reason = new LamplighterError(ErrorCodes.TIMEOUT, 'deadline of 10 ms passed');
    const pending = instance.handle(makeInvocationRequest({ url: '/_/slow?ms=10000', signal: controller.signal }));
    await delay(100);
    controller.abort(reason);
    await assert.rejects(withTimeout(pending, 5_000, 'aborted handle'), (err: unknown) => err === reason);
  });

  test('process instance — a connection reset becomes UPSTREAM_UNAVAILABLE', async () => {
    const instance = await lit();
    await assert.rejects(
      instance.handle(makeInvocationRequest({ url: '/_/reset' })),
      assertLamplighterError(ErrorCodes.UPSTREAM_UNAVAILABLE, /closed the connection on 127\.0\.0\.1:\d+ before answering/),
    );
  });

  test('process instance — a refused connection becomes UPSTREAM_UNAVAILABLE with a clear message', async () => {
    const instance = await lit();
    await readBody(await instance.handle(makeInvocationRequest({ url: '/_/close-listener' })));
    await delay(100);
    await assert.rejects(
      instance.handle(makeInvocationRequest({ url: '/echo' })),
      assertLamplighterError(ErrorCodes.UPSTREAM_UNAVAILABLE, /refused the connection on 127\.0\.0\.1:\d+: the process is not listening on its PORT/),
    );
  });

  test('process instance — upgrade() pipes a raw upgraded connection to the child', async () => {
    const instance = await lit();
    const gateway = http.createServer((_req, res) => res.writeHead(404).end());
    gateway.on('upgrade', (req, socket, head) => {
      const request = makeInvocationRequest({ method: req.method, url: req.url, headers: req.headers, remoteAddress: req.socket.remoteAddress });
      instance.upgrade(request, socket, head).catch(() => socket.destroy());
    });
    await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
    try {
      const port = (gateway.address() as net.AddressInfo).port;
      const client = net.connect({ host: '127.0.0.1', port });
      let received = '';
      client.setEncoding('utf8');
      client.on('data', (chunk: string) => {
        received += chunk;
      });
      const waitFor = async (text: string): Promise<void> => {
        for (let i = 0; i < 250 && !received.includes(text); i++) await delay(20);
        assert.ok(received.includes(text), `expected ${JSON.stringify(text)} in ${JSON.stringify(received)}`);
      };
      client.write('GET /ws HTTP/1.1\r\nHost: example.test\r\nConnection: Upgrade\r\nUpgrade: lamplighter-echo\r\n\r\nhello');
      await waitFor('101 Switching Protocols');
      await waitFor('hello');
      assert.match(received, /x-seen-forwarded-for: 127\.0\.0\.1/);
      assert.equal(instance.inFlight, 1);
      client.write('ping');
      await waitFor('ping');
      client.destroy();
      for (let i = 0; i < 100 && instance.inFlight > 0; i++) await delay(20);
      assert.equal(instance.inFlight, 0);
    } finally {
      await new Promise((resolve) => gateway.close(resolve));
    }
  });
});

describe('process runtime — supervision', () => {
  test('process instance — a crash after ready resolves closed as failed with the exit code and stderr', async () => {
    const { factory } = makeFactory({});
    const instance = factory.create('crash');
    await withTimeout(instance.ready, SLOW, 'ready');
    await assert.rejects(
      instance.handle(makeInvocationRequest({ url: '/_/crash?code=7' })),
      assertLamplighterError(ErrorCodes.UPSTREAM_UNAVAILABLE),
    );
    const exit = await withTimeout(instance.closed, SLOW, 'closed');
    assert.equal(exit.reason, 'failed');
    assert.match(exit.message ?? '', /exited with code 7 unexpectedly; last stderr lines:\n.*crashing on purpose with code 7/s);
    assert.equal(instance.state, 'failed');
    assert.equal(factory.consecutiveFailures, 1);
    await assert.rejects(instance.handle(makeInvocationRequest({ url: '/echo' })), assertLamplighterError(ErrorCodes.FUNCTION_FAILED, /code 7/));
  });

  test('process factory — restarts back off exponentially and a crash loop marks the factory failed', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'lamplighter-backoff-'));
    const marker = path.join(dir, 'healthy');
    const clock = new ManualClock();
    try {
      const { factory } = makeFactory({ env: { CRASH_UNLESS_FILE: marker } }, { clock, crashLoopThreshold: 5, crashLoopWindowMs: 30_000 });
      const first = factory.create('loop-1');
      await assert.rejects(withTimeout(first.ready, SLOW, 'ready'), assertLamplighterError(ErrorCodes.FUNCTION_FAILED, /exited with code 3/));
      assert.equal(factory.restartDelayMs, 100);
      assert.equal(factory.failure, undefined);

      for (const [n, wait] of [[2, 100], [3, 200], [4, 400], [5, 800]] as const) {
        const instance = factory.create(`loop-${n}`);
        // The start waits for the clock: no process in real time meanwhile.
        await delay(150);
        assert.equal(instance.pid, undefined, `instance ${n} must wait ${wait} ms of backoff`);
        assert.equal(instance.state, 'starting');
        clock.advance(wait - 1);
        await delay(20);
        assert.equal(instance.pid, undefined, `instance ${n} starts no earlier than its backoff`);
        clock.advance(1);
        await assert.rejects(withTimeout(instance.ready, SLOW, 'ready'), assertLamplighterError(ErrorCodes.FUNCTION_FAILED, /marker .* missing/));
        assert.ok(instance.pid !== undefined, `instance ${n} did start`);
        if (n < 5) assert.equal(factory.restartDelayMs, wait * 2);
      }

      const failure = failureOf(factory);
      assert.ok(failure, 'five failures within 30 s mark the factory failed');
      assert.match(failure.message, /Function 'echo' is crash-looping \(5 failures within 30 s without becoming ready\); last failure: .*exited with code 3.*\n.*marker .* missing/s);

      const refused = factory.create('loop-6');
      await assert.rejects(withTimeout(refused.ready, 1_000, 'ready of a failed factory'), (err: unknown) => {
        assertLamplighterError(ErrorCodes.FUNCTION_FAILED)(err);
        assert.equal((err as LamplighterError).message, failure.message);
        return true;
      });
      assert.equal(refused.state, 'failed');
      assert.equal(refused.pid, undefined, 'no process is started while the factory is failed');
      assert.deepEqual(await refused.closed, { reason: 'failed', message: failure.message });

      // After failureRetryMs one more start is let through; this time it succeeds and everything resets.
      await writeFile(marker, 'ok');
      clock.advance(60_000);
      assert.equal(factory.failure, undefined);
      const healed = factory.create('loop-7');
      await withTimeout(healed.ready, SLOW, 'ready after the marker appeared');
      assert.equal(factory.consecutiveFailures, 0);
      assert.equal(factory.restartDelayMs, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('process factory — backoff is capped at maxBackoffMs', async () => {
    const clock = new ManualClock();
    const { factory } = makeFactory({ command: [NO_SUCH_COMMAND] }, { clock, crashLoopThreshold: 100, maxBackoffMs: 10_000 });
    const expected = [100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000];
    for (const [i, delayMs] of expected.entries()) {
      clock.advance(factory.restartDelayMs);
      const instance = factory.create(`cap-${i}`);
      await assert.rejects(withTimeout(instance.ready, SLOW, 'ready'), assertLamplighterError(ErrorCodes.FUNCTION_FAILED, /not found/));
      assert.equal(factory.restartDelayMs, delayMs);
    }
  });

  test('process factory — a failed start following a retry after a crash loop marks it failed again at once', async () => {
    const clock = new ManualClock();
    const { factory } = makeFactory({ command: [NO_SUCH_COMMAND] }, { clock, crashLoopThreshold: 2, failureRetryMs: 5_000 });
    for (let i = 0; i < 2; i++) {
      clock.advance(factory.restartDelayMs);
      await assert.rejects(factory.create(`retry-${i}`).ready);
    }
    assert.ok(factory.failure);
    clock.advance(5_000);
    assert.equal(factory.failure, undefined);
    clock.advance(factory.restartDelayMs);
    await assert.rejects(factory.create('retry-again').ready, /not found/);
    assert.match(failureOf(factory)?.message ?? '', /crash-looping \(it failed again after 3 failures/);
    factory.reset();
    assert.equal(factory.failure, undefined);
    assert.equal(factory.restartDelayMs, 0);
  });

  test('process factory — a crash loop or a reset wakes instances waiting for their backoff', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'lamplighter-wake-'));
    const marker = path.join(dir, 'healthy');
    const clock = new ManualClock();
    try {
      await writeFile(marker, 'ok');
      const { factory } = makeFactory({ env: { CRASH_UNLESS_FILE: marker } }, { clock, crashLoopThreshold: 2 });
      const [a, b] = [factory.create('wake-a'), factory.create('wake-b')];
      await withTimeout(Promise.all([a.ready, b.ready]), SLOW, 'ready');
      await rm(marker);

      // First crash: the next start has to wait 100 ms of clock time.
      await assert.rejects(a.handle(makeInvocationRequest({ url: '/_/crash' })));
      await withTimeout(a.closed, SLOW, 'closed');
      const waiting = factory.create('wake-waiting');
      await delay(100);
      assert.equal(waiting.pid, undefined);

      // A reset lets it start at once (it then fails: the marker is gone).
      factory.reset();
      await assert.rejects(withTimeout(waiting.ready, SLOW, 'ready after reset'), /marker .* missing/);
      assert.equal(factory.consecutiveFailures, 1);

      // Waiting again; the second failure (b crashing) trips the crash loop and wakes it.
      const parked = factory.create('wake-parked');
      await delay(100);
      assert.equal(parked.pid, undefined);
      await assert.rejects(b.handle(makeInvocationRequest({ url: '/_/crash' })));
      await withTimeout(b.closed, SLOW, 'closed');
      await assert.rejects(
        withTimeout(parked.ready, 2_000, 'ready of a parked instance'),
        assertLamplighterError(ErrorCodes.FUNCTION_FAILED, /crash-looping/),
      );
      assert.equal(parked.pid, undefined);
      assert.equal(clock.pending, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('process instance — stop during the backoff wait starts no process', async () => {
    const clock = new ManualClock();
    const { factory } = makeFactory({ command: [NO_SUCH_COMMAND] }, { clock });
    await assert.rejects(factory.create('wait-1').ready);
    const waiting = factory.create('wait-2');
    await delay(50);
    await withTimeout(waiting.stop(), 5_000, 'stop()');
    await assert.rejects(waiting.ready, assertLamplighterError(ErrorCodes.SHUTTING_DOWN, /stopped before it became ready/));
    assert.equal((await waiting.closed).reason, 'stopped');
    assert.equal(waiting.pid, undefined);
    assert.equal(clock.pending, 0);
  });
});

describe('process runtime — drain and stop', () => {
  test('process instance — drain lets in-flight requests finish and refuses new ones', async () => {
    const { factory } = makeFactory({});
    const instance = factory.create('drain');
    await withTimeout(instance.ready, SLOW, 'ready');
    let finishedAt = 0;
    const slow = instance.handle(makeInvocationRequest({ url: '/_/slow?ms=600' })).then(async (response) => {
      const text = await bodyText(response);
      finishedAt = Date.now();
      return text;
    });
    await delay(100);
    const drained = instance.drain();
    assert.equal(instance.state, 'draining');
    await assert.rejects(instance.handle(makeInvocationRequest({ url: '/echo' })), assertLamplighterError(ErrorCodes.SHUTTING_DOWN, /draining/));
    await withTimeout(drained, SLOW, 'drain()');
    const drainedAt = Date.now();
    assert.equal(await slow, 'slow 600 done');
    assert.ok(finishedAt > 0 && drainedAt >= finishedAt, 'drain resolved after the in-flight request finished');
    await instance.stop();
    assert.equal((await instance.closed).reason, 'stopped');
  });

  test('process instance — drain gives up after drainTimeoutMs', async () => {
    const { factory } = makeFactory({ drainTimeoutMs: 300 });
    const instance = factory.create('drain-timeout');
    await withTimeout(instance.ready, SLOW, 'ready');
    const stuck = instance.handle(makeInvocationRequest({ url: '/_/slow?ms=30000' }));
    stuck.catch(() => {});
    await delay(100);
    const started = Date.now();
    await withTimeout(instance.drain(), 5_000, 'drain()');
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 4_000, `drain took ${took} ms`);
    await instance.stop();
    await assert.rejects(stuck, (err: unknown) => err instanceof LamplighterError);
  });

  test('process instance — stop sends SIGTERM, then SIGKILL to a process that ignores it', async () => {
    const { factory, logs } = makeFactory({ env: { IGNORE_SIGTERM: '1' } }, { killGraceMs: 400 });
    const instance = factory.create('stubborn');
    await withTimeout(instance.ready, SLOW, 'ready');
    const pid = instance.pid as number;
    const started = Date.now();
    await withTimeout(instance.stop(), SLOW, 'stop()');
    const took = Date.now() - started;
    assert.ok(took >= 350, `stop took ${took} ms, less than the grace period`);
    await logs.waitFor(/got SIGTERM, ignoring it/, { stream: 'stdout' });
    assert.ok(logs.find(/ignored SIGTERM; sending SIGKILL/, 'stderr'));
    assert.ok(await waitForDeath(pid), 'the process is dead');
    assert.deepEqual(await instance.closed, { reason: 'stopped' });
  });

  test('process instance — stop kills the whole process group of a sh -c wrapper', async () => {
    const { factory, logs } = makeFactory({ command: ['sh', '-c', 'node echo-server.mjs; echo wrapper done'], env: { SPAWN_GRANDCHILD: '1' } });
    const instance = factory.create('wrapper-stop');
    await withTimeout(instance.ready, SLOW, 'ready');
    const server = Number((await logs.waitFor(/pid (\d+) listening/))[1]);
    const grandchild = Number((await logs.waitFor(/grandchild pid (\d+)/))[1]);
    const wrapper = instance.pid as number;
    assert.ok(isAlive(server) && isAlive(grandchild));
    await withTimeout(instance.stop(), SLOW, 'stop()');
    for (const pid of [wrapper, server, grandchild]) assert.ok(await waitForDeath(pid), `pid ${pid} is gone`);
    assert.ok(!liveChildGroups().includes(wrapper), 'the group is forgotten');
  });

  test('process instance — stop also ends descendants that left the process group, through the cgroup', async (t) => {
    const { factory, logs } = makeFactory({ command: ['sh', '-c', 'setsid sleep 300 & echo "escaped pid $!"; exec node echo-server.mjs'] }, { killGraceMs: 2_000 });
    const instance = factory.create('escaped-stop');
    await withTimeout(instance.ready, SLOW, 'ready');
    const escaped = Number((await logs.waitFor(/escaped pid (\d+)/))[1]);
    assert.ok(isAlive(escaped));
    if (!cgroupV2Writable()) {
      process.kill(escaped, 'SIGKILL');
      await instance.stop();
      assert.ok(logs.find(/processes that leave a child's process group .* are not stopped with it/, 'stderr'), 'the function log says why');
      t.skip('no writable cgroup v2 here: such descendants outlive a stop (see the README)');
      return;
    }
    const cgroup = /^0::(.*)$/m.exec(readFileSync(`/proc/${instance.pid}/cgroup`, 'utf8'))?.[1] ?? '';
    assert.match(cgroup, /\/lamplighter-\d+\/escaped-stop-\d+$/, 'the child runs in a cgroup of its own');
    const started = Date.now();
    await withTimeout(instance.stop(), SLOW, 'stop()');
    assert.ok(await waitForDeath(escaped), `the setsid sleep (pid ${escaped}) is gone after stop()`);
    // sleep ends on SIGTERM at once, so it went in the graceful step, not after the grace period.
    assert.ok(Date.now() - started < 1_500, `stop took ${Date.now() - started} ms`);
    const mount = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((line) => / - cgroup2 /.test(line))?.split(' ')[4] ?? '';
    assert.ok(!existsSync(path.join(mount, cgroup)), `the cgroup ${cgroup} is removed`);
  });

  test('process instance — SIGKILL of the process leaves no orphan grandchildren and closed reports it', async () => {
    const { factory, logs } = makeFactory({ command: ['sh', '-c', 'node echo-server.mjs; echo wrapper done'], env: { SPAWN_GRANDCHILD: '1' } });
    const instance = factory.create('wrapper-kill');
    await withTimeout(instance.ready, SLOW, 'ready');
    const server = Number((await logs.waitFor(/pid (\d+) listening/))[1]);
    const grandchild = Number((await logs.waitFor(/grandchild pid (\d+)/))[1]);
    const wrapper = instance.pid as number;
    process.kill(wrapper, 'SIGKILL');
    const exit = await withTimeout(instance.closed, SLOW, 'closed');
    assert.equal(exit.reason, 'failed');
    assert.match(exit.message ?? '', /was killed by signal SIGKILL unexpectedly/);
    for (const pid of [wrapper, server, grandchild]) assert.ok(await waitForDeath(pid), `pid ${pid} is gone`);
  });

  test('process runtime — the exit hook kills every child group when the host gets SIGTERM', async () => {
    const host = spawn(process.execPath, [path.join(FIXTURES, 'exit-hook-host.mjs')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    host.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    host.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const exited = new Promise<number | null>((resolve) => host.once('exit', (code) => resolve(code)));
    try {
      for (let i = 0; i < 500 && !out.includes('\n'); i++) await delay(20);
      assert.ok(out.includes('\n'), `host printed nothing; stderr: ${err}`);
      const pids = JSON.parse(out.split('\n')[0] as string) as { wrapperPid: number; serverPid: number; grandchildPid: number };
      for (const pid of Object.values(pids)) assert.ok(typeof pid === 'number' && isAlive(pid), `pid ${pid} alive before`);
      host.kill('SIGTERM');
      assert.equal(await withTimeout(exited, 5_000, 'host exit'), 128 + 15);
      for (const pid of Object.values(pids)) assert.ok(await waitForDeath(pid), `pid ${pid} is gone after the host exited`);
    } finally {
      if (host.exitCode === null && host.signalCode === null) host.kill('SIGKILL');
    }
  });

  test('process factory — close stops every live instance and create afterwards fails', async () => {
    const { factory } = makeFactory({});
    const a = factory.create('close-a');
    const b = factory.create('close-b');
    await withTimeout(Promise.all([a.ready, b.ready]), SLOW, 'ready');
    assert.equal(factory.instances.length, 2);
    await withTimeout(factory.close(), SLOW, 'close()');
    assert.equal((await a.closed).reason, 'stopped');
    assert.equal((await b.closed).reason, 'stopped');
    assert.equal(factory.instances.length, 0);
    const late = factory.create('close-late');
    extraInstances.push(late);
    await assert.rejects(late.ready, assertLamplighterError(ErrorCodes.SHUTTING_DOWN));
  });
});
