// The Instance conformance suite: every runtime (process, WAGI, component) runs it against its echo fixture.
//
// The echo contract every runtime's echo fixture follows, for any path but its readiness path:
// status 200; headers `content-type: application/octet-stream`, `x-echo-method: <method>`,
// `x-echo-query: <query string without '?'>`, `x-echo-header: <request header x-test, or empty>`;
// body = the request body verbatim.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { LamplighterError } from '../src/errors/index.js';
import type { Instance, InstanceFactory, InvocationRequest, InvocationResponse } from '../src/instance/index.js';

/** A runtime under test: a name for test titles and a way to make a factory lighting its echo fixture. */
export interface ConformanceTarget {
  /** Shown in test names: "<name> instance — <behaviour>". */
  name: string;
  /** A factory whose instances serve the echo contract. */
  createFactory(): Promise<InstanceFactory>;
  /** Longest wait for `ready` and for each request. @default 20000 */
  timeoutMs?: number;
}

/** What {@link makeInvocationRequest} needs; everything but the method and URL is optional. */
export interface InvocationRequestInit {
  /** HTTP method. @default 'GET' */
  method?: string;
  /** Path and query. @default '/' */
  url?: string;
  /** Request headers, lower-case names. @default {} */
  headers?: IncomingHttpHeaders;
  /** Request body; `content-length` is added when neither it nor `transfer-encoding` is set. @default empty */
  body?: Buffer | string;
  /** Aborts the request. @default a fresh signal that never aborts */
  signal?: AbortSignal;
  /** Client address. @default '127.0.0.1' */
  remoteAddress?: string;
  /** When it must be answered by, on the `performance.now()` clock, as the gateway sets it. @default none */
  deadline?: number;
}

/** Builds an {@link InvocationRequest} as the gateway would, with the body streamed from a Buffer. */
export function makeInvocationRequest(init: InvocationRequestInit = {}): InvocationRequest {
  const url = init.url ?? '/';
  const path = url.split('?')[0] as string;
  const body = init.body === undefined ? Buffer.alloc(0) : Buffer.from(init.body);
  const headers: IncomingHttpHeaders = { host: '127.0.0.1', ...init.headers };
  if (init.body !== undefined && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) {
    headers['content-length'] = String(body.length);
  }
  return {
    id: randomUUID(),
    method: init.method ?? 'GET',
    url,
    headers,
    body: Readable.from(body.length > 0 ? [body] : []),
    remoteAddress: init.remoteAddress ?? '127.0.0.1',
    host: '127.0.0.1',
    serverPort: 0,
    route: { pattern: '/...', scriptName: '', pathInfo: path },
    signal: init.signal ?? new AbortController().signal,
    ...(init.deadline === undefined ? {} : { deadline: init.deadline }),
  };
}

/** Reads a response body to the end, whatever its form. */
export async function readBody(response: InvocationResponse): Promise<Buffer> {
  const { body } = response;
  if (body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body)) return body;
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** The value of response header `name` (joined with ", " when repeated), or undefined. */
export function headerOf(response: InvocationResponse, name: string): string | undefined {
  const values = response.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
  return values.length === 0 ? undefined : values.join(', ');
}

/** Rejects with a clear message if `promise` has not settled within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function assertEcho(
  response: InvocationResponse,
  expected: { method: string; query: string; header?: string; body: Buffer },
): Promise<void> {
  const body = await readBody(response);
  assert.equal(response.status, 200);
  assert.equal(headerOf(response, 'content-type'), 'application/octet-stream');
  assert.equal(headerOf(response, 'x-echo-method'), expected.method);
  assert.equal(headerOf(response, 'x-echo-query'), expected.query);
  assert.equal(headerOf(response, 'x-echo-header'), expected.header ?? '');
  assert.equal(body.length, expected.body.length, 'echoed body length');
  assert.ok(body.equals(expected.body), 'echoed body bytes');
}

/** Registers the Instance conformance tests for `target`, named "<name> instance — <behaviour>". */
export function runInstanceConformance(target: ConformanceTarget): void {
  const { name } = target;
  const timeoutMs = target.timeoutMs ?? 20_000;
  describe(`${name} instance conformance`, () => {
    let factory: InstanceFactory;
    let instance: Instance;
    const started: Instance[] = [];
    let serial = 0;
    const create = (): Instance => {
      const lit = factory.create(`${name}-conformance-${++serial}`);
      started.push(lit);
      return lit;
    };

    before(async () => {
      factory = await target.createFactory();
      instance = create();
    });

    after(async () => {
      await Promise.allSettled(started.map((i) => withTimeout(i.stop(), timeoutMs, 'stop()')));
      await factory?.close();
    });

    test(`${name} instance — ready resolves and state is 'ready'`, async () => {
      await withTimeout(instance.ready, timeoutMs, 'ready');
      assert.equal(instance.state, 'ready');
    });

    test(`${name} instance — GET returns 200 per the echo contract`, async () => {
      await instance.ready;
      const response = await withTimeout(
        instance.handle(makeInvocationRequest({ method: 'GET', url: '/echo?a=1&b=two' })),
        timeoutMs,
        'GET',
      );
      await assertEcho(response, { method: 'GET', query: 'a=1&b=two', body: Buffer.alloc(0) });
    });

    test(`${name} instance — POST body of 1 MiB is echoed byte for byte`, async () => {
      await instance.ready;
      const payload = randomBytes(1024 * 1024);
      const response = await withTimeout(
        instance.handle(makeInvocationRequest({ method: 'POST', url: '/echo', body: payload })),
        timeoutMs,
        'POST',
      );
      await assertEcho(response, { method: 'POST', query: '', body: payload });
    });

    test(`${name} instance — a custom request header reaches the handler`, async () => {
      await instance.ready;
      const response = await withTimeout(
        instance.handle(makeInvocationRequest({ url: '/echo', headers: { 'x-test': 'lamplighter-42' } })),
        timeoutMs,
        'GET with header',
      );
      await assertEcho(response, { method: 'GET', query: '', header: 'lamplighter-42', body: Buffer.alloc(0) });
    });

    test(`${name} instance — 20 concurrent requests are all answered correctly`, async () => {
      await instance.ready;
      const requests = Array.from({ length: 20 }, async (_, i) => {
        const payload = Buffer.from(`request ${i} ${randomBytes(8).toString('hex')}`);
        const response = await instance.handle(
          makeInvocationRequest({ method: 'PUT', url: `/echo?n=${i}`, headers: { 'x-test': `t${i}` }, body: payload }),
        );
        await assertEcho(response, { method: 'PUT', query: `n=${i}`, header: `t${i}`, body: payload });
      });
      await withTimeout(Promise.all(requests), timeoutMs, '20 concurrent requests');
    });

    test(`${name} instance — stop() is idempotent, closed reports 'stopped', handle afterwards rejects`, async () => {
      const own = create();
      await withTimeout(own.ready, timeoutMs, 'ready');
      await withTimeout(Promise.all([own.stop(), own.stop()]), timeoutMs, 'two stop() calls');
      await withTimeout(own.stop(), timeoutMs, 'third stop()');
      const exit = await withTimeout(own.closed, timeoutMs, 'closed');
      assert.equal(exit.reason, 'stopped');
      assert.equal(own.state, 'stopped');
      await assert.rejects(own.handle(makeInvocationRequest({ url: '/echo' })), (err: unknown) => {
        assert.ok(err instanceof LamplighterError, `expected a LamplighterError, got ${String(err)}`);
        return true;
      });
    });
  });
}
