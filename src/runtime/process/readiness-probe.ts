// Polls a freshly started child until it serves: HTTP GET on its ready path, or a TCP connect.
import http from 'node:http';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

/** Options for {@link waitUntilReady}. */
export interface ReadinessProbeOptions {
  /** HTTP path to GET until it answers 2xx; undefined probes with a TCP connect. @default undefined */
  path?: string | undefined;
  /** Give up after this long. @default 30000 */
  timeoutMs?: number;
  /** Aborts the wait (the process exited, or the instance is being stopped). @default undefined */
  signal?: AbortSignal | undefined;
  /** First pause between attempts; it grows by half each time. @default 10 */
  initialIntervalMs?: number;
  /** Longest pause between attempts. @default 250 */
  maxIntervalMs?: number;
  /** Time one attempt may take. @default 1000 */
  attemptTimeoutMs?: number;
  /** Address the child listens on. @default '127.0.0.1' */
  host?: string;
}

/** Thrown by {@link waitUntilReady} when the time runs out; `lastResult` says what the last attempt saw. */
export class ReadinessTimeoutError extends Error {
  override name = 'ReadinessTimeoutError';
  /** What the last attempt saw, e.g. "GET /healthz answered 503". */
  readonly lastResult: string;
  constructor(timeoutMs: number, lastResult: string) {
    super(`not ready within ${timeoutMs} ms: ${lastResult}`);
    this.lastResult = lastResult;
  }
}

interface Attempt {
  ok: boolean;
  detail: string;
}

function describeSocketError(err: NodeJS.ErrnoException, where: string): string {
  if (err.code === 'ECONNREFUSED') return `connection refused on ${where}`;
  if (err.code === 'ECONNRESET') return `connection reset on ${where}`;
  return `${err.code ?? err.message} on ${where}`;
}

function tcpAttempt(host: string, port: number, timeoutMs: number): Promise<Attempt> {
  const where = `${host}:${port}`;
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (attempt: Attempt): void => {
      socket.destroy();
      resolve(attempt);
    };
    socket.setTimeout(timeoutMs, () => done({ ok: false, detail: `connect to ${where} took over ${timeoutMs} ms` }));
    socket.once('connect', () => done({ ok: true, detail: `accepting connections on ${where}` }));
    socket.once('error', (err) => done({ ok: false, detail: describeSocketError(err, where) }));
  });
}

function httpAttempt(host: string, port: number, path: string, timeoutMs: number): Promise<Attempt> {
  const where = `${host}:${port}`;
  return new Promise((resolve) => {
    let settled = false;
    const done = (attempt: Attempt): void => {
      if (settled) return;
      settled = true;
      req.destroy();
      resolve(attempt);
    };
    const req = http.get({ host, port, path, agent: false, headers: { 'user-agent': 'lamplighter-probe' } }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      done({ ok: status >= 200 && status < 300, detail: `GET ${path} answered ${status}` });
    });
    req.setTimeout(timeoutMs, () => done({ ok: false, detail: `GET ${path} got no answer within ${timeoutMs} ms` }));
    req.once('error', (err: NodeJS.ErrnoException) => done({ ok: false, detail: describeSocketError(err, where) }));
  });
}

/**
 * Resolves once the child on `port` answers the probe; rejects with {@link ReadinessTimeoutError}
 * when `timeoutMs` passes first, or with the signal's reason when it aborts.
 */
export async function waitUntilReady(port: number, options: ReadinessProbeOptions = {}): Promise<void> {
  const host = options.host ?? '127.0.0.1';
  const timeoutMs = options.timeoutMs ?? 30_000;
  const maxInterval = options.maxIntervalMs ?? 250;
  const attemptTimeout = options.attemptTimeoutMs ?? 1000;
  const { signal, path } = options;
  const deadline = performance.now() + timeoutMs;
  let interval = options.initialIntervalMs ?? 10;
  let last = 'no attempt made';
  // Bounded by the deadline; the count cap is a second guard should the clock misbehave.
  for (let attempt = 0; attempt < 1_000_000; attempt++) {
    signal?.throwIfAborted();
    const remaining = deadline - performance.now();
    if (remaining <= 0) break;
    const budget = Math.max(1, Math.min(attemptTimeout, remaining));
    const result = path === undefined ? await tcpAttempt(host, port, budget) : await httpAttempt(host, port, path, budget);
    signal?.throwIfAborted();
    if (result.ok) return;
    last = result.detail;
    const pause = Math.min(interval, deadline - performance.now());
    if (pause <= 0) break;
    await delay(pause, undefined, { signal });
    interval = Math.min(interval * 1.5, maxInterval);
  }
  throw new ReadinessTimeoutError(timeoutMs, last);
}
